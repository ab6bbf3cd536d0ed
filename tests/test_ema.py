"""The weight average (helpers/ema.py): the formula, and that training evaluates and saves it."""
import json

import pytest
import torch

from helpers import checkpoint as C
from helpers.config import ModelConfig, TrainConfig, get_preset
from helpers.ema import EMA
from helpers.evaluate import estimate_loss
from helpers.dataset import load_data
from helpers.model import GPT
from helpers.train import train

QUIET = dict(progress=False, log=lambda *_: None)


def test_ema_follows_the_formula_with_its_warmup():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=64, block_size=8, n_layer=1, n_head=2, n_embd=16))
    ema = EMA(model, 0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for n in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.9, (1 + n) / (10 + n))  # 0.1, 0.18, ... then 0.9 from the 80th on: here mostly the ramp
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters())]
        ema.update(model)
    assert ema.updates == 30
    for e, got in zip(expected, ema.model.parameters()):
        torch.testing.assert_close(got, e)
    assert ema.model.transformer.wte.weight is ema.model.lm_head.weight  # still tied
    assert not any(p.requires_grad for p in ema.model.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)


def test_training_with_ema_evaluates_and_saves_the_average(prepared, tmp_path):
    model_cfg, cfg = get_preset("smoke", max_iters=30, eval_interval=15, ema_decay=0.8, sample_tokens=0)
    res = train(prepared, model_cfg, cfg, tmp_path / "run", **QUIET)
    last = C.load(res.last_checkpoint, with_state=True)
    raw = {k[4:]: v for k, v in last.state.items() if k.startswith("raw.")}
    saved = dict(last.model.named_parameters())
    assert raw.keys() == saved.keys() and last.info["ema_updates"] == 30
    assert all(not torch.equal(raw[k], saved[k]) for k in saved)  # the file's weights are not the trained ones
    # the val loss logged at step 30 is the loss of the file's (averaged) weights, not of the trained ones
    data = load_data(prepared)
    ev = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [e for e in ev if e["kind"] == "eval"][-1]

    def val_loss(model):
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # the batches every eval uses
        return estimate_loss(model, data, batch_size=cfg.batch_size, block_size=model_cfg.block_size,
                             eval_iters=cfg.eval_iters, generator=gen)

    assert val_loss(last.model)["val"] == pytest.approx(logged["val_loss"], abs=1e-6)
    trained = GPT(last.config)
    trained.load_state_dict({**raw, "lm_head.weight": raw["transformer.wte.weight"]})
    assert val_loss(trained)["val"] != pytest.approx(logged["val_loss"], abs=1e-4)


def test_resuming_a_run_without_ema_with_it_on_starts_the_average_there(prepared, tmp_path):
    model_cfg, cfg = get_preset("smoke", max_iters=20, eval_interval=10, sample_tokens=0)
    train(prepared, model_cfg, cfg, tmp_path / "run", **QUIET)
    more = TrainConfig(**{**cfg.__dict__, "max_iters": 30, "ema_decay": 0.9})
    res = train(prepared, model_cfg, more, tmp_path / "run", resume=True, **QUIET)
    info = C.load(res.last_checkpoint).info
    assert res.step == 30 and info["ema_updates"] == 10
