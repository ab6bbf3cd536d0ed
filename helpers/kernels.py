"""The CPU kernels under helpers.model: cheap dropout masks, and autograd functions whose backward
is written out because PyTorch's own was the slow part of a CPU step. Each replaces one standard
op with the same maths (the tests check each against it); on a GPU the standard op runs.

Why each exists, with the measurements, is in its docstring; the Performance page has the rest.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F


def dropout_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A dropout mask already scaled: 0 with probability p, else 1 / (1 - p).

    Why not F.dropout on CPU: its Bernoulli sampler draws one random number per element and was
    28 % of a bf16 training step here. This draws 64 random bits per 4 elements from torch's own
    generator (so a seeded run, and its resume, stay exact) and compares 16 bits each: p is
    honoured to 1/65536.
    """
    n = math.prod(shape)
    bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    bits = bits.view(torch.int16)[:n].view(shape)
    drop = round(p * 65536)  # int16 values below -32768 + drop are dropped: probability drop / 65536
    return (bits >= -32768 + drop).to(dtype).mul_(65536 / (65536 - drop))


def hashed_dropout_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device,
                        seed: torch.Tensor | None = None) -> torch.Tensor:
    """`dropout_mask` for compiled graphs: one random number per call, the rest a hash of the index.

    Why: in a graph compiled for a CPU, the compiler's random numbers are drawn one element at a time
    (Philox, not vectorised): dropout 0.1 on all activations took a compiled bf16 step of the `cpu`
    preset from 104 to 154 ms on 2 Xeon cores (the Performance page). A hash of the element's index
    is plain integer arithmetic, which the compiler vectorises and fuses into the multiply: 0.53 ms
    per million bf16 elements against 4.2 for F.dropout, compiled.

    The hash is murmur3's 32-bit finaliser (fmix32) of a Weyl sequence, i * 0x9E3779B1 + seed (mod
    2^32), SplitMix-style: every output bit depends on every input bit, so neighbouring elements are
    independent. The seed comes from torch's generator (in a graph, the compiler's draw from it), so
    seeded runs and their resumes stay exact. Two calls' masks are the same stream at an offset of
    random length. int32 arithmetic wraps, and torch's >> on int32 copies the sign bit, so each shift
    is masked to a logical one.
    """
    n = math.prod(shape)
    if seed is None:  # (1,) int32
        seed = torch.randint(-2**31, 2**31 - 1, (1,), dtype=torch.int32, device=device)
    h = torch.arange(n, dtype=torch.int32, device=device).view(shape) * -1640531535 + seed  # 0x9E3779B1
    h = (h ^ ((h >> 16) & 0xFFFF)) * -2048144789  # 0x85EBCA6B
    h = (h ^ ((h >> 13) & 0x7FFFF)) * -1028477387  # 0xC2B2AE35
    h = h ^ ((h >> 16) & 0xFFFF)  # uniform over int32
    drop = round(p * 2**32)  # values below -2^31 + drop are dropped: probability drop / 2^32
    return (h >= -2**31 + drop).to(dtype).mul_(2**32 / (2**32 - drop))


class Dropout(nn.Module):
    """nn.Dropout with the cheap masks on CPU (`dropout_mask`, `hashed_dropout_mask` when compiled);
    the fused kernel elsewhere."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        mask = hashed_dropout_mask if torch.compiler.is_compiling() else dropout_mask
        return x * mask(x.shape, self.p, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _ReLU2Fn(torch.autograd.Function):
    """relu(x)^2 with a two-kernel backward. Written as F.relu(x).square(), autograd runs three
    elementwise kernels backwards (square's two and relu's mask) over the (B, T, 4C) activation;
    that version measured 13 % slower than GELU per CPU step (round 3), this one faster (round 5)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        r = F.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return torch.mul(grad, r).mul_(2.0)  # d/dx relu(x)^2 = 2 relu(x)


class ReLU2(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReLU2Fn.apply(x)


class _CrossEntropyFn(torch.autograd.Function):
    """Mean cross-entropy with its gradient written out: softmax(x) - onehot(t), over N.

    For compiled CPU graphs. Compiled from F.cross_entropy, the backward builds the one-hot from
    int64 comparisons of every logit's column index with its row's target (eight AVX-512 registers
    per 32 bf16 logits) and sums that one-hot back over the vocabulary; here it is one fused pass
    with int32 comparisons. Forward and backward of the `cpu` preset's (3072, 2048) logits: 4.3
    against 7.1 ms compiled on 2 Xeon cores (the Performance page). All targets must be valid ids
    (no ignore_index): the training data has no padding.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # (N, V), (N,) -> ()
        x = logits.float()
        lse = torch.logsumexp(x, dim=-1)  # (N,)
        ctx.save_for_backward(logits, targets, lse)
        return (lse - x.gather(1, targets[:, None]).squeeze(1)).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        scale = grad / logits.size(0)  # d mean / d row
        # int32 ids: a compare of 16 per AVX-512 register where int64 took two (one fused pass, no scatter)
        hit = torch.arange(logits.size(1), dtype=torch.int32, device=logits.device) == targets.int()[:, None]  # (N, V)
        g = (torch.exp(logits.float() - lse[:, None]) - hit.float()) * scale  # (softmax - onehot) / N
        return g.to(logits.dtype), None


class TokenLoss(nn.Module):
    """Mean cross-entropy of (N, V) logits against (N,) targets, in float32 whatever the autocast dtype.

    A module of its own so that `helpers.device.maybe_compile` can compile it with the blocks: eagerly
    its backward is three passes over the (B*T, V) logits (zero-fill, scatter, log-softmax's
    backward); compiled, fused kernels. On 2 Xeon cores the eager loss was ~20 ms of the `cpu`
    preset's ~110 ms step, compiled ~6 ms, and ~5 ms with the gradient written out for the compiler
    (`_CrossEntropyFn`, used in compiled CPU graphs only; eagerly it is slower, on a GPU unmeasured).
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.device.type == "cpu" and torch.compiler.is_compiling():
            return _CrossEntropyFn.apply(logits, targets)
        return F.cross_entropy(logits.float(), targets)


