"""Muon for the hidden matrices and AdamW for the rest, as one optimizer (`--optimizer muon`).

Taught in notebook 04. Muon (Keller Jordan, 2024; "Muon is Scalable for LLM Training", Moonshot
2025) keeps AdamW's momentum but replaces the update of each weight matrix by the nearest
semi-orthogonal matrix to it (U V^T of its SVD, approximated by five Newton-Schulz iterations):
every direction the matrix can move in moves by the same amount, instead of the few directions
that dominate the gradient. It is the optimizer of the nanoGPT speedruns. Embeddings, the output
layer and LayerNorm gains are not "hidden matrices" and stay on AdamW.

The update follows `torch.optim.Muon` (the tests compare the two) with two changes that matter on
a small computer: the Newton-Schulz iterations run in float32 except on a GPU (torch's runs in
bfloat16, 36x slower than float32 on a CPU without bf16 hardware, measured on 2 Zen 3 cores), and
one optimizer holds both kinds of parameter, so the loss scaler, the lr schedule and the
checkpoints see a single optimizer. The AdamW groups call torch's own (fused) AdamW update.
"""
from __future__ import annotations

import math

import torch
from torch.optim.adamw import adamw

# The quintic iteration of torch.optim.Muon (and of Keller Jordan's muon.py): its slope at zero is
# as steep as possible, so five steps push every singular value into roughly [0.7, 1.2].
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T, by Newton-Schulz iterations; float32 on a CPU."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the short side: X X^T is then the smaller Gram matrix
        x = x.T
    x = x / x.norm().clamp(min=eps)  # Frobenius norm >= spectral norm, so every singular value <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)  # a X + (b G + c G^2) X
    return (x.T if tall else x).to(g.dtype)


def match_rms_adamw(shape: torch.Size) -> float:
    """Moonshot's lr scale: the orthogonalized update then has AdamW's typical RMS (about 0.2), so
    Muon reuses the lr and weight decay tuned for AdamW. (torch.optim.Muon's "match_rms_adamw".)"""
    return 0.2 * math.sqrt(max(shape[0], shape[1]))


class MuonAdamW(torch.optim.Optimizer):
    """Param groups with `muon=True` (2-D matrices only) get Muon, the others AdamW.

    Both use the group's lr and decoupled weight decay (param *= 1 - lr * weight_decay), so the
    schedule drives them together; a Muon group's `lr_scale` multiplies its step, not its decay.
    """

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95),
                 momentum: float = 0.95, eps: float = 1e-8, ns_steps: int = 5, fused: bool | None = None):
        defaults = dict(lr=lr, betas=betas, momentum=momentum, eps=eps, weight_decay=0.0, ns_steps=ns_steps,
                        muon=False, lr_scale=1.0)
        super().__init__(groups, defaults)
        self.fused = fused
        for g in self.param_groups:
            if g["muon"] and any(p.dim() != 2 for p in g["params"]):
                raise ValueError("Muon groups may hold 2-D matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon if group["muon"] else self._adamw)(group, params)
        return loss

    def _muon(self, group: dict, params: list[torch.Tensor]) -> None:
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - mu)  # an average of past gradients...
            update = p.grad.lerp(buf, mu)  # ...looked at one step ahead (Nesterov)
            p.mul_(1 - lr * wd)
            step = lr * group["lr_scale"] * match_rms_adamw(p.shape)
            p.add_(orthogonalize(update, group["ns_steps"]), alpha=-step)

    def _adamw(self, group: dict, params: list[torch.Tensor]) -> None:
        for p in params:
            state = self.state[p]
            if not state:
                # the fused kernel wants its step count on the parameter's device
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if self.fused else "cpu")
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        states = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        adamw(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
              [], [s["step"] for s in states], fused=self.fused, amsgrad=False, beta1=beta1, beta2=beta2,
              lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
