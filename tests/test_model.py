import math
from dataclasses import replace

import pytest
import torch

from helpers.config import ModelConfig, PRESETS, get_preset
from helpers.model import GPT

CFG = ModelConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(CFG).eval()


def test_shapes_and_loss_at_init_is_about_ln_vocab(model):
    x = torch.randint(97, (3, 16))
    y = torch.randint(97, (3, 16))
    logits, loss = model(x, y)
    assert logits.shape == (3, 16, 97)
    assert abs(loss.item() - math.log(97)) < 0.3  # an untrained model is close to uniform
    logits, loss = model(x)
    assert logits.shape == (3, 1, 97) and loss is None


def _set_kernel(model, kernel):
    for m in model.modules():
        if hasattr(m, "kernel"):
            m.kernel = kernel
    return model


@pytest.mark.parametrize("kernel", ["sdpa", "explicit"])
def test_attention_is_causal(model, kernel):
    _set_kernel(model, kernel)
    x = torch.randint(97, (1, 16))
    x2 = x.clone()
    x2[0, 10:] = (x2[0, 10:] + 1) % 97  # change only the future
    full, _ = model(x, x)
    full2, _ = model(x2, x2)
    assert torch.allclose(full[0, :10], full2[0, :10], atol=1e-6)
    assert not torch.allclose(full[0, 10:], full2[0, 10:])


def test_param_count_matches_gpt2_small():
    m, _ = get_preset("gpu-124m", vocab_size=50304)
    with torch.device("meta"):
        gpt = GPT(m)
    assert round(gpt.num_params() / 1e6) == 124  # GPT-2 small
    assert gpt.num_params(non_embedding=True) == gpt.num_params() - 50304 * 768 - 256 * 768


def test_weights_are_tied(model):
    assert model.lm_head.weight is model.transformer.wte.weight


def test_config_refuses_absurd_sizes():
    with pytest.raises(ValueError, match="n_layer"):
        ModelConfig(n_layer=10**9)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(n_embd=100, n_head=3)


def test_presets_build():
    for name in PRESETS:
        m, t = get_preset(name, vocab_size=4096)
        assert m.n_embd % m.n_head == 0 and t.batch_size >= 1
    m, t = get_preset("cpu", n_layer=2, lr=1e-4, dropout=None)
    assert m.n_layer == 2 and t.lr == 1e-4 and m.dropout == PRESETS["cpu"].model.dropout
    with pytest.raises(ValueError, match="unknown setting"):
        get_preset("cpu", n_layers=2)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("tpu")


def test_greedy_is_deterministic_and_equals_top_k_1(model):
    idx = torch.tensor([[1, 2, 3]])
    a = model.generate(idx, 12, do_sample=False)
    b = model.generate(idx, 12, do_sample=False)
    c = model.generate(idx, 12, top_k=1, seed=5)
    d = model.generate(idx, 12, top_p=1e-9, seed=6)  # the nucleus holds only the top token
    assert a.shape == (1, 15) and torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)


def test_seed_makes_sampling_reproducible(model):
    idx = torch.tensor([[1, 2, 3]])
    a = model.generate(idx, 20, seed=1, temperature=1.5)
    b = model.generate(idx, 20, seed=1, temperature=1.5)
    c = model.generate(idx, 20, seed=2, temperature=1.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_restricts_the_choice(model):
    idx = torch.tensor([[5]])
    logits, _ = model(idx)
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    for seed in range(20):
        nxt = model.generate(idx, 1, top_k=3, temperature=5.0, seed=seed)[0, -1].item()
        assert nxt in allowed


def test_stops_at_end_of_text(model):
    idx = torch.tensor([[1, 2]])
    first = model.generate(idx, 1, do_sample=False)[0, -1].item()
    out = model.generate(idx, 10, do_sample=False, eos_token=first)
    assert out.shape == (1, 3)  # stopped right after producing eos


def test_repetition_penalty_reduces_repeats():
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=50, block_size=64, n_layer=1, n_head=1, n_embd=16)).eval()
    with torch.no_grad():  # bias the model towards repeating token 7
        m.lm_head.weight[7] += 0.5
    idx = torch.tensor([[1]])
    plain = model_repeats(m.generate(idx, 40, do_sample=False))
    penal = model_repeats(m.generate(idx, 40, do_sample=False, repetition_penalty=3.0))
    assert penal < plain


