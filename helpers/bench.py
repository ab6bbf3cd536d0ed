"""`plotgpt bench` / `make bench`: the numbers behind the presets, rerunnable on any machine.

Two parts, each optional:

* throughput - every preset this device can run, our loop against the reference project's loop
  (and, at nanoGPT's CPU-recipe model, against a nanoGPT-style loop) in the same run: tokens/s,
  MFU against the matmul peak measured here, peak memory, and the ratio (helpers/throughput.py).
* quality    - plots-bench v1 (../shared/data/README.md): the cpu preset trained on the shared
  movie-plot corpus for 10 minutes of training on 2 threads (evaluations stop the clock), then
  the exact val bits per byte, tokens seen, the bits-per-byte-versus-minutes curve and three
  samples. Skipped, with the reason, where the corpus is absent.

Results go to bench/results/<name>.json and .md, plus a plot; the book's Performance page shows them.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import paths
from .config import PRESETS, UNTIL_BUDGET, ModelConfig, TrainConfig, get_preset
from .config import resolve_preset
from .device import cpu_has_native_bf16, cpu_name, detect_device, pick_dtype
from .dataset import load_data
from .throughput import matmul_peak, measure_isolated

BENCH_DOC = "plots-bench v1"
BEST_PEER_BPB = 2.012  # nanoGPT, best of several tuned configs, measured on this machine (issue 4's table)
SHARED_CORPUS = paths.PROJECT.parent / "shared" / "data" / "movies-plot-final.txt"
# nanoGPT's README CPU recipe, the peer in the table: 4 x 128, block 64, batch 12, GPT-2 vocab, no dropout
NANOGPT_CPU = (ModelConfig(vocab_size=50304, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
               TrainConfig(batch_size=12, dtype="float32"))


def machine() -> dict:
    dev = detect_device()
    info = {"device": dev, "cpu": cpu_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}
    if dev.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _row(label: str, model_cfg: ModelConfig, train_cfg: TrainConfig, kinds: tuple[str, ...], steps: int,
         peaks: dict, device: str, log=print) -> list[dict]:
    rows = []
    for kind in kinds:
        r = measure_isolated(model_cfg, train_cfg, kind=kind, steps=steps, device=device)
        r["config"] = label
        if "error" not in r:  # MFU against the peak of the dtype the loop itself chose
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / 1e9 / peaks[r["dtype"]]
        _log_row(r, log)  # as each is known: a long run shows its progress, and a cut-short one what it had
        rows.append(r)
    return rows


def _log_row(r: dict, log) -> None:
    if "error" in r:
        log(f"{r['config']:55s} {r['kind']:10s} failed: {r['error']}")
    else:
        log(f"{r['config']:55s} {r['kind']:10s} {r['tokens_per_s']:>10,.0f} tok/s  MFU {r['mfu']:6.1%}  "
            f"peak {r['peak_mem_GB']:.2f} GB")


def _label(name: str) -> str:
    m = PRESETS[name].model
    return f"{name} preset ({m.n_layer} x {m.n_embd}, T {m.block_size}, vocab {PRESETS[name].vocab_size})"


def _ratios(rows: list[dict], baselines: dict[str, dict]) -> None:
    """Each row's tokens/s over each baseline loop's, measured on the same configuration."""
    for r in rows:
        if "error" not in r:
            r["vs"] = {k: r["tokens_per_s"] / b["tokens_per_s"] for k, b in baselines.items()
                       if b and "error" not in b}


def throughput(steps: int | None = None, log=print) -> dict:
    device = detect_device()
    cuda = device.startswith("cuda")
    # An emulated bf16 matmul (a CPU without AVX512-BF16/AMX/Arm BF16) runs at well under 1 GFLOP/s:
    # no loop here uses it, and measuring its peak alone would take many minutes.
    dtypes = ["bfloat16", "float16"] if cuda else ["float32"] + (["bfloat16"] if cpu_has_native_bf16() else [])
    peaks = {d: matmul_peak(device, getattr(torch, d)) for d in dtypes}
    log("measured matmul peak: " + ", ".join(f"{d} {v:,.0f} GFLOP/s" for d, v in peaks.items()))
    rows: list[dict] = []
    if cuda:
        m, t = get_preset("gpu-124m", vocab_size=50304)
        group = _row("gpu-124m preset: 16 x 256, 8 micro-batches (fits an 8 GB card)", m, t,
                     ("plotgpt", "reference"), steps or 10, peaks, device, log)
        # The same 32k-token optimizer step in fewer, bigger micro-batches: what a bigger card should run.
        group += _row("gpu-124m, the same step as 64 x 256, 2 micro-batches (cards over 16 GB)", m,
                      replace(t, batch_size=64, grad_accum=2), ("plotgpt",), steps or 10, peaks, device, log)
        # ... and as one micro-batch, for both loops: how much of the ratio is the split, how much the loop.
        group += _row("gpu-124m, the same step as 128 x 256 in one micro-batch (cards over 32 GB)", m,
                      replace(t, batch_size=128, grad_accum=1), ("plotgpt", "reference"), steps or 10, peaks, device, log)
        _ratios(group, {"reference": group[1]})
        rows += group
    else:
        name = resolve_preset("cpu", device)  # what `plotgpt train` trains on this CPU
        p = PRESETS[name]
        m, t = get_preset(name, vocab_size=p.vocab_size)
        group = _row(_label(name), m, t, ("plotgpt", "reference"), steps or 20, peaks, device, log)
        _ratios(group, {"reference": group[1]})
        rows += group
        if group[0].get("dtype") != "float32":  # what the bf16 choice is worth on this CPU
            rows += _row(group[0]["config"], m, replace(t, dtype="float32"), ("plotgpt",), steps or 20, peaks, device, log)
        else:  # the bf16 CPUs' shape in float32: what the smaller shape buys in tokens/s here
            cpu = get_preset("cpu", vocab_size=PRESETS["cpu"].vocab_size, dtype="float32")
            rows += _row(_label("cpu"), *cpu, ("plotgpt",), steps or 20, peaks, device, log)
        group = _row("nanoGPT CPU recipe (4 x 128, T 64, vocab 50304, fp32)", *NANOGPT_CPU,
                     ("plotgpt", "nanogpt", "reference"), steps or 12, peaks, device, log)
        _ratios(group, {"reference": group[2], "nanogpt": group[1]})
        rows += group
    for r in rows:
        vs = {k: v for k, v in r.get("vs", {}).items() if k != r["kind"]}  # not a baseline against itself
        if vs:
            log(f"{r['config'][:40]:40s} {r['kind']:10s} " + ", ".join(f"{v:.2f}x the {k} loop" for k, v in vs.items()))
    return {"peak_gflops": peaks, "rows": rows}


def quality(minutes: float = 10.0, corpus: Path = SHARED_CORPUS, work: Path | None = None, preset: str = "cpu",
            log=print, **overrides) -> dict:
    """plots-bench v1: train `preset` on the shared corpus for `minutes` of training time
    (evaluations not counted, as the protocol says), then score the best checkpoint on every val token."""
    from . import checkpoint, sample
    from .evaluate import NoveltyIndex, full_loss, judge_samples
    from .prepare import prepare
    from .train import train

    if not Path(corpus).exists():
        reason = (f"{corpus} is absent: plots-bench v1 needs the shared movie-plot corpus "
                  "(../shared/data beside the project); nothing was trained")
        log(f"quality: skipped - {reason}")
        return {"skipped": reason}
    preset = resolve_preset(preset, detect_device(), overrides.get("dtype", "auto"))
    model_cfg, train_cfg = get_preset(preset, **overrides)
    work = Path(work) if work else paths.root() / "bench" / "work"
    data = load_data(prepare(corpus, work / f"plots-bench-v{PRESETS[preset].vocab_size}",
                             vocab_size=PRESETS[preset].vocab_size, progress=False, log=lambda *_: None))
    # Evals about every minute: enough points for the curve (they stop the budget's clock).
    est_steps = minutes * 60 * 8000 / (train_cfg.batch_size * train_cfg.grad_accum * model_cfg.block_size)
    train_cfg = replace(train_cfg, max_minutes=minutes, max_iters=UNTIL_BUDGET, patience=0, sample_tokens=0,
                        eval_interval=max(int(est_steps / minutes), 20), keep_last=10**6)
    log(f"quality: {BENCH_DOC}, preset {preset}, {minutes:g} min, {torch.get_num_threads()} threads")
    # A compiled preset compiles from an empty cache, as on a first run: the budget pays for all of it
    # (the throughput part has compiled the same blocks into the usual cache by now).
    cache, before = work / "compile-cache", os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    try:
        res = train(data, model_cfg, train_cfg, work / "run", overwrite=True, progress=False, log=lambda *_: None)
    finally:
        if before is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    best = checkpoint.load(work / "run" / "best.safetensors")
    t0 = time.time()
    stride = best.config.block_size // 2
    exact = full_loss(best.model, data, stride=stride)
    plain = full_loss(best.model, data)
    # The curve in exact figures too: every eval's checkpoint scored on all of val, after the budget.
    exact_at = {}
    for path in checkpoint.step_files(work / "run"):
        ck = checkpoint.load(path)
        exact_at[ck.info["step"]] = full_loss(ck.model, data, stride=stride)["bpb"]
        path.unlink()  # a few MB each; only best.safetensors is kept
    samples = sample.generate(best, "Title:", 3, sample.SampleSettings(max_new_tokens=160, seed=1))
    # The sample yardsticks at the default settings of plotgpt generate, on 20 samples of 200 tokens
    judged = judge_samples(sample.generate(best, "Title:", 20, sample.SampleSettings(max_new_tokens=200, seed=7)),
                           NoveltyIndex("\n".join(data.documents("train"))))
    evals = [h for h in res.history if h.get("kind") == "eval"]
    out = {"bench": BENCH_DOC, "preset": preset, "minutes": minutes, "threads": torch.get_num_threads(),
           "model": {k: getattr(best.config, k) for k in ("n_layer", "n_embd", "n_head", "block_size", "vocab_size",
                                                         "pos_emb", "dropout", "mlp")},
           "ema_decay": train_cfg.ema_decay,
           "dtype": str(pick_dtype(detect_device(), train_cfg.dtype)).replace("torch.", ""), "steps": res.step,
           "tokens_seen": evals[-1]["tokens"] if evals else 0,
           "best_step": best.info.get("step"), "val_bpb": exact["bpb"], "val_bpb_no_overlap": plain["bpb"],
           "val_tokens": exact["tokens"], "score_s": round(time.time() - t0, 1),
           "curve": [{"minutes": h["elapsed_s"] / 60, "step": h["step"], "val_bpb": h["val_bpb"],
                      "val_bpb_exact": exact_at.get(h["step"]), "tokens": h["tokens"]} for h in evals],
           "samples": samples, "judged": judged}
    below = [p["minutes"] for p in out["curve"] if p["val_bpb_exact"] is not None and p["val_bpb_exact"] < BEST_PEER_BPB]
    out["minutes_to_best_peer"] = round(below[0], 2) if below else None
    log(f"quality: val bits per byte {exact['bpb']:.4f} (sliding window, stride {best.config.block_size // 2}; "
        f"{plain['bpb']:.4f} with non-overlapping windows) after {out['tokens_seen']:,} tokens in {res.step} steps")
    return out


def markdown(result: dict) -> str:
    """The results as the markdown the book's Performance page includes."""
    m = result["machine"]
    lines = [f"Measured {m['date']} on {m.get('gpu') or m['cpu']} ({m['threads']} threads), torch {m['torch']}.", ""]
    tp = result.get("throughput")
    if tp:
        lines += ["Matmul peak measured here: " + ", ".join(f"{d} {v:,.0f} GFLOP/s" for d, v in tp["peak_gflops"].items()),
                  "", "| configuration | loop | dtype | tokens/s | MFU | peak memory | vs reference loop | "
                  "vs nanoGPT-style loop |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in tp["rows"]:
            if "error" in r:
                lines.append(f"| {r['config']} | {r['kind']} | | failed: {r['error']} | | | | |")
                continue
            vs = [f"{r['vs'][k]:.2f}x" if k in r.get("vs", {}) else "" for k in ("reference", "nanogpt")]
            lines.append(f"| {r['config']} | {r['kind']} | {r['dtype']} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} | "
                         f"{r['peak_mem_GB']:.2f} GB | {vs[0]} | {vs[1]} |")
        lines.append("")
    q = result.get("quality")
    if q and "skipped" in q:
        lines += [f"Quality ({BENCH_DOC}): skipped - {q['skipped']}.", ""]
    elif q:
        md = q["model"]
        lines += [f"Quality ({BENCH_DOC}, {q['minutes']:g} minutes, {q['threads']} threads): the `{q['preset']}` preset "
                  f"({md['n_layer']} x {md['n_embd']}, block {md['block_size']}, vocabulary {md['vocab_size']}, "
                  + ("rotary positions, " if md.get("pos_emb") == "rope" else "")
                  + ("relu² MLP, " if md.get("mlp") == "relu2" else "")
                  + (f"dropout {md['dropout']:g}, " if md.get("dropout") else "")
                  + (f"weights averaged (EMA {q['ema_decay']:g}), " if q.get("ema_decay") else "") +
                  f"{q['dtype']}) reached **{q['val_bpb']:.3f} val bits per byte** (sliding window; "
                  f"{q['val_bpb_no_overlap']:.3f} with non-overlapping windows) after {q['tokens_seen']:,} tokens "
                  f"in {q['steps']:,} steps."
                  + (f" It was below the best nanoGPT peer's {BEST_PEER_BPB} (exact figure) after "
                     f"{q['minutes_to_best_peer']:.1f} minutes." if q.get("minutes_to_best_peer") else ""),
                  ""]
        j = q.get("judged")
        if j:
            lines += [f"Its {j['samples']} samples of 200 tokens at the default settings: "
                      f"{j['made_up_word_rate']:.1%} made-up words, {j['copied_8gram_share']:.1%} of 8-grams copied "
                      f"from the training text, {j['repetition_4gram']:.1%} of 4-grams repeated.", ""]
        lines += ["Samples (prompt `Title:`, temperature 0.8, top-k 50):", ""]
        lines += ["```text\n" + s.strip()[:700] + "\n```" for s in q["samples"]]
    return "\n".join(lines) + "\n"


def plot_curve(quality_result: dict, path: Path, peers: dict[str, float] | None = None) -> Path | None:
    """Bits per byte against minutes of training, with the peers' final figures as lines."""
    if not quality_result or "curve" not in quality_result:
        return None
    from .plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    c = quality_result["curve"]
    ax.plot([p["minutes"] for p in c], [p["val_bpb"] for p in c], ".--", color="tab:blue", alpha=0.5,
            label="estimate during training (10 val batches)")
    exact = [(p["minutes"], p["val_bpb_exact"]) for p in c if p.get("val_bpb_exact") is not None]
    if exact:
        ax.plot(*zip(*exact), "o-", color="tab:blue", label=f"{quality_result['preset']} preset: exact, all val tokens")
    for name, v in (peers or {}).items():
        ax.axhline(v, ls="--", color="gray", lw=1)
        ax.text(0.2, v + 0.01, name, color="gray", fontsize=8)
    ax.set_xlabel("minutes of training (2 CPU threads)")
    ax.set_ylabel("val bits per byte")
    ax.set_ylim(top=min(3.5, max(p["val_bpb"] for p in c)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PEERS = {f"nanoGPT best tuned ({BEST_PEER_BPB})": BEST_PEER_BPB, "target (1.81)": 1.81}


def run(out_dir: Path, name: str, *, do_throughput: bool = True, do_quality: bool = True, minutes: float = 10.0,
        steps: int | None = None, corpus: Path = SHARED_CORPUS, work: Path | None = None, log=print) -> dict:
    """Run the benchmark and write out_dir/<name>.json, .md and (with quality) -bpb.png."""
    from .atomic import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine()}
    if do_throughput:
        result["throughput"] = throughput(steps, log=log)
    if do_quality:
        result["quality"] = quality(minutes, corpus=corpus, work=work, log=log)
        png = plot_curve(result["quality"], out_dir / f"{name}-bpb.png", PEERS)
        if png:
            result["quality"]["plot"] = png.name
    atomic_write_text(out_dir / f"{name}.json", json.dumps(result, indent=1))
    atomic_write_text(out_dir / f"{name}.md", markdown(result))
    log(f"wrote {out_dir / (name + '.json')} and {out_dir / (name + '.md')}")
    return result
