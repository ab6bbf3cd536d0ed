"""Injected faults: a NaN loss, a second training in the same folder, a full disk while saving."""
import errno
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from helpers import checkpoint as C
from helpers import train
from helpers.atomic import FolderBusy, folder_lock
from helpers.config import get_preset

QUIET = dict(progress=False, log=lambda *_: None)


def _nan_losses(monkeypatch, bad):
    """Make the real training loss NaN on the training passes for which `bad(n)` holds (n counts them
    from 0; one pass per step here, so n is the step the first time through)."""
    from helpers.kernels import TokenLoss

    forward, calls = TokenLoss.forward, {"n": -1}

    def faulty(self, logits, targets):
        loss = forward(self, logits, targets)
        if self.training:  # evaluation runs in eval mode: only training steps are hit
            calls["n"] += 1
            if bad(calls["n"]):
                return loss * float("nan")
        return loss

    monkeypatch.setattr(TokenLoss, "forward", faulty)


def _all_finite(path):
    ck = C.load(path, with_state=True)  # the weights, and the trained weights a run with EMA keeps in its state
    return all(torch.isfinite(v).all() for v in [*ck.model.state_dict().values(), *ck.state.values()]
               if v.is_floating_point())


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_a_nan_loss_rolls_back_to_the_last_good_checkpoint_and_the_run_finishes(prepared, tmp_path, monkeypatch,
                                                                                ema_decay):
    _nan_losses(monkeypatch, lambda n: n == 25)  # step 25, once: replayed after the rollback, it is fine
    model_cfg, cfg = get_preset("smoke", max_iters=40, eval_interval=10, ema_decay=ema_decay)
    res = train.train(prepared, model_cfg, cfg, tmp_path / "run", **QUIET)
    assert res.step == 40 and res.stop_reason == "max_iters"
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rb = [r for r in recs if r["kind"] == "rollback"]
    assert len(rb) == 1 and rb[0]["step"] == 30 and rb[0]["to_step"] == 20  # detected at the next sync
    assert all(math.isfinite(r.get("loss", 0)) and math.isfinite(r.get("val_loss", 0)) for r in recs)
    assert [r["step"] for r in recs if r["kind"] == "eval"] == [0, 10, 20, 30, 40]
    for f in (tmp_path / "run").glob("*.safetensors"):
        assert _all_finite(f), f


def test_a_run_that_keeps_diverging_stops_with_advice_and_keeps_its_good_checkpoints(prepared, tmp_path, monkeypatch):
    _nan_losses(monkeypatch, lambda n: n >= 25)  # from step 25 on, every time it is replayed
    model_cfg, cfg = get_preset("smoke", max_iters=40, eval_interval=10)
    with pytest.raises(FloatingPointError, match="lower --lr"):
        train.train(prepared, model_cfg, cfg, tmp_path / "run", **QUIET)
    files = sorted(p.name for p in (tmp_path / "run").glob("*.safetensors"))
    assert "step-000020.safetensors" in files and "step-000030.safetensors" not in files
    assert all(_all_finite(tmp_path / "run" / f) for f in files)
    monkeypatch.undo()
    assert train.train(prepared, model_cfg, cfg, tmp_path / "run", resume=True, **QUIET).step == 40


