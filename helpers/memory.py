"""How many sequences one forward/backward pass can hold on this device: the micro-batch.

A preset fixes the optimizer step, `batch_size x grad_accum` sequences; how that step is split into
passes changes no number the optimizer sees (the loss is the mean over the step's tokens either way)
but changes the speed. `gpu-124m` is written as 8 passes of 16 sequences, so that it fits an 8 GB
card; on a bigger card the same step in fewer, bigger passes runs faster, because each pass costs
a fixed amount of launching besides its arithmetic (bench/results/gpu.md, on an H200: 8 passes of
16 ran at 208,015 tokens/s, 2 of 64 at 495,663, one of 128 at 523,736). `plan_micro_batch` picks
the split from an estimate of the memory a pass needs and the memory the card has free;
`--micro-batch N` sets it by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ModelConfig, TrainConfig

GB = 1e9
MARGIN = 1.0 * GB  # kept free besides the estimate: the CUDA context's and cuBLAS's workspaces, fragmentation


def state_bytes(n_params: int, ema: bool) -> int:
    """Memory that does not grow with the micro-batch: fp32 weights, gradients and AdamW's two
    moments (16 bytes a parameter), autocast's cached bf16 copies of the weights (2), an fp32
    average of the weights when EMA is on (4)."""
    return n_params * (16 + 2 + (4 if ema else 0))


def activation_bytes_per_sequence(cfg: ModelConfig) -> int:
    """Memory autograd keeps per training sequence, with a fused (flash) attention kernel: about 34
    bytes per layer, channel and token in 16-bit activations (Korthikanti et al. 2022, "Reducing
    activation recomputation in large transformer models", without the attention-score term that
    flash attention does not store), plus 10 bytes per vocabulary entry and token for the logits
    (bf16 logits, fp32 log-probabilities and their gradient). For `gpu-124m` this gives 0.21 GB a
    sequence; peak memory measured on an H200 grew by 0.17 GB a sequence from 16 to 64 sequences
    and by 0.16 from 64 to 128 (bench/results/gpu.json): the estimate errs on the safe side."""
    return cfg.block_size * (34 * cfg.n_layer * cfg.n_embd + 10 * cfg.vocab_size)


@dataclass(frozen=True)
class MicroBatch:
    size: int  # sequences per forward/backward pass
    passes: int  # passes per optimizer step
    why: str  # one line for the log


def plan_micro_batch(model_cfg: ModelConfig, cfg: TrainConfig, n_params: int, device: str,
                     free_bytes: int | None = None) -> MicroBatch:
    """The split of one optimizer step into passes for this device.

    `cfg.micro_batch > 0` is taken as given. Otherwise, on a CUDA device, the largest divisor of the
    step's sequences (at least `cfg.batch_size`) whose estimated memory fits `free_bytes` (default:
    what the card has free now); on other devices, `cfg.batch_size` as configured (the CPU presets
    take their step in one pass already, and were tuned as they are).
    """
    step = cfg.step_sequences
    if cfg.micro_batch:
        return MicroBatch(cfg.micro_batch, step // cfg.micro_batch, "as set by --micro-batch")
    configured = MicroBatch(cfg.batch_size, cfg.grad_accum, "as configured")
    if not device.startswith("cuda") or cfg.grad_accum == 1:
        return configured
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
    room = free_bytes - MARGIN - state_bytes(n_params, cfg.ema_decay > 0)
    per_seq = activation_bytes_per_sequence(model_cfg)
    size = max((d for d in range(cfg.batch_size, step + 1) if step % d == 0 and d * per_seq <= room),
               default=cfg.batch_size)
    if size == cfg.batch_size:
        return configured
    return MicroBatch(size, step // size, f"the configured {cfg.grad_accum} x {cfg.batch_size} in fewer passes: "
                      f"{free_bytes / GB:.0f} GB free holds about {max(room, 0) // per_seq:.0f} sequences a pass "
                      "(--micro-batch sets it by hand)")
