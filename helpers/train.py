"""The training loop: random windows, AdamW, warmup + cosine, gradient accumulation, clipping,
AMP, periodic evaluation with a demo generation, checkpoints (periodic + best, keep the last K),
exact resume, early stopping, a memorisation warning, a time budget, clean Ctrl-C / SIGTERM.

It reads in nanoGPT's order: `start` (a fresh, a resumed or a fine-tuned run), `train_step`,
`evaluate`, `rollback`, and `loop`, which calls them. The run's state and its one save / restore
are in helpers/run.py. Taught in notebook 04, which writes the loop by hand and checks it against
this one; fine-tuning (notebook 05) is the same loop started from a checkpoint.
"""
from __future__ import annotations

import contextlib
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from . import distributed, sample
from . import tokenizer as tok
from .atomic import folder_lock
from .config import UNTIL_BUDGET, ModelConfig, TrainConfig, shape_changes
from .dataset import DataError, PreparedData, get_batch, load_data
from .device import autocast, detect_device, keep_freed_memory, maybe_compile, pick_dtype, seed_everything
from .ema import EMA
from .evaluate import bits_per_byte, estimate_loss
from .memory import MicroBatch, plan_micro_batch
from .model import GPT
from .optim import configure_optimizer, lr_at
from .run import Clock, RunFolder, RunLog, RunState, StopFlag, Trainable, checkpoint_info

_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError from 2.5
LOG_EVERY = 10  # steps between host syncs for the progress bar / train-loss log
MAX_ROLLBACKS = 3  # non-finite losses survived by rolling back before the run gives up

MEMORISE_ADVICE = (
    "the model is starting to memorise the training text: val loss rose for two evals in a row while "
    "train loss fell. best.safetensors keeps the best model so far. Next time try more data, a smaller "
    "model (--n-layer/--n-embd), more dropout (--dropout 0.2), or fewer --max-iters; --patience stops "
    "such runs early.")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stop_reason: str  # max_iters | time budget | early stop | interrupted
    best_val: float
    last_checkpoint: Path | None
    history: list[dict] = field(default_factory=list)
    train_s: float = 0.0  # time in training steps, over all sessions: what --max-minutes counts
    eval_s: float = 0.0  # time in evaluations and checkpoint writes this session: not counted


class Batches:
    """The stream of training windows: one generator, drawn in the same order on every rank."""

    def __init__(self, tokens: np.ndarray, size: int, block: int, gen: torch.Generator, device: str,
                 world: distributed.World):
        self.tokens, self.size, self.block, self.gen, self.device, self.world = tokens, size, block, gen, device, world
        self.draw()

    def draw(self) -> None:
        """The next batch; `state` is the generator as it was before it, what a checkpoint saves."""
        self.state = self.gen.get_state()
        self.current = get_batch(self.tokens, self.size, self.block, self.gen, self.device, self.world.rank,
                                 self.world.size)


@dataclass
class Step:
    """Everything one optimizer step touches: built by `build_step`, run by `train_step` (and timed,
    the very same, by `plotgpt bench`)."""

    t: Trainable
    model: torch.nn.Module  # what the step calls: the model, compiled and/or wrapped in DDP
    ctx: contextlib.AbstractContextManager  # autocast
    micro: MicroBatch
    batches: Batches
    grad_clip: float
    ddp: bool


