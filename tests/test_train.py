import json
import os
import signal
import time
from dataclasses import replace

import pytest
import torch

from helpers import checkpoint as C
from helpers.config import get_preset
from helpers.dataset import DataError, load_data
from helpers.train import MEMORISE_ADVICE, train

QUIET = dict(progress=False, log=lambda *_: None)


def test_smoke_training_learns_and_writes_a_run(tiny_run):
    evals = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    ev = [e for e in evals if e["kind"] == "eval"]
    assert [e["step"] for e in ev] == [0, 15, 30]
    assert ev[-1]["val_loss"] < ev[0]["val_loss"] - 0.5  # it learned something
    assert ev[0]["val_bpb"] > ev[-1]["val_bpb"] > 0
    assert all(isinstance(e["sample"], str) for e in ev)
    assert [e["step"] for e in evals if e["kind"] == "train"] == [10, 20, 30]
    names = sorted(p.name for p in tiny_run.glob("*.safetensors"))
    assert names == ["best.safetensors", "step-000000.safetensors", "step-000015.safetensors", "step-000030.safetensors"]
    best = C.load(tiny_run / "best.safetensors")
    assert best.state == {} and best.info["val_loss"] == min(e["val_loss"] for e in ev)


def _weights(path):
    return C.load(path).model.state_dict()


@pytest.mark.parametrize("ema_decay, grad_accum", [(0.0, 1), (0.9, 1), (0.0, 2)])
def test_resume_reproduces_an_uninterrupted_run_exactly(prepared, tmp_path, ema_decay, grad_accum):
    """Interrupted at step 20 (by SIGINT, like Ctrl-C) and resumed == one straight run of 40 steps."""
    model_cfg, cfg = get_preset("smoke", max_iters=40, eval_interval=10, dropout=0.1, keep_last=2,
                                ema_decay=ema_decay, batch_size=8 // grad_accum, grad_accum=grad_accum)
    straight = train(prepared, model_cfg, cfg, tmp_path / "a", **QUIET)

    def interrupt(rec):
        if rec["kind"] == "eval" and rec["step"] == 20:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(prepared, model_cfg, cfg, tmp_path / "b", callback=interrupt, **QUIET)
    assert first.stop_reason == "interrupted (SIGINT)" and first.step == 20
    second = train(prepared, model_cfg, cfg, tmp_path / "b", resume=True, **QUIET)
    assert second.step == 40
    a, b = _weights(straight.last_checkpoint), _weights(second.last_checkpoint)
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-identical on CPU with a fixed seed
    a, b = C.load(straight.last_checkpoint, with_state=True).state, C.load(second.last_checkpoint, with_state=True).state
    assert a.keys() == b.keys() and any(k.startswith("raw.") for k in a) == bool(ema_decay)
    for k in a:  # with EMA the trained weights travel in the state: they too must match
        assert torch.equal(a[k], b[k]), k
    hist_a = [e for e in straight.history if e["kind"] == "eval"]
    hist_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [e["val_loss"] for e in hist_a] == [e["val_loss"] for e in hist_b if e["kind"] == "eval"]
    assert len(C.step_files(tmp_path / "b")) == 2  # keep_last


def test_refuses_to_overwrite_a_run_without_asking(prepared, tiny_run, tmp_path):
    model_cfg, cfg = get_preset("smoke", max_iters=2)
    with pytest.raises(FileExistsError, match="--resume"):
        train(prepared, model_cfg, cfg, tiny_run, **QUIET)


def test_early_stopping_and_time_budget(prepared, tmp_path):
    model_cfg, cfg = get_preset("smoke", max_iters=1000, eval_interval=2, lr=1e-9, warmup_iters=0, patience=2)
    r = train(prepared, model_cfg, cfg, tmp_path / "es", **QUIET)
    assert r.stop_reason == "early stop" and r.step < 1000
    model_cfg, cfg = get_preset("smoke", max_iters=10**6, eval_interval=10**5, max_minutes=0.05)
    r = train(prepared, model_cfg, cfg, tmp_path / "tb", **QUIET)
    assert r.stop_reason == "time budget" and 0 < r.step < 10**6
    assert (tmp_path / "tb" / f"step-{r.step:06d}.safetensors").exists()  # the final state was saved


def test_the_time_budget_counts_training_not_evaluation(prepared, tmp_path):
    # Every evaluation sleeps 1 s and the budget is 2 s: were evaluations counted, time would run
    # out after the evaluations at steps 0 and 1; as plots-bench v1 says, only training counts.
    model_cfg, cfg = get_preset("smoke", max_iters=4, eval_interval=1, sample_tokens=0, max_minutes=2 / 60)

    def slow_eval(rec):
        if rec["kind"] == "eval":
            time.sleep(1.0)

    r = train(prepared, model_cfg, cfg, tmp_path / "r", callback=slow_eval, **QUIET)
    assert r.stop_reason == "max_iters" and r.step == 4
    assert r.eval_s >= 5.0 and r.train_s < 2.0
    evals = [h for h in r.history if h["kind"] == "eval"]
    assert [h["step"] for h in evals] == [0, 1, 2, 3, 4]
    assert evals[-1]["elapsed_s"] < 2.0  # the clock saved for --resume is the training clock
    assert C.load(tmp_path / "r" / "step-000004.safetensors").info["elapsed_s"] < 2.0


def test_gradient_accumulation_matches_a_bigger_batch(prepared, tmp_path):
    """2 micro-batches of 4 == 1 batch of 8: same windows, same mean loss, same update. So is a
    step of 2 x 4 that --micro-batch runs as one pass of 8 (what a big GPU does on its own), and
    one of 1 x 8 that it runs as 2 passes of 4."""
    m, c1 = get_preset("smoke", max_iters=3, batch_size=8, grad_accum=1, eval_interval=100, sample_tokens=0)
    _, c2 = get_preset("smoke", max_iters=3, batch_size=4, grad_accum=2, eval_interval=100, sample_tokens=0)
    r1 = train(prepared, m, c1, tmp_path / "one", **QUIET)
    r2 = train(prepared, m, c2, tmp_path / "two", **QUIET)
    r3 = train(prepared, m, replace(c2, micro_batch=8), tmp_path / "merged", **QUIET)
    r4 = train(prepared, m, replace(c1, micro_batch=4), tmp_path / "split", **QUIET)
    a = _weights(r1.last_checkpoint)
    for other in (r2, r3, r4):
        b = _weights(other.last_checkpoint)
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5), (other.run_dir.name, k)


