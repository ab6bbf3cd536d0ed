"""The training loop: random windows, AdamW, warmup + cosine, gradient accumulation, clipping,
AMP, periodic evaluation with a demo generation, checkpoints (periodic + best, keep the last K),
exact resume, early stopping, a memorisation warning, a time budget, clean Ctrl-C / SIGTERM.

Taught in notebook 04; fine-tuning (notebook 05) is the same loop started from a checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from . import distributed as D
from . import sample
from . import tokenizer as tok
from .atomic import disk_errors, folder_lock
from .augment import DocShuffler, TokenSplitter, merge_parents
from .config import UNTIL_BUDGET, ModelConfig, TrainConfig
from .device import autocast, detect_device, keep_freed_memory, maybe_compile, pick_dtype, seed_everything
from .ema import EMA, params_from_tensors, params_to_tensors
from .evaluate import bits_per_byte, estimate_loss
from .memmap import DataError, PreparedData, get_batch, load_data
from .memory import MicroBatch, plan_micro_batch
from .model import GPT
from .optim import configure_optimizer, lr_at, optimizer_from_tensors, optimizer_to_tensors
from .runfolder import StopFlag, check_tokenizer, newest_resumable, read_history, rewrite_jsonl, tensorboard

_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError from 2.5
LOG_EVERY = 10  # steps between host syncs for the progress bar / train-loss log
MAX_ROLLBACKS = 3  # non-finite losses survived by rolling back before the run gives up
_NAN_AT: set[int] = set()  # fault injection for the tests: steps whose loss is made NaN (once each)

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


def _padded_vocab(n: int) -> int:
    """Round the embedding table up to a multiple of 64: faster matmuls (GPT-2's 50257 -> 50304)."""
    return min(-(-n // 64) * 64, tok.MAX_VOCAB)


def _splitter(data: PreparedData, p: float) -> TokenSplitter | None:
    """The token-split augmentation for this data's tokenizer, or None when it is off."""
    return TokenSplitter(merge_parents(data.tokenizer), p) if p else None


def _restore(model: GPT, ema: EMA | None, optimizer, scaler, batch_gen: torch.Generator,
             ck: ckpt_io.Checkpoint) -> None:
    """Weights, their average, optimizer, loss scaler and batch stream from a full checkpoint (for
    resume and for rollback). A run with EMA saves the average as the checkpoint's weights (what
    was evaluated) and the weights being trained in its state, as raw.*."""
    info, state = ck.info, ck.state
    if ema is not None:
        ema.reset(ck.model, info.get("ema_updates", 0))
    if "ema_updates" in info:
        params_from_tensors(model, state, "raw.")
    elif model is not ck.model:
        model.load_state_dict(ck.model.state_dict())
    optimizer_from_tensors(optimizer, state, info["optimizer_groups"])
    if info.get("scaler"):
        scaler.load_state_dict(info["scaler"])
    batch_gen.set_state(state["rng_batch"])  # the global batch stream: the same on every rank


def train(data: PreparedData | str | Path, model_cfg: ModelConfig, cfg: TrainConfig, out_dir: str | Path, *,
          resume: bool = False, overwrite: bool = False, init_from: ckpt_io.Checkpoint | None = None,
          device: str | None = None,
          callback: Callable[[dict], None] | None = None, progress: bool = True, log=print) -> TrainResult:
    """Train (or resume, or fine-tune from `init_from`) and return where things went.

    Under torchrun (WORLD_SIZE > 1) this is one rank of a data-parallel run (helpers/distributed.py).
    """
    world, device = D.setup(detect_device(device))
    try:
        # One training per run folder: a second one is refused instead of overwriting this one's files.
        with folder_lock(out_dir) if world.main else contextlib.nullcontext():
            return _train(world, device, data, model_cfg, cfg, out_dir, resume=resume, overwrite=overwrite,
                          init_from=init_from, callback=callback if world.main else None,
                          progress=progress and world.main, log=log if world.main else (lambda *_: None))
    except _OOM as exc:  # torch's message says what failed; this one, what to do next
        first = (str(exc).strip().splitlines() or ["out of memory"])[0]
        raise RuntimeError(
            f"{device} ran out of memory ({first.rstrip('.')}). The checkpoints written so far are intact: continue "
            f"with --resume and fewer sequences per pass, --micro-batch N (N divides batch_size x grad_accum = "
            f"{cfg.step_sequences}), or a smaller model") from exc
    finally:
        D.teardown(world)


def _train(world: D.World, device: str, data, model_cfg: ModelConfig, cfg: TrainConfig, out_dir, *, resume: bool,
           overwrite: bool, init_from, callback, progress: bool, log) -> TrainResult:
    data = data if isinstance(data, PreparedData) else load_data(data)
    out_dir = Path(out_dir)
    dtype = pick_dtype(device, cfg.dtype)
    ctx = autocast(device, dtype)
    seed_everything(cfg.seed)
    if device == "cpu":
        keep_freed_memory()  # no page faults on each step's big tensors

    # ---- model: fresh, fine-tuned from a checkpoint, or resumed ------------------------------
    existing = ckpt_io.step_files(out_dir) + list(out_dir.glob("best.safetensors"))
    if existing and not resume and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a run; continue it with --resume, start over with "
                              "--overwrite, or choose another --out")
    resume_path = newest_resumable(out_dir) if resume else None
    if resume and resume_path is None:
        log(f"no checkpoint to resume in {out_dir}; starting a new run")
    info: dict = {}
    if resume_path is not None:
        loaded = ckpt_io.load(resume_path, device="cpu", with_state=True)
        model, info = loaded.model, loaded.info
        check_tokenizer(loaded.tokenizer, data, resume_path)
        log(f"resuming from {resume_path} (step {info['step']})")
    elif init_from is not None:
        check_tokenizer(init_from.tokenizer, data, init_from.path)
        model = init_from.model
        log(f"fine-tuning {init_from.path} on {data.path} with a fresh optimizer and schedule")
    else:
        model_cfg = replace(model_cfg, vocab_size=_padded_vocab(data.vocab_size))
        model = GPT(model_cfg)
    model_cfg = model.config
    block = model_cfg.block_size
    for split in ("train", "val"):
        n = data.meta["splits"][split]["tokens"]
        if n <= block + 1:
            raise DataError(f"the {split} split has {n:,} tokens, fewer than one block of {block + 1}; use a "
                            "smaller --block-size or a bigger corpus")
    model.to(device)
    if world.rank:  # the same initial weights everywhere (seeded above), but each rank its own dropout masks
        torch.manual_seed(cfg.seed + 1000 * world.rank + int(info.get("step", 0)))
    optimizer = configure_optimizer(model, cfg, device)
    # The average of the weights is what is evaluated and saved (helpers/ema.py); rank 0 alone keeps it.
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay and world.main else None
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == torch.float16)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    step, best_val, evals_since_best, tokens_seen, elapsed0 = 0, math.inf, 0, 0, 0.0
    if resume_path is not None:
        _restore(model, ema, optimizer, scaler, batch_gen, loaded)
        if world.main:
            torch.set_rng_state(loaded.state["rng_torch"])
        if device.startswith("cuda") and "rng_cuda" in loaded.state:
            torch.cuda.set_rng_state(loaded.state["rng_cuda"])
        step, best_val = info["step"], info["best_val"]
        evals_since_best, tokens_seen, elapsed0 = info["evals_since_best"], info["tokens_seen"], info["elapsed_s"]
    run_model = maybe_compile(model, device, log) if cfg.compile else model
    eval_model = run_model if ema is None else ema.model
    if cfg.compile and ema is not None:  # the average is evaluated through a graph of its own (no_grad)
        eval_model = maybe_compile(ema.model, device, lambda *_: None)
    saved_model = model if ema is None else ema.model  # the weights every checkpoint file holds
    # Training goes through DDP when there are several ranks: it all-reduces the gradients in backward.
    train_model = DDP(run_model, device_ids=[device] if device.startswith("cuda") else None) if world.active \
        else run_model

    D.barrier(world)  # every rank has read what it needs from out_dir before rank 0 changes it
    metrics_path = out_dir / "metrics.jsonl"
    history, tb = [], None
    if world.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if existing and overwrite and resume_path is None:  # only now, once the new run is known to start
            for f in existing:
                f.unlink()
            shutil.rmtree(out_dir / "tb", ignore_errors=True)
        history = read_history(metrics_path, upto=step) if resume_path is not None else []
        rewrite_jsonl(metrics_path, history)
        tb = tensorboard(out_dir / "tb")
    data_info = {"path": str(data.path), "fingerprint": data.meta["tokenizer"]["fingerprint"],
                 "bytes_per_token": data.bytes_per_token("val")}
    tokens_per_step = cfg.step_sequences * block * world.size
    n_params = model.num_params()
    # The step's sequences in as few forward/backward passes as fit: the same step, faster on a big card.
    micro = plan_micro_batch(model_cfg, cfg, n_params, device)
    if world.active:  # one split on every rank (the smallest card's), so their batch streams stay in step
        passes = int(D.agree(world, [float(micro.passes)], device)[0])
        if passes != micro.passes:
            micro = MicroBatch(cfg.step_sequences // passes, passes, "the split every rank's card holds")
    log(f"model: {n_params / 1e6:.2f}M parameters ({model.num_params(True) / 1e6:.2f}M non-embedding), "
        f"{model_cfg.n_layer} x {model_cfg.n_embd}, block {block}, vocab {model_cfg.vocab_size}; device {device}, "
        f"{str(dtype).replace('torch.', '')}; {tokens_per_step:,} tokens per step"
        + (f" ({world.size} data-parallel ranks)" if world.active else "")
        + (f"; {micro.passes} pass{'es' if micro.passes > 1 else ''} of {micro.size} sequences, {micro.why}"
           if micro.size != cfg.batch_size else ""))

    def save_checkpoint(path: Path, full: bool, extra: dict) -> Path:
        info_out = {"step": step, "best_val": best_val, "evals_since_best": evals_since_best,
                    "tokens_seen": tokens_seen, "elapsed_s": elapsed, "train_config": asdict(cfg),
                    "data": data_info, **extra}
        tensors = {}
        if full:
            tensors, groups = optimizer_to_tensors(optimizer)
            info_out.update(optimizer_groups=groups, scaler=scaler.state_dict() if scaler.is_enabled() else None)
            if ema is not None:  # the file's weights are the average; resuming needs the trained ones too
                tensors.update(params_to_tensors(model, "raw."))
                info_out["ema_updates"] = ema.updates
            tensors["rng_torch"] = torch.get_rng_state()
            tensors["rng_batch"] = batch_state  # as it was before the batch already fetched for the next step
            if device.startswith("cuda"):
                tensors["rng_cuda"] = torch.cuda.get_rng_state()
        with disk_errors(path, "the earlier checkpoints are intact - free some space, then continue with --resume"):
            return ckpt_io.save(path, saved_model, data.tokenizer, info_out, tensors)

    def evaluate_and_save() -> dict:
        nonlocal best_val, evals_since_best
        # The same eval batches every time: evals compare like with like, and the training stream is untouched.
        eval_gen = torch.Generator().manual_seed(cfg.seed + 1)
        losses = estimate_loss(eval_model, data, batch_size=cfg.batch_size * world.size, block_size=block,
                               eval_iters=cfg.eval_iters, generator=eval_gen, device=device, ctx=ctx)
        rec = {"kind": "eval", "step": step, "train_loss": losses["train"], "val_loss": losses["val"],
               "val_bpb": bits_per_byte(losses["val"], data.bytes_per_token("val")), "lr": lr,
               "tokens": tokens_seen, "elapsed_s": round(elapsed, 2)}
        if not all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss")):
            if world.active:  # only rank 0 evaluates: the others cannot roll back in step with it
                raise FloatingPointError(f"training diverged at step {step} (loss is {rec['val_loss']}); nothing "
                                         "was saved for this step - lower --lr and resume from the last checkpoint")
            return None  # the caller rolls back; nothing non-finite is ever saved
        if cfg.sample_tokens:
            ck = ckpt_io.Checkpoint(saved_model, data.tokenizer, {}, out_dir)
            with torch.compiler.set_stance("force_eager"):  # a sample's growing lengths would each be a new graph
                rec["sample"] = sample.generate(ck, "", 1, sample.SampleSettings(cfg.sample_tokens, seed=cfg.seed))[0]
        improved = rec["val_loss"] < best_val
        if improved:
            best_val, evals_since_best = rec["val_loss"], 0
        elif step > 0:
            evals_since_best += 1
        extra = {k: rec[k] for k in ("train_loss", "val_loss", "val_bpb")}
        path = save_checkpoint(out_dir / f"step-{step:06d}.safetensors", True, extra)
        for old in ckpt_io.step_files(out_dir)[:-cfg.keep_last]:
            old.unlink(missing_ok=True)
        if improved:
            save_checkpoint(out_dir / "best.safetensors", False, extra)
        rec["checkpoint"] = path.name
        evals = [h for h in history if h.get("kind") == "eval"] + [rec]
        if len(evals) >= 3 and evals[-1]["val_loss"] > evals[-2]["val_loss"] > evals[-3]["val_loss"] \
                and evals[-1]["train_loss"] < evals[-3]["train_loss"] and not evals[-2].get("warning"):
            rec["warning"] = MEMORISE_ADVICE
        _emit(rec)
        say(f"step {step:>6}: train {rec['train_loss']:.4f}  val {rec['val_loss']:.4f}  "
            f"val bpb {rec['val_bpb']:.4f}  lr {lr:.2e}{'  (best)' if improved else ''}")
        if rec.get("sample"):
            say("  sample: " + rec["sample"][:300].replace("\n", " | "))
        if rec.get("warning"):
            say("  warning: " + rec["warning"])
        return rec

    def rollback(bad_step: int, why: str) -> None:
        """Back to the newest good checkpoint, past the batches that diverged: a NaN costs steps, not the run."""
        nonlocal step, best_val, evals_since_best, tokens_seen, x, y, batch_state, last_eval_step, rollbacks
        rollbacks += 1
        path = newest_resumable(out_dir)
        if path is None or rollbacks > MAX_ROLLBACKS:
            raise FloatingPointError(f"training diverged at step {bad_step} ({why}), {rollbacks} times; the last good "
                                     f"checkpoint is {path} - lower --lr (now {cfg.lr:g}) and resume from it")
        good = ckpt_io.load(path, device="cpu", with_state=True)
        _restore(model, ema, optimizer, scaler, batch_gen, good)
        torch.randint(2, (rollbacks,), generator=batch_gen)  # step the stream on: other windows this time
        step, best_val, tokens_seen = good.info["step"], good.info["best_val"], good.info["tokens_seen"]
        evals_since_best, last_eval_step = good.info["evals_since_best"], good.info["step"]
        batch_state = batch_gen.get_state()
        x, y = next_batch()
        optimizer.zero_grad(set_to_none=True)
        running.zero_()
        if world.main:
            history[:] = [h for h in history if h.get("step", 0) <= step]
            rewrite_jsonl(metrics_path, history)
        _emit({"kind": "rollback", "step": bad_step, "to_step": step, "reason": why})
        say(f"warning: {why} at step {bad_step}; rolled back to {path.name} (step {step}) and moved on to other "
            "batches - nothing non-finite was saved")
        if bar is not None:
            bar.n = step
            bar.refresh()

    def say(msg: str) -> None:
        (bar.write if bar is not None else log)(msg)  # print above the progress bar, not through it

    def _emit(rec: dict) -> None:
        if not world.main:
            return
        history.append(rec)
        with open(metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        if tb is not None:
            for k in ("train_loss", "val_loss", "val_bpb", "lr", "loss"):
                if k in rec:
                    tb.add_scalar(k, rec[k], rec["step"])
            if rec.get("sample"):
                tb.add_text("sample", rec["sample"], rec["step"])
        if callback is not None:
            callback(rec)

    # ---- the loop ---------------------------------------------------------------------------
    train_arr = data.tokens("train")
    splitter = _splitter(data, cfg.token_split)
    shuffler = DocShuffler(train_arr, tok.eot_id(data.tokenizer)) if cfg.doc_shuffle else None

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return get_batch(train_arr, micro.size, block, batch_gen, device, world.rank, world.size, splitter, shuffler)

    batch_state = batch_gen.get_state()
    x, y = next_batch()
    t_start = time.monotonic()
    # The budget counts training only, as plots-bench v1 does: evaluations, demo samples and
    # checkpoint writes stop the clock, so evaluating more often never costs steps.
    eval_s = 0.0
    elapsed = elapsed0
    budget_s = cfg.max_minutes * 60
    # a run that only its time budget ends has no step count to fill: the bar counts steps and rate
    bar = tqdm(total=None if cfg.max_iters >= UNTIL_BUDGET else cfg.max_iters, initial=step, desc="training",
               unit="step", disable=not progress, dynamic_ncols=True) if progress else None
    running, stop_reason, last_path = torch.zeros((), device=device), "max_iters", None
    rollbacks = 0
    lr = lr_at(step, cfg)
    last_eval_step = step if resume_path is not None else -1
    shared_elapsed, interrupted = elapsed0, 0.0
    with StopFlag() as stop:
        while True:
            elapsed = elapsed0 + time.monotonic() - t_start - eval_s
            if not world.active:
                shared_elapsed = elapsed
            # With several ranks every decision below must come out the same on all of them, so the
            # clock and the stop flags are agreed on (one tiny all-reduce) every LOG_EVERY steps.
            lr = lr_at(step, cfg, shared_elapsed / budget_s if budget_s else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            early, t_eval = 0.0, None
            if step % cfg.eval_interval == 0 and step != last_eval_step:
                t_eval = time.monotonic()
                if world.main:
                    rec = evaluate_and_save()
                    if rec is None:
                        rollback(step, "the evaluation loss is not finite")
                        eval_s += time.monotonic() - t_eval
                        continue
                    last_path = out_dir / rec["checkpoint"]
                    early = float(bool(cfg.patience and evals_since_best >= cfg.patience))
                last_eval_step = step
            if not world.active or step % LOG_EVERY == 0 or step == last_eval_step:
                interrupted, shared_elapsed, early = D.agree(world, [float(bool(stop.signal)), elapsed, early], device)
            if t_eval is not None:  # the other ranks spent rank 0's evaluation waiting in agree()
                eval_s += time.monotonic() - t_eval
            if early:
                stop_reason = "early stop"
                break
            if interrupted:
                stop_reason = f"interrupted ({stop.signal or 'by another rank'})"
                break
            if step >= cfg.max_iters:
                break
            if budget_s and shared_elapsed >= budget_s:
                stop_reason = "time budget"
                break
            for i in range(micro.passes):
                # DDP: all-reduce the gradients only once they are complete, on the last micro-batch
                sync = contextlib.nullcontext() if not world.active or i == micro.passes - 1 \
                    else train_model.no_sync()
                with sync:
                    with ctx:
                        _, loss = train_model(x, y)
                        loss = loss / micro.passes  # accumulate the mean, not the sum, of micro-batches
                    if _NAN_AT and step in _NAN_AT:
                        _NAN_AT.discard(step)
                        loss = loss * float("nan")
                    batch_state = batch_gen.get_state()
                    x, y = next_batch()
                    scaler.scale(loss).backward()
                running += loss.detach()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            step += 1
            tokens_seen += tokens_per_step
            if step % LOG_EVERY == 0:
                train_loss = D.mean(world, running).item() / LOG_EVERY  # the only host sync in the hot loop
                if not math.isfinite(train_loss):
                    rollback(step, f"the training loss became {train_loss}")
                    continue
                running.zero_()
                _emit({"kind": "train", "step": step, "loss": train_loss, "lr": lr})
                if bar is not None:
                    train_time = max(time.monotonic() - t_start - eval_s, 1e-9)  # this session's, evaluations left out
                    rate = tokens_per_step * (step - info.get("step", 0)) / train_time
                    bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{rate:,.0f}")
            if bar is not None:
                bar.update(1)
        elapsed = elapsed0 + time.monotonic() - t_start - eval_s
        if step != last_eval_step and world.main:  # the final state is always evaluated and saved
            t_eval = time.monotonic()
            rec = evaluate_and_save()
            eval_s += time.monotonic() - t_eval
            if rec is None:
                raise FloatingPointError(f"training diverged before the final step {step}; nothing was saved for it - "
                                         f"the last good checkpoint is {newest_resumable(out_dir)}")
            last_path = out_dir / rec["checkpoint"]
    if not D.replicas_equal(world, model, device):
        raise RuntimeError("data-parallel ranks ended with different weights; please report this as a bug")
    D.barrier(world)
    if bar is not None:
        bar.close()
    if tb is not None:
        tb.close()
    evals_were = "this session's evaluations and checkpoints" if elapsed0 else "evaluations and checkpoints"
    log(f"stopped at step {step} ({stop_reason}) after {elapsed / 60:.1f} min of training ({evals_were} took "
        f"{eval_s / 60:.1f} min more); best val loss {best_val:.4f}; checkpoints in {out_dir}")
    return TrainResult(out_dir, step, stop_reason, best_val, last_path, history, elapsed, eval_s)