def build_step(model: GPT, cfg: TrainConfig, device: str, tokens: np.ndarray, world: distributed.World,
               log=print) -> Step:
    """Optimizer, weight average, loss scaler, batch stream and the split into passes, for `model`."""
    dtype = pick_dtype(device, cfg.dtype)
    optimizer = configure_optimizer(model, cfg, device)
    # The average of the weights is what is evaluated and saved (helpers/ema.py); rank 0 alone keeps it.
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay and world.main else None
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == torch.float16)
    t = Trainable(model, ema, optimizer, scaler, torch.Generator().manual_seed(cfg.seed))
    run_model = maybe_compile(model, device, log) if cfg.compile else model
    # Several ranks train through DDP: it all-reduces the gradients during backward.
    step_model = DDP(run_model, device_ids=[device] if device.startswith("cuda") else None) if world.active \
        else run_model
    # The step's sequences in as few forward/backward passes as fit: the same step, faster on a big card.
    micro = plan_micro_batch(model.config, cfg, model.num_params(), device)
    if world.active:  # one split on every rank (the smallest card's), so their batch streams stay in step
        passes = int(distributed.agree(world, [float(micro.passes)], device)[0])
        if passes != micro.passes:
            micro = MicroBatch(cfg.step_sequences // passes, passes, "the split every rank's card holds")
    batches = Batches(tokens, micro.size, model.config.block_size, t.batch_gen, device, world)
    return Step(t, step_model, autocast(device, dtype), micro, batches, cfg.grad_clip, world.active)


def train_step(s: Step) -> torch.Tensor:
    """One optimizer step: forward and backward over the step's passes, clip, update, average.
    Returns the step's mean loss, left on the device (reading it is a host sync)."""
    total = torch.zeros((), device=s.batches.current[0].device)
    for i in range(s.micro.passes):
        # DDP: all-reduce the gradients only once they are complete, on the last pass
        sync = s.model.no_sync() if s.ddp and i < s.micro.passes - 1 else contextlib.nullcontext()
        with sync:
            x, y = s.batches.current
            with s.ctx:
                _, loss = s.model(x, y)
                loss = loss / s.micro.passes  # the mean, not the sum, of the passes
            s.batches.draw()  # the next batch, fetched while a GPU still computes
            s.t.scaler.scale(loss).backward()
        total += loss.detach()
    if s.grad_clip > 0:
        s.t.scaler.unscale_(s.t.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(s.t.model.parameters(), s.grad_clip)
    s.t.scaler.step(s.t.optimizer)
    s.t.scaler.update()
    s.t.optimizer.zero_grad(set_to_none=True)
    if s.t.ema is not None:
        s.t.ema.update(s.t.model)
    return total


@dataclass
class Session:
    """One session of a run (until it stops): what the loop reads and changes."""

    cfg: TrainConfig
    data: PreparedData
    world: distributed.World
    device: str
    step: Step
    eval_model: torch.nn.Module  # the average when there is one, else the step's model
    folder: RunFolder
    log: RunLog
    state: RunState
    clock: Clock
    first_step: int  # where this session began
    echo: Callable[[str], None]
    bar: tqdm | None = None
    last_eval_step: int = -1
    rollbacks: int = 0
    shared_s: float = 0.0  # the training clock as every rank agreed on it
    last_checkpoint: Path | None = None

    def say(self, msg: str) -> None:
        (self.bar.write if self.bar is not None else self.echo)(msg)  # above the progress bar, not through it


# ---- start: a fresh, a resumed or a fine-tuned run ------------------------------------------
def _padded_vocab(n: int) -> int:
    """Round the embedding table up to a multiple of 64: faster matmuls (GPT-2's 50257 -> 50304)."""
    return min(-(-n // 64) * 64, tok.MAX_VOCAB)


def _model_from(ck: ckpt_io.Checkpoint, model_cfg: ModelConfig | None, data: PreparedData, how: str, log) -> GPT:
    """The checkpoint's model, with the settings that may change (dropout) taken from `model_cfg`;
    a change of shape is refused: the weights would not fit it."""
    data.check_tokenizer(ck.tokenizer, ck.path)
    if model_cfg is None:
        return ck.model
    changed = shape_changes(ck.config, model_cfg)
    if changed:
        raise ValueError(f"{ck.path} is a {ck.config.n_layer} x {ck.config.n_embd} model and {how} cannot change "
                         f"its shape ({', '.join(changed)}); start a new run with another --out, or --overwrite")
    if model_cfg.dropout == ck.config.dropout:
        return ck.model
    log(f"{how}: dropout {ck.config.dropout:g} -> {model_cfg.dropout:g}")
    model = GPT(replace(ck.config, dropout=model_cfg.dropout))
    model.load_state_dict(ck.model.state_dict())
    return model


def _settings_changed(saved: dict, cfg: TrainConfig) -> str:
    now = vars(cfg)
    return ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in now if k in saved and saved[k] != now[k])


def _initial_model(folder: RunFolder, data, model_cfg, cfg, resume: bool, init_from, log):
    """(model, the checkpoint to resume from or None): resumed, fine-tuned or fresh, in that order."""
    path = folder.newest_resumable() if resume else None
    if resume and path is None:
        log(f"no checkpoint to resume in {folder.path}; starting a new run")
    if path is not None:
        ck = ckpt_io.load(path, device="cpu", with_state=True)
        model = _model_from(ck, model_cfg, data, "--resume", log)
        changed = _settings_changed(ck.info.get("train_config", {}), cfg)
        log(f"resuming from {path} (step {ck.info['step']})" + (f" with {changed}" if changed else ""))
        return model, ck
    if init_from is not None:
        model = _model_from(init_from, model_cfg, data, "fine-tuning", log)
        log(f"fine-tuning {init_from.path} on {data.path} with a fresh optimizer and schedule")
        return model, None
    if model_cfg is None:
        raise ValueError("a new run needs a model config (or resume=True / init_from=a checkpoint)")
    return GPT(replace(model_cfg, vocab_size=_padded_vocab(data.vocab_size))), None


def _check_splits(data: PreparedData, block: int) -> None:
    for split in ("train", "val"):
        n = data.meta["splits"][split]["tokens"]
        if n <= block + 1:
            raise DataError(f"the {split} split has {n:,} tokens, fewer than one block of {block + 1}; use a "
                            "smaller --block-size or a bigger corpus")


def _describe(model: GPT, step: Step, cfg: TrainConfig, device: str, world: distributed.World) -> str:
    mc, micro = model.config, step.micro
    dtype = str(pick_dtype(device, cfg.dtype)).replace("torch.", "")
    tokens = cfg.step_sequences * mc.block_size * world.size
    return (f"model: {model.num_params() / 1e6:.2f}M parameters ({model.num_params(True) / 1e6:.2f}M non-embedding), "
            f"{mc.n_layer} x {mc.n_embd}, block {mc.block_size}, vocab {mc.vocab_size}; device {device}, {dtype}; "
            f"{tokens:,} tokens per step" + (f" ({world.size} data-parallel ranks)" if world.active else "")
            + (f"; {micro.passes} pass{'es' if micro.passes > 1 else ''} of {micro.size} sequences, {micro.why}"
               if micro.size != cfg.batch_size else ""))


def start(world, device: str, data: PreparedData, model_cfg: ModelConfig | None, cfg: TrainConfig, folder: RunFolder,
          *, resume: bool, overwrite: bool, init_from, callback, progress: bool, log) -> Session:
    """Everything a session needs, from scratch or from the run folder's newest checkpoint."""
    existing = folder.existing()
    if existing and not resume and not overwrite:
        raise FileExistsError(f"{folder.path} already holds a run; continue it with --resume, start over with "
                              "--overwrite, or choose another --out")
    seed_everything(cfg.seed)
    if device == "cpu":
        keep_freed_memory()  # no page faults on each step's big tensors
    model, resumed = _initial_model(folder, data, model_cfg, cfg, resume, init_from, log)
    _check_splits(data, model.config.block_size)
    model.to(device)
    state = RunState() if resumed is None else RunState.from_info(resumed.info)
    if world.rank:  # the same initial weights everywhere (seeded above), but each rank its own dropout masks
        torch.manual_seed(cfg.seed + 1000 * world.rank + state.step)
    step = build_step(model, cfg, device, data.tokens("train"), world, log)
    if resumed is not None:
        state = RunFolder.restore(resumed, step.t, random_state=world.main)
        step.batches.draw()  # the batch the saved generator state was about to give
    # Only rank 0 evaluates: through the model itself, never through DDP (whose forward waits for the others).
    eval_model = (step.model.module if step.ddp else step.model) if step.t.ema is None else step.t.ema.model
    if cfg.compile and step.t.ema is not None:  # the average is evaluated through a graph of its own
        eval_model = maybe_compile(step.t.ema.model, device, lambda *_: None)
    distributed.barrier(world)  # every rank has read what it needs from the folder before rank 0 changes it
    run_log = RunLog(folder, callback, enabled=world.main)
    if world.main:
        folder.path.mkdir(parents=True, exist_ok=True)
        if existing and overwrite and resumed is None:  # only now, once the new run is known to start
            for f in existing:
                f.unlink()
            shutil.rmtree(folder.path / "tb", ignore_errors=True)
        run_log.open(upto=state.step if resumed is not None else None)
    log(_describe(model, step, cfg, device, world))
    bar = tqdm(total=None if cfg.max_iters >= UNTIL_BUDGET else cfg.max_iters, initial=state.step, desc="training",
               unit="step", dynamic_ncols=True) if progress else None  # a budget alone: no step count to fill
    return Session(cfg, data, world, device, step, eval_model, folder, run_log, state, Clock(state.train_s),
                   state.step, log, bar, last_eval_step=state.step if resumed is not None else -1,
                   shared_s=state.train_s)


# ---- evaluate, save, roll back ------------------------------------------------------------------
def evaluate(s: Session, lr: float) -> dict | None:
    """Losses on the same eval batches every time (evals compare like with like, and the training stream
    is untouched), bits per byte and a demo sample; None when a loss is not finite."""
    cfg, step = s.cfg, s.state.step
    losses = estimate_loss(s.eval_model, s.data, batch_size=cfg.batch_size * s.world.size,
                           block_size=s.step.t.model.config.block_size, eval_iters=cfg.eval_iters,
                           generator=torch.Generator().manual_seed(cfg.seed + 1), device=s.device, ctx=s.step.ctx)
    rec = {"kind": "eval", "step": step, "train_loss": losses["train"], "val_loss": losses["val"],
           "val_bpb": bits_per_byte(losses["val"], s.data.bytes_per_token("val")), "lr": lr,
           "tokens": s.state.tokens_seen, "elapsed_s": round(s.clock.train_s, 2)}
    if not all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss")):
        if s.world.active:  # only rank 0 evaluates: the others cannot roll back in step with it
            raise FloatingPointError(f"training diverged at step {step} (loss is {rec['val_loss']}); nothing was "
                                     "saved for this step - lower --lr and resume from the last checkpoint")
        return None  # the caller rolls back; nothing non-finite is ever saved
    if cfg.sample_tokens:
        ck = ckpt_io.Checkpoint(s.step.t.saved_model, s.data.tokenizer, {}, s.folder.path)
        with torch.compiler.set_stance("force_eager"):  # a sample's growing lengths would each be a new graph
            rec["sample"] = sample.generate(ck, "", 1, sample.SampleSettings(cfg.sample_tokens, seed=cfg.seed))[0]
    return rec


def save(s: Session, rec: dict) -> None:
    """The step's checkpoint (and best.safetensors when it is the best yet), logged and reported."""
    st = s.state
    improved = rec["val_loss"] < st.best_val
    if improved:
        st.best_val, st.evals_since_best = rec["val_loss"], 0
    elif st.step > 0:
        st.evals_since_best += 1
    st.train_s = s.clock.train_s
    info = checkpoint_info(s.cfg, s.data, {k: rec[k] for k in ("train_loss", "val_loss", "val_bpb")})
    s.last_checkpoint = s.folder.save(f"step-{st.step:06d}.safetensors", s.step.t, s.data.tokenizer, st, info,
                                      batch_state=s.step.batches.state)
    s.folder.prune(s.cfg.keep_last)
    if improved:
        s.folder.save("best.safetensors", s.step.t, s.data.tokenizer, st, info)
    rec["checkpoint"] = s.last_checkpoint.name
    if _memorising([h for h in s.log.history if h.get("kind") == "eval"] + [rec]):
        rec["warning"] = MEMORISE_ADVICE
    s.log.emit(rec)
    s.say(f"step {st.step:>6}: train {rec['train_loss']:.4f}  val {rec['val_loss']:.4f}  "
          f"val bpb {rec['val_bpb']:.4f}  lr {rec['lr']:.2e}{'  (best)' if improved else ''}")
    if rec.get("sample"):
        s.say("  sample: " + rec["sample"][:300].replace("\n", " | "))
    if rec.get("warning"):
        s.say("  warning: " + rec["warning"])


def _memorising(evals: list[dict]) -> bool:
    """Val loss rose twice in a row while train loss fell (warned once per such stretch)."""
    if len(evals) < 3 or evals[-2].get("warning"):
        return False
    a, b, c = evals[-3:]
    return c["val_loss"] > b["val_loss"] > a["val_loss"] and c["train_loss"] < a["train_loss"]


def rollback(s: Session, bad_step: int, why: str) -> None:
    """Back to the newest good checkpoint, past the batches that diverged: a NaN costs steps, not the run."""
    s.rollbacks += 1
    path = s.folder.newest_resumable()
    if path is None or s.rollbacks > MAX_ROLLBACKS:
        raise FloatingPointError(f"training diverged at step {bad_step} ({why}), {s.rollbacks} times; the last good "
                                 f"checkpoint is {path} - lower --lr (now {s.cfg.lr:g}) and resume from it")
    good = ckpt_io.load(path, device="cpu", with_state=True)
    s.state = RunFolder.restore(good, s.step.t, random_state=False)
    torch.randint(2, (s.rollbacks,), generator=s.step.t.batch_gen)  # step the stream on: other windows this time
    s.step.batches.draw()
    s.step.t.optimizer.zero_grad(set_to_none=True)
    s.last_eval_step = s.state.step
    s.log.truncate(s.state.step)
    s.log.emit({"kind": "rollback", "step": bad_step, "to_step": s.state.step, "reason": why})
    s.say(f"warning: {why} at step {bad_step}; rolled back to {path.name} (step {s.state.step}) and moved on to "
          "other batches - nothing non-finite was saved")
    if s.bar is not None:
        s.bar.n = s.state.step
        s.bar.refresh()


# ---- the loop -------------------------------------------------------------------------------------
def _set_lr(s: Session) -> float:
    budget_s = s.cfg.max_minutes * 60
    lr = lr_at(s.state.step, s.cfg, s.shared_s / budget_s if budget_s else 0.0)
    for group in s.step.t.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _stop_reason(s: Session, early: float, interrupted: float, signal_name: str | None) -> str | None:
    if early:
        return "early stop"
    if interrupted:
        return f"interrupted ({signal_name or 'by another rank'})"
    if s.state.step >= s.cfg.max_iters:
        return "max_iters"
    if s.cfg.max_minutes and s.shared_s >= s.cfg.max_minutes * 60:
        return "time budget"
    return None


def _log_train(s: Session, running: torch.Tensor, lr: float) -> bool:
    """Every LOG_EVERY steps, the one host sync of the hot loop; False when the loss is not finite."""
    loss = distributed.mean(s.world, running).item() / LOG_EVERY
    if not math.isfinite(loss):
        rollback(s, s.state.step, f"the training loss became {loss}")
        return False
    s.log.emit({"kind": "train", "step": s.state.step, "loss": loss, "lr": lr})
    if s.bar is not None:
        tokens = s.cfg.step_sequences * s.step.t.model.config.block_size * s.world.size
        rate = tokens * (s.state.step - s.first_step) / max(s.clock.session_s, 1e-9)
        s.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{rate:,.0f}")
    return True


def loop(s: Session) -> str:
    """Evaluate every eval_interval steps, train in between, until a stop; returns why it stopped.
    With several ranks every decision must come out the same on all of them, so the clock and the
    stop flags are agreed on (one tiny all-reduce) every LOG_EVERY steps."""
    running = torch.zeros((), device=s.device)
    tokens_per_step = s.cfg.step_sequences * s.step.t.model.config.block_size * s.world.size
    with StopFlag() as stop:
        while True:
            if not s.world.active:
                s.shared_s = s.clock.train_s
            lr = _set_lr(s)
            early, interrupted = 0.0, 0.0
            due = s.state.step % s.cfg.eval_interval == 0 and s.state.step != s.last_eval_step
            with s.clock.paused() if due else contextlib.nullcontext():  # other ranks wait for rank 0 here
                if due and s.world.main:
                    rec = evaluate(s, lr)
                    if rec is None:
                        rollback(s, s.state.step, "the evaluation loss is not finite")
                        running.zero_()
                        continue
                    save(s, rec)
                    early = float(bool(s.cfg.patience and s.state.evals_since_best >= s.cfg.patience))
                if due:
                    s.last_eval_step = s.state.step
                if not s.world.active or s.state.step % LOG_EVERY == 0 or s.state.step == s.last_eval_step:
                    interrupted, s.shared_s, early = distributed.agree(
                        s.world, [float(bool(stop.signal)), s.clock.train_s, early], s.device)
            reason = _stop_reason(s, early, interrupted, stop.signal)
            if reason is not None:
                return reason
            running += train_step(s.step)
            s.state.step += 1
            s.state.tokens_seen += tokens_per_step
            if s.state.step % LOG_EVERY == 0:
                if not _log_train(s, running, lr):
                    running.zero_()
                    continue
                running.zero_()
            if s.bar is not None:
                s.bar.update(1)


def finish(s: Session, reason: str) -> TrainResult:
    """The final state is always evaluated and saved; then the ranks check they agree."""
    if s.state.step != s.last_eval_step and s.world.main:
        with s.clock.paused():
            rec = evaluate(s, _set_lr(s))
            if rec is None:
                raise FloatingPointError(f"training diverged before the final step {s.state.step}; nothing was saved "
                                         f"for it - the last good checkpoint is {s.folder.newest_resumable()}")
            save(s, rec)
    if not distributed.replicas_equal(s.world, s.step.t.model, s.device):
        raise RuntimeError("data-parallel ranks ended with different weights; please report this as a bug")
    distributed.barrier(s.world)
    if s.bar is not None:
        s.bar.close()
    s.log.close()
    train_s, eval_s = s.clock.train_s, s.clock.paused_s
    evals_were = "this session's evaluations and checkpoints" if s.first_step else "evaluations and checkpoints"
    s.echo(f"stopped at step {s.state.step} ({reason}) after {train_s / 60:.1f} min of training ({evals_were} took "
           f"{eval_s / 60:.1f} min more); best val loss {s.state.best_val:.4f}; checkpoints in {s.folder.path}")
    return TrainResult(s.folder.path, s.state.step, reason, s.state.best_val, s.last_checkpoint, s.log.history,
                       train_s, eval_s)


def train(data: PreparedData | str | Path, model_cfg: ModelConfig | None, cfg: TrainConfig, out_dir: str | Path, *,
          resume: bool = False, overwrite: bool = False, init_from: ckpt_io.Checkpoint | None = None,
          device: str | None = None, callback: Callable[[dict], None] | None = None, progress: bool = True,
          log=print) -> TrainResult:
    """Train a new model, resume the run in `out_dir` (`resume`), or fine-tune `init_from`; return where
    things went. `model_cfg` may be None for the last two: the checkpoint's own. A resume or fine-tune
    applies a new dropout and says so, and refuses a new shape.

    Under torchrun (WORLD_SIZE > 1) this is one rank of a data-parallel run (helpers/distributed.py).
    """
    world, device = distributed.setup(detect_device(device))
    data = data if isinstance(data, PreparedData) else load_data(data)
    quiet = (lambda *_: None)
    try:
        # One training per run folder: a second one is refused instead of overwriting this one's files.
        with folder_lock(out_dir) if world.main else contextlib.nullcontext():
            s = start(world, device, data, model_cfg, cfg, RunFolder(out_dir), resume=resume, overwrite=overwrite,
                      init_from=init_from, callback=callback if world.main else None,
                      progress=progress and world.main, log=log if world.main else quiet)
            return finish(s, loop(s))
    except _OOM as exc:  # torch's message says what failed; this one, what to do next
        first = (str(exc).strip().splitlines() or ["out of memory"])[0]
        raise RuntimeError(
            f"{device} ran out of memory ({first.rstrip('.')}). The checkpoints written so far are intact: continue "
            f"with --resume and fewer sequences per pass, --micro-batch N (N divides batch_size x grad_accum = "
            f"{cfg.step_sequences}), or a smaller model") from exc
    finally:
        distributed.teardown(world)
