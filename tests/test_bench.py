"""The benchmark: its baseline loops compute the same model maths, its FLOP count, the quality run
on the shared corpus (or a clear skip without it), and the report files."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import bench
from helpers.config import ModelConfig, TrainConfig
from helpers.model import GPT
from helpers.throughput import ReferenceGPT, flops_per_token, matmul_params, measure_isolated

from conftest import SHARED

TINY = ModelConfig(vocab_size=128, block_size=16, n_layer=2, n_head=2, n_embd=32)


def test_reference_model_is_the_same_function_written_the_plain_way():
    """Copy GPT's weights into the minGPT-style model: same logits, so the speed ratio is like for like."""
    torch.manual_seed(0)
    ours, ref = GPT(TINY).eval(), ReferenceGPT(TINY).eval()
    t = ours.transformer
    with torch.no_grad():
        ref.tok_emb.weight.copy_(t.wte.weight)
        ref.head.weight.copy_(t.wte.weight)
        ref.pos_emb.copy_(t.wpe.weight[None])
        ref.ln_f.load_state_dict(t.ln_f.state_dict())
        for rb, b in zip(ref.blocks, t.h):
            rb.ln1.load_state_dict(b.ln_1.state_dict())
            rb.ln2.load_state_dict(b.ln_2.state_dict())
            for i, lin in enumerate((rb.attn.query, rb.attn.key, rb.attn.value)):
                lin.weight.copy_(b.attn.c_attn.weight[i * 32:(i + 1) * 32])
                lin.bias.copy_(b.attn.c_attn.bias[i * 32:(i + 1) * 32])
            rb.attn.proj.load_state_dict(b.attn.c_proj.state_dict())
            rb.mlp[0].load_state_dict(b.mlp.c_fc.state_dict())
            rb.mlp[2].load_state_dict(b.mlp.c_proj.state_dict())
    x = torch.randint(128, (3, 16))
    a, _ = ours(x, x)
    b, _ = ref(x, x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_flops_per_token_counts_matmuls_and_attention():
    n = GPT(TINY).num_params()
    n_matmul = n - TINY.block_size * TINY.n_embd  # the position table is a lookup
    assert matmul_params(GPT(TINY)) == n_matmul
    assert flops_per_token(TINY, n_matmul) == 6 * n_matmul + 12 * 2 * 32 * 16


@pytest.mark.parametrize("pos_emb", ["learned", "rope"])
def test_the_untied_reference_does_the_same_matmuls_as_our_model(pos_emb):
    # minGPT unties the token table from the output layer: more parameters, but the table is a
    # lookup, so the FLOPs per token (and the MFU of a loop) must not count it
    from dataclasses import replace

    cfg = replace(TINY, pos_emb=pos_emb)
    ref = ReferenceGPT(cfg)
    assert ref.num_params() > GPT(cfg).num_params()
    assert matmul_params(ref) == matmul_params(GPT(cfg))


@pytest.mark.parametrize("kind", ["plotgpt", "reference", "nanogpt"])
def test_each_loop_trains_in_its_own_process_and_reports(kind):
    r = measure_isolated(TINY, TrainConfig(batch_size=4, dtype="float32"), kind=kind, steps=2, device="cpu")
    assert "error" not in r, r
    assert r["tokens_per_s"] > 0 and r["peak_mem_GB"] > 0.01 and r["kind"] == kind


def test_a_loop_that_fails_reports_its_error_instead_of_a_number():
    r = measure_isolated(TINY, TrainConfig(batch_size=4), kind="no-such-loop", steps=1, device="cpu")
    assert "unknown loop kind" in r["error"]


def test_quality_skips_with_a_reason_without_the_shared_corpus(tmp_path):
    r = bench.run(tmp_path, "t", do_throughput=False, minutes=0.05, corpus=tmp_path / "absent.txt", log=lambda *_: None)
    assert "absent" in r["quality"]["skipped"]
    assert "skipped" in (tmp_path / "t.md").read_text()
    assert json.loads((tmp_path / "t.json").read_text())["quality"] == r["quality"]


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent (plots-bench v1 needs it)")
def test_quality_run_on_the_shared_corpus_writes_report_and_plot(tmp_path):
    r = bench.run(tmp_path, "q", do_throughput=False, minutes=0.15, work=tmp_path / "work",
                  log=lambda *_: None)["quality"]
    assert r["steps"] > 0 and r["tokens_seen"] > 0 and len(r["samples"]) == 3
    assert 0.5 < r["val_bpb"] < 8.0 and math.isfinite(r["val_bpb_no_overlap"])
    assert r["curve"][0]["minutes"] == 0 and r["curve"][-1]["minutes"] <= 0.15 * 1.5
    md = (tmp_path / "q.md").read_text()
    assert f"{r['val_bpb']:.3f} val bits per byte" in md
    assert ("weights averaged (EMA" in md) == bool(r["ema_decay"])  # the sentence names what was trained
    j = r["judged"]  # the sample yardsticks, made-up words among them
    assert j["samples"] == 20 and j["lowercase_words"] > 0 and 0 <= j["made_up_word_rate"] <= 1
    assert f"{j['made_up_word_rate']:.1%} made-up words" in md
    assert (tmp_path / "q-bpb.png").stat().st_size > 5000


def test_cli_bench_refuses_a_bad_budget_in_one_line(cli_env):
    p = subprocess.run([sys.executable, "-m", "helpers", "bench", "--minutes", "0"], env=cli_env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--minutes" in p.stderr


class _Tokens:
    """Just the two things full_loss reads from prepared data."""

    def __init__(self, ids):
        self.ids = ids
        self.meta = {"splits": {"val": {"bytes": 3 * len(ids)}}}

    def tokens(self, split):
        return self.ids


def test_sliding_window_scores_every_token_once_with_the_context_it_promises():
    import numpy as np
    from torch.nn import functional as F

    from helpers.evaluate import full_loss

    torch.manual_seed(1)
    model = GPT(TINY).eval()
    ids = np.random.default_rng(0).integers(0, 128, 70).astype(np.uint16)
    arr = torch.from_numpy(ids.astype(np.int64))
    # stride 1: token i+1 is predicted from the (up to) T tokens ending at i - computed one by one here
    brute = 0.0
    for i in range(len(arr) - 1):
        ctx = arr[max(0, i - 15):i + 1][None]
        logits, _ = model(ctx, ctx)
        brute += F.cross_entropy(logits[0, -1:], arr[i + 1:i + 2]).item()
    slid = full_loss(model, _Tokens(ids), stride=1, batch_size=7)
    assert slid["tokens"] == 69 and slid["loss"] * 69 == pytest.approx(brute, rel=1e-5)
    # stride = block (the default): consecutive windows, each token once, the first of each blind
    plain = full_loss(model, _Tokens(ids))
    windows = 0.0
    for s in range(0, 69, 16):
        e = min(s + 16, 69)
        _, loss = model(arr[s:e][None], arr[s + 1:e + 1][None])
        windows += loss.item() * (e - s)
    # a stride of a whole block is the same, except that its last window is a full block ending at
    # the last token, scoring only the 5 tokens not yet scored
    logits, _ = model(arr[53:69][None], arr[54:70][None])
    last = F.cross_entropy(logits[0, -5:], arr[65:70], reduction="sum").item()
    _, short = model(arr[64:69][None], arr[65:70][None])
    full_block = full_loss(model, _Tokens(ids), stride=16)
    assert full_block["loss"] * 69 == pytest.approx(windows - short.item() * 5 + last, rel=1e-5)
    assert plain["tokens"] == 69 and plain["loss"] * 69 == pytest.approx(windows, rel=1e-5)
    with pytest.raises(ValueError, match="stride"):
        full_loss(model, _Tokens(ids), stride=17)


def test_a_rope_model_has_no_lookup_table_to_leave_out_of_the_matmuls():
    from dataclasses import replace

    rope = replace(TINY, pos_emb="rope")
    n = GPT(rope).num_params()
    assert matmul_params(GPT(rope)) == n  # no position table to leave out


@pytest.mark.parametrize("native_bf16", [True, False])
def test_cpu_throughput_measures_only_the_dtypes_this_cpu_computes(monkeypatch, native_bf16):
    """An emulated bf16 matmul peak takes many minutes to measure and no loop would use it."""
    measured, configs = [], []
    monkeypatch.setattr(bench, "detect_device", lambda *a: "cpu")
    monkeypatch.setattr(bench, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(bench, "resolve_preset", lambda name, *a: "cpu" if native_bf16 else "cpu-fp32")
    monkeypatch.setattr(bench, "matmul_peak", lambda device, dtype: measured.append(dtype) or 1.0)
    ran = "bfloat16" if native_bf16 else "float32"  # what dtype auto would pick on this CPU

    def row(label, m, t, kinds, *a):
        configs.append((label, t.dtype))
        return [{"config": label, "kind": k, "dtype": ran if t.dtype == "auto" else t.dtype, "error": "not run"}
                for k in kinds]

    monkeypatch.setattr(bench, "_row", row)
    bench.throughput(log=lambda *_: None)
    assert measured == ([torch.float32, torch.bfloat16] if native_bf16 else [torch.float32])
    assert configs[0][0].startswith("cpu preset" if native_bf16 else "cpu-fp32 preset")
    assert ("cpu preset" in configs[1][0]) and configs[1][1] == "float32"  # the other shape, in fp32


def test_results_name_the_processor_and_its_bf16_units():
    """`x86_64` alone covers CPUs whose bf16 peaks differ by 2.75x (a Zen 5 and a Xeon with AMX)."""
    from helpers.device import cpu_has_native_bf16

    name = bench.machine()["cpu"]
    assert name and name not in ("x86_64", "aarch64") or not Path("/proc/cpuinfo").exists()
    assert ("BF16" in name) == cpu_has_native_bf16()  # the units named are the ones dtype auto relies on
