"""Throughput benchmark: training tokens/s, MFU against the machine's own measured matmul peak,
and peak memory - for our loop and, side by side, two baselines re-created from the loops other
projects use. `plotgpt bench` (helpers/bench.py) runs it; the Performance page of the book
shows the result.

* plotgpt   - this project's own `helpers.train.train_step`, as `plotgpt train` builds and runs it:
              explicit attention in bf16 on a CPU (SDPA elsewhere), fused AdamW, autocast, batches
              gathered with one vectorised index, no host sync in the step.
* reference - the reference project's minGPT-style loop: attention written out with an explicit
              (T, T) mask and softmax, GELU as a formula, unfused (per-parameter) AdamW, fp16
              autocast + GradScaler on a GPU, batches built row by row, `loss.item()` every step.
* nanogpt   - nanoGPT's train.py defaults as of its README CPU recipe: the same GPT without biases,
              AdamW fused only on CUDA (so foreach on CPU), batches stacked row by row from a
              memmap re-opened every call, `loss.item()` every step (log_interval=1).

MFU counts the model FLOPs of a training step as 6 N per token plus 12 L C T for attention
(PaLM, appendix B; N excludes the position table), divided by the peak matmul rate measured here
in the same dtype - not a datasheet number.
"""
from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, replace

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from .config import ModelConfig, TrainConfig
from .device import autocast, detect_device, keep_freed_memory, pick_dtype
from .distributed import World
from .model import GPT
from .train import build_step, train_step


def matmul_params(model: nn.Module) -> int:
    """N for MFU: the parameters each token meets in a matrix product. Lookup tables (token and
    position embeddings) are left out; a token table tied to the output layer is that layer's
    matrix, so it counts once. Biases and LayerNorm gains count, as is the convention."""
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return sum(p.numel() for p in model.parameters() if p.dim() < 2 or id(p) in linear)


def flops_per_token(cfg: ModelConfig, n_matmul: int) -> float:
    """Training FLOPs per token: 6 N (forward + backward matmuls, N = `matmul_params`) + 12 L C T
    (attention scores)."""
    return 6 * n_matmul + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def matmul_peak(device: str, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Measured dense matmul rate in GFLOP/s: the ceiling MFU is quoted against."""
    n = 8192 if device.startswith("cuda") else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(5):
            a @ b
        reps += 5
        sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


# ---- the minGPT-style reference model: same maths, written the plain way ----------------------
class _RefAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.key, self.query, self.value = (nn.Linear(cfg.n_embd, cfg.n_embd) for _ in range(3))
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_drop, self.resid_drop = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.block_size, cfg.block_size))
                             .view(1, 1, cfg.block_size, cfg.block_size))
        self.n_head = cfg.n_head

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = self.query(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T) materialised
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class _NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _RefBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = _RefAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), _NewGELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ReferenceGPT(nn.Module):
    """minGPT's shape of the model (untied embeddings, as minGPT), for the baseline only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.block_size, cfg.n_embd))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.Sequential(*[_RefBlock(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, idx, targets):
        x = self.drop(self.tok_emb(idx) + self.pos_emb[:, :idx.size(1)])
        logits = self.head(self.ln_f(self.blocks(x)))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- one loop per kind -------------------------------------------------------------------------
def _rowwise_batch(arr: np.ndarray, B: int, T: int, device: str):
    ix = torch.randint(len(arr) - T - 1, (B,))
    x = torch.stack([torch.from_numpy(arr[i:i + T].astype(np.int64)) for i in ix.tolist()])
    y = torch.stack([torch.from_numpy(arr[i + 1:i + 1 + T].astype(np.int64)) for i in ix.tolist()])
    return x.to(device), y.to(device)


def make_step(kind: str, model_cfg: ModelConfig, train_cfg: TrainConfig, device: str, arr: np.ndarray):
    """Return (step function, model, compute dtype) for one kind of training loop; each call of the
    step function is one optimizer step. For `plotgpt` it is `helpers.train.train_step` itself."""
    B, T = train_cfg.batch_size, model_cfg.block_size
    if kind == "plotgpt":  # the very step helpers.train.loop runs, built the way it builds it
        if device == "cpu":
            keep_freed_memory()
        model = GPT(model_cfg).to(device)
        step = build_step(model, train_cfg, device, arr, World(), log=lambda *_: None)
        return (lambda: train_step(step)), model, pick_dtype(device, train_cfg.dtype)
    if kind == "reference":
        # The reference trained in fp16 autocast + GradScaler on its GPU; on a CPU, plain fp32.
        dtype = torch.float16 if device.startswith("cuda") else pick_dtype(device, train_cfg.dtype)
        model = ReferenceGPT(model_cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.95), weight_decay=0.1,
                                foreach=False)
    elif kind == "nanogpt":
        dtype = pick_dtype(device, train_cfg.dtype)
        model = GPT(replace(model_cfg, bias=False)).to(device)
        for m in model.modules():  # nanoGPT: the fused attention kernel whatever the dtype
            if hasattr(m, "kernel"):
                m.kernel = "sdpa"
        # nanoGPT: fused AdamW only when device_type == 'cuda'; otherwise the default (foreach) kernel
        opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.95), weight_decay=0.1,
                                fused=True if device.startswith("cuda") else None)
    else:
        raise ValueError(f"unknown loop kind {kind!r}")
    ctx = autocast(device, dtype)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == torch.float16)

    def step():
        for _ in range(train_cfg.grad_accum):
            x, y = _rowwise_batch(arr, B, T, device)
            with ctx:
                _, loss = model(x, y)
            scaler.scale(loss / train_cfg.grad_accum).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the per-step host sync of a loop that logs every step
    return step, model, dtype


