import math

import torch

from helpers.config import ModelConfig, TrainConfig
from helpers.model import GPT
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


def test_decay_only_on_matrices():
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16))
    opt = configure_optimizer(m, TrainConfig(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == m.num_params()
    assert opt.defaults["betas"] == (0.9, 0.95)


def test_decay_is_weight_decay_on_every_matrix_and_the_tied_table_and_none_on_the_rest():
    # with every gradient zero, a step is decay alone: w <- (1 - lr * wd) w on what is decayed
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16, pos_emb="learned"))
    opt = configure_optimizer(m, TrainConfig(lr=0.1, weight_decay=1.0), "cpu")
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in m.named_parameters():
        assert torch.allclose(p, before[n] * 0.9) if p.dim() == 2 else torch.equal(p, before[n]), n
    assert m.lm_head.weight is m.transformer.wte.weight  # the tied output layer goes with the table


def test_optimizer_state_round_trips_through_tensors():
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=16))
    cfg = TrainConfig()
    opt = configure_optimizer(m, cfg, "cpu")
    x = torch.randint(64, (2, 8))
    for _ in range(2):
        m(x, x)[1].backward()
        opt.step()
        opt.zero_grad()
    tensors, groups = optimizer_to_tensors(opt)
    assert any(k.endswith("exp_avg_sq") for k in tensors)
    opt2 = configure_optimizer(m, cfg, "cpu")
    optimizer_from_tensors(opt2, tensors, groups)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for k in s1["state"][i]:
            assert torch.equal(s1["state"][i][k], s2["state"][i][k])
