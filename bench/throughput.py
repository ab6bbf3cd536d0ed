"""Training throughput (tokens/s) of model shapes on this machine: the measurement behind the
`cpu` preset. Usage: python bench/throughput.py [--steps N] [--dtype float32|bfloat16]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from helpers.config import ModelConfig, TrainConfig
from helpers.device import autocast
from helpers.model import GPT
from helpers.optim import configure_optimizer

SHAPES = [  # (n_layer, n_embd, n_head, block, batch)
    (4, 256, 4, 128, 16),
    (4, 256, 4, 256, 8),
    (6, 256, 4, 128, 16),
    (4, 384, 6, 128, 16),
    (6, 384, 6, 128, 16),
    (8, 256, 4, 128, 16),
]


def measure(n_layer, n_embd, n_head, block, batch, vocab=4096, steps=20, dtype=torch.float32):
    cfg = ModelConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=0.1)
    model = GPT(cfg)
    opt = configure_optimizer(model, TrainConfig(), "cpu")
    x = torch.randint(vocab, (batch, block))
    ctx = autocast("cpu", dtype)

    def step():
        with ctx:
            _, loss = model(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t
    tok_s = steps * batch * block / dt
    n = model.num_params()
    flops_per_tok = 6 * n + 12 * n_layer * n_embd * block  # 6N + attention (PaLM appendix B)
    return {"shape": f"{n_layer}x{n_embd} h{n_head} T{block} B{batch}", "params_M": round(n / 1e6, 2),
            "tokens_per_s": round(tok_s), "gflops": round(tok_s * flops_per_tok / 1e9, 1)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    for s in SHAPES:
        print(json.dumps(measure(*s, steps=a.steps, dtype=getattr(torch, a.dtype))), flush=True)
