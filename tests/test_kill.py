"""SIGKILL at random moments - including in the middle of writing a checkpoint - never costs more
than the steps since the last checkpoint, and the resumed run ends bit-identical (CPU, fixed seed)."""
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import checkpoint as C

pytestmark = pytest.mark.slow
ARGS = ["--preset", "smoke", "--max-iters", "60", "--eval-interval", "5", "--dropout", "0.1", "--quiet"]


def _cmd(prepared, out, *extra):
    return [sys.executable, "-m", "helpers", "train", "--data", str(prepared), "--out", str(out), *ARGS, *extra]


def _weights(path):
    return C.load(path).model.state_dict()


def test_twenty_kills_then_resume_end_where_an_uninterrupted_run_ends(prepared, tmp_path, cli_env):
    env = dict(cli_env, OMP_NUM_THREADS="1")
    subprocess.run(_cmd(prepared, tmp_path / "straight"), env=env, check=True, capture_output=True, timeout=300)
    want = _weights(tmp_path / "straight" / "step-000060.safetensors")

    run, rng, kills, saving_kills = tmp_path / "killed", random.Random(7), 0, 0
    slow = dict(env, PLOTGPT_TEST_SLOW_WRITE_S="0.4")  # every save holds a temp file open for 0.4 s
    while kills < 20:
        proc = subprocess.Popen(_cmd(prepared, run, "--resume"), env=slow, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if kills % 2:  # every other kill lands while a checkpoint is half written
            deadline = time.time() + 60
            while not list(run.glob(".*.tmp")) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            saving_kills += bool(list(run.glob(".*.tmp")))
        else:
            time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is not None:  # it finished before the kill: start over from the checkpoint of step 30
            for f in C.step_files(run):
                if int(f.stem.split("-")[1]) > 30:
                    f.unlink()
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        # After every kill: the newest complete checkpoint loads, and no temp file is ever taken for one.
        newest = max(C.step_files(run), default=None)
        if newest is not None:
            assert C.load(newest, with_state=True).info["step"] == int(newest.stem.split("-")[1])
    assert saving_kills >= 5
    done = subprocess.run(_cmd(prepared, run, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(run.glob(".*.tmp"))
    got = _weights(run / "step-000060.safetensors")
    for k in want:
        assert torch.equal(got[k], want[k]), k