def measure_train_step(model_cfg: ModelConfig, train_cfg: TrainConfig, *, kind: str = "plotgpt",
                       steps: int = 10, warmup: int = 3, device: str | None = None) -> dict:
    """Tokens/s of `steps` optimizer steps after `warmup` (compilation happens there)."""
    device = detect_device(device)
    cuda = device.startswith("cuda")
    rng = np.random.default_rng(0)
    arr = rng.integers(0, model_cfg.vocab_size, size=max(1 << 20, 4 * model_cfg.block_size), dtype=np.uint16)
    torch.manual_seed(0)
    step, model, dtype = make_step(kind, model_cfg, train_cfg, device, arr)
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tokens = steps * train_cfg.batch_size * train_cfg.grad_accum * model_cfg.block_size
    n = model.num_params()
    out = {"kind": kind, "device": device, "dtype": str(dtype).replace("torch.", ""), "params_M": round(n / 1e6, 2), "tokens_per_s": tokens / dt,
           "step_s": dt / steps, "flops_per_token": flops_per_token(model_cfg, matmul_params(model)), "threads": torch.get_num_threads()}
    if cuda:
        out["peak_mem_GB"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def measure_isolated(model_cfg: ModelConfig, train_cfg: TrainConfig, *, kind: str, steps: int,
                     device: str | None = None, timeout: float = 900, env: dict | None = None) -> dict:
    """measure_train_step in a fresh process: its peak memory is the process's own, and one loop's
    allocations or compiled graphs never colour the next one's numbers. `env` adds environment
    variables for that process (e.g. an Inductor setting to try)."""
    job = json.dumps({"model": asdict(model_cfg), "train": asdict(train_cfg), "kind": kind, "steps": steps,
                      "device": device})
    proc = subprocess.run([sys.executable, "-m", "helpers.throughput", job], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"kind": kind, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _main(job: str) -> None:
    spec = json.loads(job)
    out = measure_train_step(ModelConfig(**spec["model"]), TrainConfig(**spec["train"]), kind=spec["kind"],
                             steps=spec["steps"], device=spec["device"])
    if "peak_mem_GB" not in out:  # CPU: the peak resident set of this process (kB on Linux)
        out["peak_mem_GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    _main(sys.argv[1])
