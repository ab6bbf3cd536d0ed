"""AdamW with decay groups, the warmup + cosine schedule, and optimizer state as plain tensors.

Taught in notebook 04. Weight decay pulls weights toward zero; it helps matrices (and the tied
embedding) generalise but only hurts biases and LayerNorm gains, so those get none.
"""
from __future__ import annotations

import inspect
import math

import torch

from .config import TrainConfig
from .muon import MuonAdamW


def lr_at(step: int, cfg: TrainConfig, time_progress: float = 0.0) -> float:
    """Linear warmup to cfg.lr, then cosine down to cfg.lr * cfg.min_lr_ratio (or, with cfg.cooldown,
    the peak held until that last share of the run, then a straight line down to the same floor).

    `time_progress` (elapsed / time budget, 0..1) lets a wall-clock budget finish the cosine even
    when max_iters would not be reached: progress is whichever of steps or time is further along.
    """
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    progress = (step - cfg.warmup_iters) / max(cfg.max_iters - cfg.warmup_iters, 1)
    progress = min(max(progress, time_progress), 1.0)
    min_lr = cfg.lr * cfg.min_lr_ratio
    if cfg.cooldown > 0:  # warmup-stable-decay (Hagele et al. 2024): the peak lr, then a straight line down
        done = min(max(0.0, progress - (1.0 - cfg.cooldown)) / cfg.cooldown, 1.0)  # of the cooldown
        return min_lr + (1.0 - done) * (cfg.lr - min_lr)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.optim.Optimizer:
    """AdamW, or with cfg.optimizer == "muon" Muon for the blocks' matrices (helpers/muon.py)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # Embedding tables: a row is pulled toward zero at every step but pushed back only when its token
    # occurs, so decay acts on them unlike on the blocks' matrices; embed_decay_scale sets theirs apart
    # (the tied output layer is the same matrix). DDP's "module." and compile's "_orig_mod." keep the suffix.
    embed = {id(p) for n, p in named if n.endswith(("wte.weight", "wpe.weight", "lm_head.weight"))}
    matrices = [p for _, p in named if p.dim() >= 2 and id(p) not in embed]  # the blocks' weights
    tables = [p for _, p in named if id(p) in embed]
    no_decay = [p for _, p in named if p.dim() < 2]  # biases and LayerNorm gains
    table_wd = cfg.weight_decay * cfg.embed_decay_scale
    # The fused kernel does the whole update in one pass over memory (CUDA, and CPU in recent torch).
    fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device.split(":")[0] in ("cuda", "cpu")
    if cfg.optimizer == "muon":
        # the hidden matrices: attention and MLP weights inside the blocks, not the embeddings
        hidden_ids = {id(p) for n, p in named if p.dim() == 2 and ".h." in f".{n}"}
        hidden = [p for p in matrices if id(p) in hidden_ids]
        rest = [p for p in matrices if id(p) not in hidden_ids]
        groups = [{"params": hidden, "weight_decay": cfg.weight_decay, "muon": True, "lr_scale": cfg.muon_lr_scale},
                  *_decay_groups(rest, tables, cfg.weight_decay, table_wd, params),
                  {"params": no_decay, "weight_decay": 0.0}]
        return MuonAdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                         fused=fused or None)
    groups = [*_decay_groups(matrices, tables, cfg.weight_decay, table_wd, params), {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=fused or None)


def _decay_groups(matrices: list, tables: list, wd: float, table_wd: float, order: list) -> list[dict]:
    """One group, in the model's order, when the tables decay like the matrices: the param groups that
    checkpoints saved before embed_decay_scale existed, so their optimizer state still resumes. Else two."""
    if table_wd == wd:
        both = {id(p) for p in matrices + tables}
        return [{"params": [p for p in order if id(p) in both], "weight_decay": wd}]
    return [{"params": matrices, "weight_decay": wd}, {"params": tables, "weight_decay": table_wd}]


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