def model_repeats(out):
    toks = out[0].tolist()
    return len(toks) - len(set(toks))


def test_stream_yields_what_generate_returns(model):
    idx = torch.tensor([[4, 5]])
    streamed = [t.item() for t in model.generate_stream(idx, 8, seed=3)]
    assert streamed == model.generate(idx, 8, seed=3)[0, 2:].tolist()


def test_context_longer_than_block_is_cropped(model):
    out = model.generate(torch.randint(97, (1, 40)), 5, do_sample=False)
    assert out.shape == (1, 45)


def test_bad_sampling_settings(model):
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.tensor([[1]]), 2, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(torch.tensor([[1]]), 2, top_p=1.5)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_explicit_attention_computes_what_the_fused_kernel_does(model, dtype, tol):
    x, y = torch.randint(97, (4, 16)), torch.randint(97, (4, 16))
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        fused, loss_f = _set_kernel(model, "sdpa")(x, y)
        explicit, loss_e = _set_kernel(model, "explicit")(x, y)
    assert (fused.float() - explicit.float()).abs().max() < tol
    assert abs(loss_f.item() - loss_e.item()) < tol
    assert model.transformer.h[0].attn.use_explicit(torch.zeros(1, dtype=torch.bfloat16)) is True
    _set_kernel(model, "auto")
    attn = model.transformer.h[0].attn
    assert attn.use_explicit(torch.zeros(1, dtype=torch.bfloat16)) and not attn.use_explicit(torch.zeros(1))
    attn.dropout = 0.1
    assert not attn.use_explicit(torch.zeros(1))  # eval mode: no dropout, the fused kernel
    assert attn.train().use_explicit(torch.zeros(1))  # fp32 training with dropout: the cheap mask


def test_training_mode_dropout_is_random_and_eval_mode_is_not():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.2))
    x = torch.randint(97, (2, 16))
    for kernel in ("sdpa", "explicit"):
        _set_kernel(model, kernel).train()
        a, b = model(x, x)[0], model(x, x)[0]
        assert not torch.allclose(a, b)
        model(x, x)[1].backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        model.zero_grad()
        model.eval()
        assert torch.equal(model(x, x)[0], model(x, x)[0])


ROPE = ModelConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32, pos_emb="rope")


@pytest.mark.parametrize("kernel", ["sdpa", "explicit"])
def test_rope_model_is_causal_and_both_kernels_agree(kernel):
    torch.manual_seed(0)
    model = _set_kernel(GPT(ROPE).eval(), kernel)
    x = torch.randint(97, (2, 16))
    x2 = x.clone()
    x2[:, 9:] = (x2[:, 9:] + 1) % 97
    a, _ = model(x, x)
    b, _ = model(x2, x2)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6) and not torch.allclose(a[:, 9:], b[:, 9:])
    other, _ = _set_kernel(model, "explicit" if kernel == "sdpa" else "sdpa")(x, x)
    assert torch.allclose(a, other, atol=1e-5)


def test_rope_scores_depend_only_on_the_distance_between_tokens():
    from helpers.model import Rotary

    rot = Rotary(head_size=8, max_len=64)
    q, k = torch.randn(8), torch.randn(8)

    def at(v, t):  # v rotated as if it stood at position t
        seq = torch.zeros(1, 1, t + 1, 8)
        seq[0, 0, t] = v
        return rot(seq)[0, 0, t]

    same_distance = [at(q, t + 3) @ at(k, t) for t in (0, 5, 40)]
    assert torch.allclose(torch.stack(same_distance), same_distance[0].expand(3), atol=1e-4)
    assert not torch.isclose(at(q, 4) @ at(k, 0), at(q, 9) @ at(k, 0), atol=1e-3)  # distance matters
    assert torch.allclose(at(q, 0), q)  # position 0 is not rotated


def test_rope_has_no_position_table_and_its_buffers_are_not_saved():
    model = GPT(ROPE)
    names = set(model.state_dict())
    assert not any("wpe" in n or "rotary" in n for n in names)
    learned = GPT(replace(ROPE, pos_emb="learned"))
    assert learned.num_params() - model.num_params() == 16 * 32  # the (T, C) table, nothing else
    assert model.num_params(non_embedding=True) == model.num_params() - 97 * 32


