"""An exponential moving average (EMA) of the weights: with `--ema-decay`, the model that is
evaluated, sampled from and saved.

Why: late in training each AdamW step jitters the weights around the minimum they circle; an
average over the last few hundred steps sits nearer its middle and often scores a lower loss than
any single step (Polyak averaging; the EMA of diffusion models and of some nanoGPT speedruns).
Training itself is untouched: the optimizer keeps stepping the trained weights. A checkpoint's
weights are the average (what was evaluated, what `generate` and `evaluate` load); a resumable
checkpoint also keeps the trained weights in its state, as `raw.<name>`.

Why not torch.optim.swa_utils.AveragedModel: its update reads its step counter back from the
device (`bool(n_averaged == 0)`) - a host sync every step on a GPU, which the training loop
avoids. This is the same lerp, with the counter kept on the host.
"""
from __future__ import annotations

import copy

import torch

from .checkpoint import CheckpointError, raw_model
from .model import GPT


class EMA:
    """Weights w_ema <- d * w_ema + (1 - d) * w after each optimizer step.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates n, so the average
    forgets its random initialisation quickly and settles on `decay` (the horizon is about
    1 / (1 - decay) steps: 500 for 0.998).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay {decay} must be in (0, 1)")
        self.decay = decay
        self.model: GPT = copy.deepcopy(raw_model(model)).eval().requires_grad_(False)
        self.updates = 0
        self._avg = list(self.model.parameters())  # tied weights appear once, as in the source

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        weight = 1.0 - self.current_decay()
        self.updates += 1
        src = [p.detach() for p in raw_model(model).parameters()]
        if self._avg[0].device.type == "cpu":
            # torch 2.13's CPU foreach lerp is a slow path: 165 ms for 8.4M floats against 5 ms for
            # a lerp_ per tensor (2 threads, Zen 5); it cost the first EMA trial a sixth of its steps
            for avg, p in zip(self._avg, src):
                avg.lerp_(p, weight)
        else:  # on a GPU one fused launch for all the tensors
            torch._foreach_lerp_(self._avg, src, weight)

    @torch.no_grad()
    def reset(self, weights: torch.nn.Module, updates: int) -> None:
        """Start the average again from `weights` (a checkpoint's), as if after `updates` updates."""
        self.model.load_state_dict(raw_model(weights).state_dict())
        self.updates = updates


def params_to_tensors(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The parameters as named tensors (tied ones once), for a checkpoint's training state."""
    return {prefix + name: p for name, p in raw_model(model).named_parameters()}


@torch.no_grad()
def params_from_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    named = dict(raw_model(model).named_parameters())
    missing = [n for n in named if prefix + n not in tensors]
    if missing:
        raise CheckpointError(f"the checkpoint's training state lacks {prefix}{missing[0]}: it is corrupt; "
                              "resume from an earlier step file")
    for name, p in named.items():
        p.copy_(tensors[prefix + name])
