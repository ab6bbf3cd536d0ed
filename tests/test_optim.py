import math

import pytest
import torch

from helpers.config import ModelConfig, TrainConfig
from helpers.model import GPT
from helpers.muon import MuonAdamW, orthogonalize
from helpers.optim import configure_optimizer, lr_at, optimizer_from_tensors, optimizer_to_tensors


def test_warmup_then_cosine_to_the_floor():
    cfg = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_iters=10, max_iters=110)
    lrs = [lr_at(s, cfg) for s in range(0, 111)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rising during warmup
    assert math.isclose(lrs[10], 1.0)
    assert math.isclose(lrs[60], 0.55)  # halfway down the cosine: (1 + 0.1) / 2
    assert math.isclose(lrs[110], 0.1) and math.isclose(lr_at(500, cfg), 0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    # A time budget finishes the cosine even when max_iters is far away
    assert math.isclose(lr_at(20, cfg, time_progress=1.0), 0.1)


def test_warmup_stable_decay_holds_the_peak_then_falls_in_a_straight_line():
    cfg = TrainConfig(lr=1.0, min_lr_ratio=0.0, warmup_iters=10, max_iters=110, cooldown=0.3)
    lrs = [lr_at(s, cfg) for s in range(0, 111)]
    assert lrs[:10] == [lr_at(s, TrainConfig(lr=1.0, warmup_iters=10, max_iters=110)) for s in range(10)]
    assert all(math.isclose(v, 1.0) for v in lrs[10:81])  # held for the first 70 % after warmup
    assert math.isclose(lrs[95], 0.5) and math.isclose(lrs[110], 0.0)  # then linear to the floor
    steps = [a - b for a, b in zip(lrs[80:], lrs[81:])]
    assert all(math.isclose(d, 1 / 30) for d in steps)
    assert math.isclose(lr_at(20, cfg, time_progress=0.85), 0.5)  # the time budget drives it too
    with pytest.raises(ValueError, match="cooldown"):
        TrainConfig(cooldown=1.5)


def test_decay_only_on_matrices():
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16))
    opt = configure_optimizer(m, TrainConfig(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == m.num_params()
    assert opt.defaults["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
@pytest.mark.parametrize("scale", [1.0, 0.0, 3.0])
def test_embed_decay_scale_sets_the_embedding_tables_decay_apart(optimizer, scale):
    # with every gradient zero, a step is decay alone: w <- (1 - lr * wd) w on what is decayed
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16, pos_emb="learned"))
    opt = configure_optimizer(m, TrainConfig(lr=0.1, weight_decay=1.0, optimizer=optimizer,
                                             embed_decay_scale=scale), "cpu")
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    tables = ("transformer.wte.weight", "transformer.wpe.weight")
    for n, p in m.named_parameters():
        if n in tables:
            assert torch.allclose(p, before[n] * (1 - 0.1 * scale)), n
        elif p.dim() == 2:  # the blocks' matrices decay at weight_decay whatever the scale
            assert torch.allclose(p, before[n] * 0.9), n
        else:
            assert torch.equal(p, before[n]), n
    assert m.lm_head.weight is m.transformer.wte.weight  # the tied output layer goes with the table
    if scale == 1.0:  # the same param groups, in the same order, as before the scale existed
        assert len(opt.param_groups) == (2 if optimizer == "adamw" else 3)


def test_embed_decay_scale_must_not_be_negative():
    with pytest.raises(ValueError, match="embed_decay_scale=-1"):
        TrainConfig(embed_decay_scale=-1.0)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_optimizer_state_round_trips_through_tensors(optimizer):
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16))
    cfg = TrainConfig(optimizer=optimizer)
    opt = configure_optimizer(m, cfg, "cpu")
    x = torch.randint(64, (2, 8))
    for _ in range(2):
        m(x, x)[1].backward()
        opt.step()
        opt.zero_grad()
    tensors, groups = optimizer_to_tensors(opt)
    if optimizer == "muon":  # Muon's momentum and AdamW's moments, both kept
        assert any(k.endswith("momentum_buffer") for k in tensors) and any(k.endswith("exp_avg_sq") for k in tensors)
    opt2 = configure_optimizer(m, cfg, "cpu")
    optimizer_from_tensors(opt2, tensors, groups)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for k in s1["state"][i]:
            assert torch.equal(s1["state"][i][k], s2["state"][i][k])


