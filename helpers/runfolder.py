"""A run folder's bookkeeping: which checkpoint to resume from, the metrics log, TensorBoard,
the tokenizer check, and the Ctrl-C / SIGTERM flag the training loop polls.

Used by helpers.train (and the CLI); split from it so the loop itself stays readable.
"""
from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

from . import checkpoint as ckpt_io
from . import tokenizer as tok
from .atomic import atomic_write_text
from .memmap import DataError, PreparedData


class StopFlag:
    """SIGINT / SIGTERM ask the loop to stop at the next step boundary (and save)."""

    def __init__(self):
        self.signal: str | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some notebook front-ends): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal:  # a second Ctrl-C while saving: restore the default and let it through
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def newest_resumable(run_dir: Path) -> Path | None:
    """The newest step checkpoint in run_dir that loads its header cleanly (skips corrupt ones)."""
    for path in reversed(ckpt_io.step_files(run_dir)):
        try:
            ckpt_io.read_info(path)
            return path
        except ckpt_io.CheckpointError:
            continue
    return None


def check_tokenizer(enc, data: PreparedData, source) -> None:
    if tok.fingerprint(enc) != data.meta["tokenizer"]["fingerprint"]:
        raise DataError(f"tokenizer mismatch: {source} was trained with tokenizer {tok.fingerprint(enc)} but "
                        f"{data.path} was prepared with {data.meta['tokenizer']['fingerprint']}; prepare the corpus "
                        f"with the checkpoint's tokenizer: plotgpt prepare CORPUS --tokenizer-from {source}")


def read_history(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rec = json.loads(line)
            if rec.get("step", 0) <= upto:
                out.append(rec)
    return out


def rewrite_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def tensorboard(folder: Path):
    """A SummaryWriter when tensorboard is installed, else None (logging to JSONL only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
