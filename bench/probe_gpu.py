"""Variants of the `gpu-124m` training step, each timed in a fresh process, for a short GPU lease.

`make bench` (helpers/bench.py) measures the step as the code runs it; this script tries what the
code might do instead - an Inductor setting through its environment variable, a different split of
the same optimizer step, dropout off - so that a change is made only after it was measured:

    python bench/probe_gpu.py --out results.jsonl                # every variant
    python bench/probe_gpu.py --only cpp-16x8 cpp-128x1 --steps 10

Each result is one JSON line (helpers.throughput.measure_isolated's fields, plus the variant's
name and MFU against the bf16 matmul peak measured at the start), appended as soon as it is known,
so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from helpers.config import get_preset  # noqa: E402
from helpers.device import detect_device  # noqa: E402
from helpers.throughput import matmul_peak, measure_isolated  # noqa: E402

CPP = {"TORCHINDUCTOR_CPP_WRAPPER": "1"}  # kernels launched from generated C++, not Python
# name: (model overrides, train overrides, environment); every one is the preset's 128 x 256 step
VARIANTS = {
    "cpp-16x8": ({}, {}, CPP),
    "cpp-128x1": ({}, {"batch_size": 128, "grad_accum": 1}, CPP),
    "nodrop-128x1": ({"dropout": 0.0}, {"batch_size": 128, "grad_accum": 1}, {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON lines file to append to")
    ap.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to run (default: all)")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per variant (after 3 warm-up)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per variant before it is abandoned")
    ap.add_argument("--preset", default="gpu-124m")
    ap.add_argument("--vocab-size", type=int, default=50304)
    a = ap.parse_args()
    device = detect_device()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    peak = matmul_peak(device, dtype)
    print(f"{device}: measured {str(dtype)[6:]} matmul peak {peak:,.0f} GFLOP/s", flush=True)
    out = Path(a.out)
    for name in a.only or VARIANTS:
        mo, to, env = VARIANTS[name]
        m, t = get_preset(a.preset, vocab_size=a.vocab_size, **mo, **to)
        t0 = time.time()
        try:
            r = measure_isolated(m, t, kind="plotgpt", steps=a.steps, device=device, timeout=a.timeout, env=env)
        except Exception as e:  # a timeout: record it and go on to the next variant
            r = {"kind": "plotgpt", "error": f"{type(e).__name__}: {e}"}
        r.update(variant=name, env=env, batch_size=t.batch_size, grad_accum=t.grad_accum, dropout=m.dropout,
                 wall_s=round(time.time() - t0, 1), peak_gflops=peak)
        if "error" not in r:
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / 1e9 / peak
            print(f"{name:14s} {r['tokens_per_s']:>10,.0f} tok/s  MFU {r['mfu']:6.1%}  peak {r['peak_mem_GB']:.2f} GB"
                  f"  ({r['wall_s']} s)", flush=True)
        else:
            print(f"{name:14s} failed: {r['error']} ({r['wall_s']} s)", flush=True)
        with out.open("a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
