"""A resumable run: its state (`RunState`), what it trains (`Trainable`) and its folder (`RunFolder`):
one `save` and one `restore`, used alike by `--resume` and by the rollback after a non-finite loss.
Also the run's log (metrics.jsonl, TensorBoard), its training clock and the Ctrl-C / SIGTERM flag.

A run folder holds `step-NNNNNN.safetensors` (the newest `keep_last`, each resumable: weights,
optimizer moments, loss scaler, random states), `best.safetensors` (weights only), `metrics.jsonl`,
`tb/` and `loss.png`. Used by helpers/train.py, which stays the loop.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint as ckpt_io
from .atomic import atomic_write_text, disk_errors
from .config import TrainConfig
from .dataset import PreparedData
from .ema import EMA, params_from_tensors, params_to_tensors
from .model import GPT
from .optim import optimizer_from_tensors, optimizer_to_tensors


@dataclass
class RunState:
    """Where a run stands: all a resumable checkpoint needs besides tensors."""

    step: int = 0
    best_val: float = math.inf
    evals_since_best: int = 0
    tokens_seen: int = 0
    train_s: float = 0.0  # the training clock over all sessions (what --max-minutes counts)

    def to_info(self) -> dict:
        return {"step": self.step, "best_val": self.best_val, "evals_since_best": self.evals_since_best,
                "tokens_seen": self.tokens_seen, "elapsed_s": self.train_s}

    @classmethod
    def from_info(cls, info: dict) -> RunState:
        return cls(info["step"], info["best_val"], info["evals_since_best"], info["tokens_seen"], info["elapsed_s"])


@dataclass
class Trainable:
    """What a step changes: the weights, their average, the optimizer, the fp16 loss scaler and the
    generator of the batch stream (the same on every rank)."""

    model: GPT
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    batch_gen: torch.Generator

    @property
    def saved_model(self) -> GPT:
        """The weights every checkpoint file holds: the average when there is one (what was evaluated)."""
        return self.model if self.ema is None else self.ema.model


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metrics = self.path / "metrics.jsonl"

    def step_files(self) -> list[Path]:
        return ckpt_io.step_files(self.path)

    def existing(self) -> list[Path]:
        """The checkpoint files of a run already here."""
        return self.step_files() + list(self.path.glob("best.safetensors"))

    def newest_resumable(self) -> Path | None:
        """The newest step checkpoint whose header loads cleanly (a corrupt one is skipped)."""
        for path in reversed(self.step_files()):
            try:
                ckpt_io.read_info(path)
                return path
            except ckpt_io.CheckpointError:
                continue
        return None

    def save(self, name: str, t: Trainable, tokenizer, state: RunState, info: dict, *,
             batch_state: torch.Tensor | None = None) -> Path:
        """Write `name`: weights always; with `batch_state` (the batch generator's state before the batch
        already drawn for the next step) everything a resume needs, so the file is resumable."""
        info = {**state.to_info(), **info}
        tensors = {}
        if batch_state is not None:
            tensors, info["optimizer_groups"] = optimizer_to_tensors(t.optimizer)
            info["scaler"] = t.scaler.state_dict() if t.scaler.is_enabled() else None
            if t.ema is not None:  # the file's weights are the average; resuming needs the trained ones too
                tensors.update(params_to_tensors(t.model, "raw."))
                info["ema_updates"] = t.ema.updates
            tensors["rng_torch"] = torch.get_rng_state()
            tensors["rng_batch"] = batch_state
            if torch.cuda.is_available() and next(t.model.parameters()).is_cuda:
                tensors["rng_cuda"] = torch.cuda.get_rng_state()
        path = self.path / name
        with disk_errors(path, "the earlier checkpoints are intact - free some space, then continue with --resume"):
            return ckpt_io.save(path, t.saved_model, tokenizer, info, tensors)

    def prune(self, keep_last: int) -> None:
        for old in self.step_files()[:-keep_last]:
            old.unlink(missing_ok=True)

    @staticmethod
    def restore(ck: ckpt_io.Checkpoint, t: Trainable, *, random_state: bool) -> RunState:
        """Put a resumable checkpoint back into `t` and return its run state.

        Resume and rollback both come here. The one difference is `random_state`: a resume restores
        the global torch (and CUDA) generator, so dropout draws what the uninterrupted run would have
        drawn; a rollback leaves it where it is, since replaying the exact draws that diverged would
        diverge again (the caller also steps the batch stream on). The training clock a rollback gets
        back is not used: time spent on the steps that diverged stays spent.
        """
        info, tensors = ck.info, ck.state
        if t.ema is not None:
            t.ema.reset(ck.model, info.get("ema_updates", 0))
        if "ema_updates" in info:  # saved with an average: the weights being trained travel as raw.*
            params_from_tensors(t.model, tensors, "raw.")
        elif t.model is not ck.model:
            t.model.load_state_dict(ck.model.state_dict())
        optimizer_from_tensors(t.optimizer, tensors, info["optimizer_groups"])
        if info.get("scaler"):
            t.scaler.load_state_dict(info["scaler"])
        t.batch_gen.set_state(tensors["rng_batch"])
        if random_state:
            torch.set_rng_state(tensors["rng_torch"])
            if "rng_cuda" in tensors and next(t.model.parameters()).is_cuda:
                torch.cuda.set_rng_state(tensors["rng_cuda"])
        return RunState.from_info(info)


def data_info(data: PreparedData) -> dict:
    """What a checkpoint records of the data it was trained on."""
    return {"path": str(data.path), "fingerprint": data.fingerprint, "bytes_per_token": data.bytes_per_token("val")}


def checkpoint_info(cfg: TrainConfig, data: PreparedData, metrics: dict) -> dict:
    return {"train_config": asdict(cfg), "data": data_info(data), **metrics}


class RunLog:
    """metrics.jsonl (one JSON record per line), TensorBoard where installed, and a callback."""

    def __init__(self, folder: RunFolder, callback: Callable[[dict], None] | None, enabled: bool):
        self.path, self.callback, self.enabled = folder.metrics, callback, enabled
        self.history: list[dict] = []
        self.tb = None

    def open(self, upto: int | None) -> None:
        """Start the log: a resumed run (`upto` its step) keeps its records up to there, a new one none."""
        if not self.enabled:
            return
        self.truncate(upto if upto is not None else -1)
        self.tb = tensorboard(self.path.parent / "tb")

    def truncate(self, upto: int) -> None:
        """Drop the records after step `upto` (a rollback's or a resume's), in memory and on disk."""
        if not self.enabled:
            return
        if not self.history and self.path.exists():
            self.history = read_history(self.path, upto)
        self.history = [h for h in self.history if h.get("step", 0) <= upto]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.history))

    def emit(self, rec: dict) -> None:
        if not self.enabled:
            return
        self.history.append(rec)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k in ("train_loss", "val_loss", "val_bpb", "lr", "loss"):
                if k in rec:
                    self.tb.add_scalar(k, rec[k], rec["step"])
            if rec.get("sample"):
                self.tb.add_text("sample", rec["sample"], rec["step"])
        if self.callback is not None:
            self.callback(rec)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_history(path: Path, upto: int) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rec = json.loads(line)
            if rec.get("step", 0) <= upto:
                out.append(rec)
    return out


def tensorboard(folder: Path):
    """A SummaryWriter when tensorboard is installed, else None (logging to JSONL only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


class Clock:
    """The training clock: what `--max-minutes` counts. Evaluations, samples and checkpoint writes run
    inside `paused()`, so evaluating more often never costs training steps (as plots-bench v1 says)."""

    def __init__(self, before: float = 0.0):
        self.before, self.start, self.paused_s = before, time.monotonic(), 0.0
        self._paused_at: float | None = None

    @contextlib.contextmanager
    def paused(self):
        self._paused_at = time.monotonic()
        try:
            yield
        finally:
            self.paused_s += time.monotonic() - self._paused_at
            self._paused_at = None

    @property
    def session_s(self) -> float:
        """Training time in this session (standing still while paused)."""
        now = self._paused_at if self._paused_at is not None else time.monotonic()
        return now - self.start - self.paused_s

    @property
    def train_s(self) -> float:
        """Training time over all sessions of the run."""
        return self.before + self.session_s


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
