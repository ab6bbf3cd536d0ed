"""Data-parallel training with torchrun on 2 CPU processes (gloo): the same run as one process
with the same global batch, rank 0 alone writes, and a resumed run picks up where it stopped."""
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import checkpoint as C


def _train(prepared, out, env, nproc, batch, *extra):
    args = ["-m", "helpers", "train", "--data", str(prepared), "--preset", "smoke", "--batch-size", str(batch),
            "--max-iters", "30", "--eval-interval", "10", "--out", str(out), "--quiet", *extra]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    proc = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _evals(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "eval"], [r for r in recs if r["kind"] == "train"]


@pytest.fixture(scope="module")
def runs(prepared, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, PLOTGPT_ROOT=str(tmp / "root"), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    two = _train(prepared, tmp / "two", env, 2, 4)
    _train(prepared, tmp / "one", env, 1, 8)
    return tmp, env, two


def test_two_ranks_follow_one_process_with_the_same_global_batch(runs):
    tmp, _, two = runs
    ev2, tr2 = _evals(tmp / "two")
    ev1, tr1 = _evals(tmp / "one")
    assert [e["step"] for e in ev2] == [e["step"] for e in ev1] == [0, 10, 20, 30]
    assert [e["tokens"] for e in ev2] == [e["tokens"] for e in ev1]  # 2 ranks x 4 = 1 x 8 sequences per step
    assert ev2[-1]["val_loss"] < ev2[0]["val_loss"] - 0.5  # it learned
    # Same windows, gradients averaged over ranks: the curves agree up to float summation order.
    for a, b in zip(ev2, ev1):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=2e-3), (a, b)
    for a, b in zip(tr2, tr1):
        assert a["loss"] == pytest.approx(b["loss"], abs=2e-3), (a, b)
    assert "2 data-parallel ranks" in two.stdout + two.stderr
    assert two.stdout.count("done in") == 1  # rank 0 reports for everyone


def test_rank_zero_alone_writes_and_resume_continues(runs, prepared):
    tmp, env, _ = runs
    run = tmp / "two"
    names = sorted(p.name for p in run.glob("*.safetensors"))
    assert names == ["best.safetensors", "step-000010.safetensors", "step-000020.safetensors", "step-000030.safetensors"]
    final = C.load(run / "step-000030.safetensors").model.state_dict()
    (run / "step-000030.safetensors").unlink()  # as if the run had been killed after step 20's checkpoint
    _train(prepared, run, env, 2, 4, "--resume")
    resumed = C.load(run / "step-000030.safetensors").model.state_dict()
    for k in final:
        torch.testing.assert_close(resumed[k], final[k], rtol=0, atol=1e-6)
    assert [e["step"] for e in _evals(run)[0]] == [0, 10, 20, 30]