def test_running_out_of_memory_says_what_to_do_and_keeps_the_checkpoints(prepared, tmp_path, monkeypatch):
    """A pass too big for the card (torch raises OutOfMemoryError mid-run) ends in one error line that
    names --micro-batch and --resume; the checkpoints already written resume to the end."""
    from helpers.model import GPT

    m, c = get_preset("smoke", max_iters=6, eval_interval=2, sample_tokens=0)
    forward, calls = GPT.forward, {"n": 0}

    def forward_that_runs_out(self, *a, **k):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 4:  # the 4th training pass, step 3: after the step-2 checkpoint
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, *a, **k)

    monkeypatch.setattr(GPT, "forward", forward_that_runs_out)
    with pytest.raises(RuntimeError, match=r"ran out of memory \(CUDA out of memory\. Tried to allocate 2\.00 GiB\)"
                       r".*--resume.*--micro-batch N \(N divides batch_size x grad_accum = 8\)"):
        train(prepared, m, c, tmp_path / "run", **QUIET)
    assert [p.name for p in C.step_files(tmp_path / "run")] == ["step-000000.safetensors", "step-000002.safetensors"]
    monkeypatch.setattr(GPT, "forward", forward)
    r = train(prepared, m, c, tmp_path / "run", resume=True, **QUIET)
    assert r.step == 6


def test_a_compiled_run_learns_what_the_eager_run_learns(prepared, tmp_path):
    """torch.compile (the cpu preset's, on bf16 CPUs) changes the speed, not the training: the same
    evaluation losses as the eager run, up to float rounding, with the average of the weights
    (evaluated through its own compiled graph) and checkpoints that load as usual."""
    from torch._dynamo.utils import counters

    m, c = get_preset("smoke", max_iters=6, eval_interval=3, sample_tokens=0, ema_decay=0.9)
    eager = train(prepared, m, c, tmp_path / "eager", **QUIET)
    counters.clear()
    compiled = train(prepared, m, replace(c, compile=True), tmp_path / "compiled", **QUIET)
    assert counters["stats"]["unique_graphs"] >= 2  # the training graph and the average's evaluation graph
    val = [[h["val_loss"] for h in r.history if h["kind"] == "eval"] for r in (eager, compiled)]
    assert len(val[0]) == 3 and val[0][0] > val[0][-1] + 0.05  # it learned something to compare
    assert val[1] == pytest.approx(val[0], abs=2e-3)
    a, b = _weights(eager.last_checkpoint), _weights(compiled.last_checkpoint)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=2e-3) for k in a)