def test_relu2_mlp_squares_the_positive_part_and_keeps_the_parameters():
    from helpers.model import MLP

    torch.manual_seed(0)
    gelu, relu2 = MLP(ROPE), MLP(replace(ROPE, mlp="relu2"))
    relu2.load_state_dict(gelu.state_dict())  # same weights: the activation holds no parameters
    x = torch.randn(2, 5, 32)
    h = relu2.c_fc(x)
    assert torch.allclose(relu2(x), relu2.c_proj(torch.where(h > 0, h * h, 0.0)), atol=1e-6)
    assert not torch.allclose(relu2(x), gelu(x), atol=1e-3)
    from helpers.kernels import ReLU2

    xd = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ReLU2(), (xd,))  # the hand-written backward is the true gradient


def test_new_model_options_are_validated():
    with pytest.raises(ValueError, match="pos_emb"):
        ModelConfig(pos_emb="alibi")
    with pytest.raises(ValueError, match="mlp"):
        ModelConfig(mlp="swish")
    with pytest.raises(ValueError, match="bias"):
        ModelConfig(bias="yes")  # e.g. from a hand-edited checkpoint header
    with pytest.raises(ValueError, match="even head size"):
        ModelConfig(n_embd=30, n_head=2, pos_emb="rope")


def test_cpu_preset_resolves_by_the_dtype_the_cpu_trains_in(monkeypatch):
    from helpers import device
    from helpers.config import resolve_preset

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert resolve_preset("cpu", "cpu") == "cpu"
    assert resolve_preset("cpu", "cpu", "float32") == "cpu-fp32"  # --dtype float32 asks for the fp32 shape
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert resolve_preset("cpu", "cpu") == "cpu-fp32"
    assert resolve_preset("cpu", "cpu", "bfloat16") == "cpu"
    assert resolve_preset("cpu", "cuda") == "cpu"  # the name means the CPU's shape only on a CPU
    for name in ("smoke", "gpu-124m", "cpu-fp32"):
        assert resolve_preset(name, "cpu") == name
    m, t = get_preset("cpu-fp32", vocab_size=4096)
    assert m.pos_emb == "rope" and t.dtype == "float32" and m.block_size == PRESETS["cpu"].model.block_size


def test_the_loss_is_float32_cross_entropy_and_adds_nothing_to_a_checkpoint(model):
    """GPT.loss (TokenLoss) is a module only so that it can be compiled; it holds no weights and
    scores bf16 logits in float32, as F.cross_entropy on the upcast logits does."""
    assert not any(k.startswith("loss") for k in model.state_dict())
    logits = (torch.randn(48, 97) * 3).bfloat16()
    y = torch.randint(97, (48,))
    got = model.loss(logits, y)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.float(), y).item(), abs=1e-6)
    assert got.item() != pytest.approx(torch.nn.functional.cross_entropy(logits.float(), y.roll(1)).item(), abs=1e-3)


def test_compiling_on_a_cpu_compiles_each_block_and_the_loss_in_place(model):
    """maybe_compile on a CPU: regional compilation (the blocks and the loss, each in place); the
    model object, its parameters and its state_dict keys stay as they were."""
    from helpers.device import compile_problem, maybe_compile

    if compile_problem("cpu") is not None:
        pytest.skip(compile_problem("cpu"))
    keys = list(model.state_dict())
    out = maybe_compile(model, "cpu", log=lambda *_: None)
    assert out is model and list(model.state_dict()) == keys
    assert all(b._compiled_call_impl is not None for b in model.transformer.h)
    assert model.loss._compiled_call_impl is not None
    assert model.lm_head._compiled_call_impl is None  # the output layer stays eager


def test_the_causal_mask_is_a_buffer_that_no_checkpoint_holds(model):
    """The explicit kernel's additive mask: 0 on and below the diagonal, -inf above, for the longest
    context; a buffer, never saved (old checkpoints load as before)."""
    mask = model.transformer.h[0].attn.causal
    T = CFG.block_size
    assert mask.shape == (T, T)
    assert torch.equal(mask == 0, torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.isinf(mask[0, 1:]).all() and (mask[0, 1:] < 0).all()
    assert not any("causal" in k for k in model.state_dict())
    GPT(CFG).load_state_dict(model.state_dict())  # strict: the key sets agree