def test_a_second_training_in_the_same_folder_is_refused_at_once(prepared, tmp_path, cli_env):
    run = tmp_path / "run"
    with folder_lock(run):  # as a running training holds it
        p = subprocess.run([sys.executable, "-m", "helpers", "train", "--data", str(prepared), "--preset", "smoke",
                            "--max-iters", "5", "--out", str(run), "--quiet"], env=cli_env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert "in use by another training" in p.stderr and "--out" in p.stderr
        assert not list(run.glob("*.safetensors"))
        with pytest.raises(FolderBusy):
            with folder_lock(run):
                pass
    with folder_lock(run):  # released with its holder
        pass


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(prepared, tmp_path, monkeypatch):
    """The disk fills during the save of step 20: the error is clear and step 10's checkpoint still loads."""
    model_cfg, cfg = get_preset("smoke", max_iters=40, eval_interval=10)
    real_save = C.save

    def full_disk(path, *a, **kw):
        if "000020" in str(path):
            from helpers.atomic import atomic_path

            with atomic_path(path) as tmp:  # a partial temp file, then ENOSPC, as a real full disk does
                tmp.write_bytes(b"\0" * 1000)
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real_save(path, *a, **kw)

    monkeypatch.setattr(C, "save", full_disk)
    with pytest.raises(OSError, match="No space left.*--resume"):
        train.train(prepared, model_cfg, cfg, tmp_path / "run", **QUIET)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.safetensors")) == ["best.safetensors", "step-000000.safetensors",
                                                                  "step-000010.safetensors"]
    assert not list(run.glob(".*.tmp"))  # the partial file is gone
    assert C.load(run / "step-000010.safetensors", with_state=True).info["step"] == 10
    monkeypatch.setattr(C, "save", real_save)
    assert train.train(prepared, model_cfg, cfg, run, resume=True, **QUIET).step == 40


def test_interrupting_the_notebook_kernel_mid_training_leaves_a_resumable_checkpoint(prepared, tmp_path):
    """Kernel > Interrupt in JupyterLab sends SIGINT to the kernel: the training cell saves and returns."""
    from jupyter_client.manager import start_new_kernel

    run = tmp_path / "run"
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute("from helpers.config import get_preset\nfrom helpers.train import train\n"
                   "m, c = get_preset('smoke', max_iters=10**6, eval_interval=20)\n"
                   f"res = train({str(prepared)!r}, m, c, {str(run)!r}, progress=False)")
        deadline = time.time() + 120
        while len(C.step_files(run)) < 2 and time.time() < deadline:  # well into training
            time.sleep(0.1)
        assert len(C.step_files(run)) >= 2, "training did not start in the kernel"
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=120)
        assert reply["content"]["status"] == "ok"  # the cell ended normally, not with a KeyboardInterrupt
        kc.execute("print('RESULT', res.stop_reason, res.step)")
        out = ""
        while "RESULT" not in out or not out.endswith("\n"):
            msg = kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
        result = out[out.index("RESULT"):].split()
        assert result[1:3] == ["interrupted", "(SIGINT)"], out
        stopped_at = int(result[3])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    newest = C.step_files(run)[-1]
    assert C.load(newest, with_state=True).info["step"] == stopped_at  # saved at the very step it stopped
    model_cfg, cfg = get_preset("smoke", max_iters=stopped_at + 5, eval_interval=20)
    assert train.train(prepared, model_cfg, cfg, run, resume=True, **QUIET).step == stopped_at + 5