def test_memorisation_warning(prepared, tmp_path):
    """A model too big for too little data: val rises while train falls, and the loop says so."""
    from helpers.prepare import prepare
    from conftest import write

    docs = "\n===\n".join(f"Plot: {i} the {'red' if i % 2 else 'blue'} fox {i * 7} jumps" for i in range(40))
    small = prepare(write(tmp_path / "s.txt", docs), tmp_path / "small", vocab_size=300, progress=False,
                    log=lambda *_: None, val_fraction=0.3)
    model_cfg, cfg = get_preset("smoke", block_size=16, n_layer=2, n_embd=64, max_iters=400, eval_interval=25,
                                lr=1e-2, warmup_iters=0, min_lr_ratio=1.0, sample_tokens=0, dropout=0.0)
    r = train(small, model_cfg, cfg, tmp_path / "mem", **QUIET)
    warned = [e for e in r.history if e.get("warning")]
    assert warned and warned[0]["warning"] == MEMORISE_ADVICE


def test_corpus_shorter_than_a_block_is_refused(tmp_path):
    from helpers.prepare import prepare
    from conftest import write

    short = prepare(write(tmp_path / "s.txt", "A short plot.\n===\nAnother one, also short."), tmp_path / "short",
                    vocab_size=300, progress=False, log=lambda *_: None)
    model_cfg, cfg = get_preset("smoke")
    with pytest.raises(DataError, match="fewer than one block of 65"):
        train(short, model_cfg, cfg, tmp_path / "x", **QUIET)


def test_finetune_refuses_a_tokenizer_mismatch(tiny_run, tmp_path):
    from helpers.prepare import prepare
    from conftest import write

    other = prepare(write(tmp_path / "o.txt", "\n===\n".join(["A ship sails the sea. " * 30] * 10)), tmp_path / "o",
                    vocab_size=300, progress=False, log=lambda *_: None)
    ck = C.load(tiny_run)
    model_cfg, cfg = get_preset("smoke", max_iters=2)
    with pytest.raises(DataError, match="tokenizer mismatch.*--tokenizer-from"):
        train(load_data(other), ck.config, cfg, tmp_path / "ft", init_from=ck, **QUIET)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_cli_run_saves_and_exits_cleanly_then_resumes(prepared, tmp_path, cli_env, sig):
    """A real `plotgpt train` subprocess gets SIGTERM / SIGINT mid-run: exit 0, resumable checkpoint."""
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers", "train", "--data", str(prepared), "--preset", "smoke", "--out", str(out),
           "--max-iters", "100000", "--eval-interval", "50", "--quiet"]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "step-000050.safetensors").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"interrupted ({sig.name})" in stdout
    steps = C.step_files(out)
    step = int(steps[-1].stem.split("-")[1])
    assert step >= 50 and C.load(steps[-1], with_state=True).state["rng_batch"].numel() > 0
    r = subprocess.run(cmd[:-5] + ["--max-iters", str(step + 10), "--resume", "--quiet"], env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"resuming from {steps[-1]} (step {step})" in r.stdout and f"at step {step + 10}" in r.stdout


def test_resume_refuses_a_new_shape_in_one_line_and_applies_a_new_dropout(tiny_run, prepared, tmp_path, cli_env):
    """`plotgpt train --resume --n-layer 3` cannot fit the saved weights: one line, exit 2, nothing
    touched. A new dropout or learning rate can change: the run goes on with it and says so."""
    import shutil
    import subprocess
    import sys

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    def files():  # the lock file is touched by any training that starts; the run's files are not
        return sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir() if p.name != ".lock")

    before = files()
    base = [sys.executable, "-m", "helpers", "train", "--data", str(prepared), "--out", str(run), "--resume", "--quiet"]
    p = subprocess.run(base + ["--n-layer", "3"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "cannot change its shape (n_layer 2 -> 3)" in p.stderr and "--out" in p.stderr
    assert files() == before
    p = subprocess.run(base + ["--dropout", "0.2", "--lr", "0.001", "--max-iters", "35"], env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "--resume: dropout 0 -> 0.2" in p.stdout
    assert "max_iters 30 -> 35" in p.stdout and "lr 0.003 -> 0.001" in p.stdout
    last = C.load(run / "step-000035.safetensors")
    assert last.config.dropout == 0.2 and last.info["train_config"]["lr"] == 0.001


def test_the_resume_state_is_the_one_run_state_saved(prepared, tmp_path):
    """What a resumable checkpoint records of the run is exactly RunState's fields, read back as saved."""
    from helpers.run import RunFolder, RunState

    model_cfg, cfg = get_preset("smoke", max_iters=10, eval_interval=5, sample_tokens=0)
    r = train(prepared, model_cfg, cfg, tmp_path / "r", **QUIET)
    ck = C.load(RunFolder(r.run_dir).newest_resumable(), with_state=True)
    state = RunState.from_info(ck.info)
    assert state.step == 10 and state.tokens_seen == 10 * cfg.step_sequences * model_cfg.block_size
    assert state.best_val == r.best_val and state.to_info().items() <= ck.info.items()