# ---- Muon (helpers/muon.py) ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (48, 48)])
def test_newton_schulz_makes_every_singular_value_about_one(shape):
    torch.manual_seed(0)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k))
    g = u @ torch.diag(torch.logspace(-2, 0, k)) @ v.T  # singular values spread over 2 decades
    o = orthogonalize(g)
    s = torch.linalg.svdvals(o)
    assert o.shape == g.shape and o.dtype == g.dtype
    assert s.min() > 0.6 and s.max() < 1.25, s  # the quintic's band, not exactly 1 (see NS_COEFFICIENTS)
    # ...and it keeps the directions: the same singular vectors as U V^T of the exact SVD
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    assert torch.nn.functional.cosine_similarity(o.flatten(), (u @ vh).flatten(), dim=0) > 0.97


def test_muon_groups_match_torch_muon():
    """The same update as torch.optim.Muon with Moonshot's lr matching (ours iterates in float32 on
    a CPU, torch's in bfloat16: hence the tolerance)."""
    torch.manual_seed(0)
    w = torch.randn(64, 32)
    w2 = w.clone()
    ours = MuonAdamW([{"params": [w], "muon": True, "weight_decay": 0.1}], lr=0.01)
    theirs = torch.optim.Muon([w2], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(4):
        g = torch.randn(64, 32)
        w.grad, w2.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    scale = w2.abs().max()
    assert torch.allclose(w, w2, atol=2e-3 * float(scale)), (w - w2).abs().max()


def test_adamw_groups_match_torch_adamw_exactly():
    torch.manual_seed(0)
    p = torch.randn(10, 5)
    p2 = p.clone()
    ours = MuonAdamW([{"params": [p], "weight_decay": 0.1}], lr=0.01, fused=True)
    theirs = torch.optim.AdamW([p2], lr=0.01, weight_decay=0.1, betas=(0.9, 0.95), fused=True)
    for _ in range(3):
        g = torch.randn(10, 5)
        p.grad, p2.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    assert torch.equal(p, p2)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=2, n_head=2, n_embd=16))
    opt = configure_optimizer(m, TrainConfig(optimizer="muon", weight_decay=0.5), "cpu")
    hidden, embed, norms = opt.param_groups
    names = {id(p): n for n, p in m.named_parameters()}
    assert hidden["muon"] and not embed["muon"] and not norms["muon"]
    assert sorted(names[id(p)].split(".", 3)[-1] for p in hidden["params"]) == \
        sorted(["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"] * 2)
    # the token table (tied to the output layer) and the position table stay on AdamW
    assert [names[id(p)] for p in embed["params"]] == ["transformer.wte.weight", "transformer.wpe.weight"]
    assert hidden["weight_decay"] == embed["weight_decay"] == 0.5 and norms["weight_decay"] == 0.0
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == m.num_params()
    with pytest.raises(ValueError, match="2-D"):
        MuonAdamW([{"params": [torch.zeros(3)], "muon": True}], lr=0.1)
    with pytest.raises(ValueError, match="adamw or muon"):
        TrainConfig(optimizer="sgd")



def test_muon_lr_scale_multiplies_the_step_not_the_decay():
    torch.manual_seed(0)
    g = torch.randn(16, 8)
    moved = {}
    for scale, wd in [(1.0, 0.0), (2.0, 0.0), (2.0, 0.5)]:
        w = torch.ones(16, 8)
        opt = MuonAdamW([{"params": [w], "muon": True, "weight_decay": wd, "lr_scale": scale}], lr=0.01)
        w.grad = g.clone()
        opt.step()
        moved[scale, wd] = w
    step1, step2 = 1 - moved[1.0, 0.0], 1 - moved[2.0, 0.0]
    assert torch.allclose(step2, 2 * step1, atol=1e-6)
    assert torch.allclose(moved[2.0, 0.5], moved[2.0, 0.0] - 0.01 * 0.5, atol=1e-6)  # decay: lr x wd x w, w = 1