def test_a_full_disk_while_writing_the_memmaps_keeps_the_previous_prepared_data(tmp_path, monkeypatch):
    from conftest import SAMPLE
    from helpers import dataset
    from helpers.dataset import load_data
    from helpers.prepare import prepare

    out = prepare(SAMPLE, tmp_path / "data", vocab_size=300, progress=False, log=lambda *_: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write, calls = dataset.TokenWriter.write, []

    def fills_up(self, ids):
        calls.append(1)
        if len(calls) > 50:  # the disk fills part-way through the encoding
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, ids)

    monkeypatch.setattr(dataset.TokenWriter, "write", fills_up)
    with pytest.raises(OSError, match="No space left.*intact"):
        prepare(SAMPLE, out, vocab_size=400, progress=False, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp files, nothing changed
    assert load_data(out).vocab_size == 300


def _one_line_file(path, target_bytes: int) -> int:
    """A file of `target_bytes` or a little more on ONE line: words with multi-byte characters, no
    separator. Its repeating block is not a power of two long, so read boundaries fall everywhere,
    inside characters too. Returns the number of characters once stripped."""
    import random
    rng = random.Random(0)
    syll = ["ka", "ro", "mé", "li", "tü", "sa", "ne", "do", "vi", "ß", "an", "to", "—", "“", "”", "rel", "pa", "1"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    block = " ".join(rng.choice(words) for _ in range(160_000)) + " "
    raw, repeats = block.encode("utf-8"), 0
    with open(path, "wb") as f:
        while repeats * len(raw) < target_bytes:
            f.write(raw)
            repeats += 1
    return repeats * len(block) - 1  # the last space is stripped


@pytest.mark.slow
def test_a_one_gigabyte_single_line_file_streams_in_bounded_memory(tmp_path, cli_env):
    import os
    from helpers.dataset import load_data

    big = tmp_path / "one-line.txt"
    n_chars = _one_line_file(big, 1 << 30)
    # The child reports its own high-water mark (VmHWM of its address space since exec); the
    # rusage of a forked child would also count the pytest process it was forked from.
    report = ("import atexit, runpy, sys; atexit.register(lambda: print('VmHWM', next(l.split()[1] for l in "
              "open('/proc/self/status') if l.startswith('VmHWM')))); "
              "sys.argv = ['plotgpt'] + sys.argv[1:]; runpy.run_module('helpers', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", report, "prepare", str(big), "--out", str(tmp_path / "data"), "--quiet"],
                       env=cli_env, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    peak_mb = int(out.split("VmHWM ")[1].split()[0]) / 1024  # kB
    print(f"1 GiB single line: peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 800, f"peak memory {peak_mb:.0f} MB for a {big.stat().st_size >> 20} MB file: not streamed"
    assert "cuts made in documents longer than" in out and "check the separator" in out  # the user is told

    data = load_data(tmp_path / "data")
    s = data.meta["splits"]
    n_docs = s["train"]["documents"] + s["val"]["documents"]
    assert n_docs >= n_chars // 1_000_000  # cut into pieces of at most a million characters
    # every cut falls on a space, which is all that is lost: no character dropped or doubled
    assert s["train"]["characters"] + s["val"]["characters"] == n_chars - (n_docs - 1)
    val = data.tokens("val")
    with open(big, "rb") as f:
        f.seek(-4000, os.SEEK_END)
        tail = f.read().decode("utf-8", errors="ignore").rstrip()
    decoded = data.tokenizer.decode(val[-1500:].tolist())
    assert tail[-2000:] in decoded  # the very end of the file arrived intact


def test_bom_mixed_line_endings_and_nul_bytes_prepare_to_clean_documents(tmp_path):
    from helpers.dataset import load_data
    from helpers.prepare import prepare

    body = "Title: A {i}\r\nPlot: One\x00 day\rshe left.\n===\r\nTitle: B {i}\nPlot: café\x00 “ok”.\r\n===\n"
    src = tmp_path / "messy.txt"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(body.format(i=i) for i in range(40)).encode("utf-8"))
    data = load_data(prepare(src, tmp_path / "data", vocab_size=300, progress=False, log=lambda *_: None))
    text = data.tokenizer.decode(np.concatenate([data.tokens("train"), data.tokens("val")]).tolist())
    docs = [d for d in text.split("<|endoftext|>") if d]
    assert len(docs) == 80
    assert docs[0] == "Title: A 0\nPlot: One day\nshe left." and docs[1] == "Title: B 0\nPlot: café “ok”."
    assert not any(c in text for c in "\r\x00\ufeff")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_save_a_resumable_checkpoint_and_exit_0(prepared, tmp_path, cli_env, sig):
    import signal

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers", "train", "--data", str(prepared), "--out", str(run), "--preset", "smoke",
           "--eval-interval", "1000", "--quiet"]  # one eval at step 0: the stop lands between evals
    proc = subprocess.Popen([*cmd, "--max-iters", "100000"], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not C.step_files(run) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # training is under way once its first checkpoint is on disk
    assert proc.poll() is None, proc.stdout.read()
    time.sleep(0.5)
    proc.send_signal(getattr(signal, sig))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    newest = C.step_files(run)[-1]
    stopped = C.load(newest, with_state=True).info["step"]
    assert 0 < stopped < 1000 and f"interrupted ({sig})" in out  # saved at the step it stopped, not the last eval
    done = subprocess.run([*cmd, "--resume", "--max-iters", str(stopped + 5)], env=cli_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert C.load(C.step_files(run)[-1], with_state=True).info["step"] == stopped + 5
