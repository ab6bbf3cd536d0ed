"""AdamW with decay groups, the warmup + cosine schedule, and optimizer state as plain tensors.

Taught in notebook 04. Weight decay pulls weights toward zero; it helps matrices (and the tied
embedding) generalise but only hurts biases and LayerNorm gains, so those get none.
"""
from __future__ import annotations

import inspect
import math

import torch

from .config import TrainConfig


def lr_at(step: int, cfg: TrainConfig, time_progress: float = 0.0) -> float:
    """Linear warmup to cfg.lr, then cosine down to cfg.lr * cfg.min_lr_ratio.

    `time_progress` (elapsed / time budget, 0..1) lets a wall-clock budget finish the cosine even
    when max_iters would not be reached: progress is whichever of steps or time is further along.
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    progress = (step - cfg.warmup_iters) / max(cfg.max_iters - cfg.warmup_iters, 1)
    progress = min(max(progress, time_progress), 1.0)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with two groups: the matrices (the embedding, tied to the output layer, included) decay;
    biases and LayerNorm gains do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # The fused kernel does the whole update in one pass over memory (CUDA, and CPU in recent torch).
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device.split(":")[0] in ("cuda", "cpu")
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=fused or None)


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Split an optimizer state_dict into flat tensors (for safetensors) and JSON param groups."""
    sd = opt.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()
               if isinstance(v, torch.Tensor)}
    return tensors, sd["param_groups"]


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, i, k = name.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
