import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import checkpoint as C
from helpers import tokenizer as tok
from helpers.config import ModelConfig
from helpers.model import GPT


class Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def enc():
    return tok.train_bpe(["the hero saves the town and the town cheers"] * 30, vocab_size=300)


@pytest.fixture
def saved(tmp_path, enc):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=32))
    rng = torch.get_rng_state()
    path = C.save(tmp_path / "c.safetensors", model, enc, {"step": 7}, {"rng_torch": rng})
    model.rng = rng
    return path, model


def test_round_trip_is_exact(saved):
    path, model = saved
    ck = C.load(path, with_state=True)
    assert ck.info == {"step": 7} and ck.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), ck.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert ck.model.lm_head.weight is ck.model.transformer.wte.weight  # still tied
    assert torch.equal(ck.state["rng_torch"], model.rng)
    assert C.load(path).state == {}  # training state only when asked for
    assert list(path.parent.glob("*.tmp")) == []  # the atomic write left no temp file


def test_rope_model_round_trips_and_checkpoints_without_pos_emb_still_load(tmp_path, enc):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=32, pos_emb="rope")
    model = GPT(cfg).eval()
    path = C.save(tmp_path / "rope.safetensors", model, enc, {"step": 1})
    ck = C.load(path)
    x = torch.randint(300, (2, 16))
    assert ck.config == cfg and torch.equal(ck.model.eval()(x, x)[0], model(x, x)[0])
    # A checkpoint written before pos_emb existed holds a config without it: GPT-2's learned table.
    old = GPT(ModelConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=32))
    path = C.save(tmp_path / "old.safetensors", old, enc, {})
    _rewrite_meta(path, lambda meta: [meta["model_config"].pop(k) for k in ("pos_emb", "mlp")])
    assert C.load(path).config == old.config


def test_a_checkpoint_with_retired_options_loads_when_they_were_off_and_is_refused_when_on(tmp_path, enc):
    """Options the search retired (helpers.config.RETIRED) sit in older checkpoints' configs: at their
    "off" value they are dropped; a model trained with one on cannot be rebuilt, and says so in one line."""
    model = GPT(ModelConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    path = C.save(tmp_path / "old.safetensors", model, enc, {})
    _rewrite_meta(path, lambda meta: meta["model_config"].update(qk_norm=False, logit_softcap=0.0, drop_path=0.0))
    ck = C.load(path)
    assert ck.config == model.config and torch.equal(ck.model.transformer.wte.weight, model.transformer.wte.weight)
    _rewrite_meta(path, lambda meta: meta["model_config"].update(qk_norm=True))
    with pytest.raises(C.CheckpointError, match=r"trained with qk_norm=True, an option PlotGPT has retired.*"
                                                r"search-cpu-r17") as err:
        C.load(path)
    assert "\n" not in str(err.value)


def test_speedrun_options_round_trip(tmp_path, enc):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=320, block_size=16, n_layer=2, n_head=2, n_embd=32, pos_emb="rope",
                      mlp="relu2", bias=False)
    model = GPT(cfg).eval()
    ck = C.load(C.save(tmp_path / "m.safetensors", model, enc, {}))
    x = torch.randint(300, (2, 16))
    assert ck.config == cfg and torch.equal(ck.model.eval()(x, x)[0], model(x, x)[0])


def test_resolve_prefers_best_then_newest_step(saved):
    import shutil

    path, _ = saved
    run = path.parent / "run"
    run.mkdir()
    for name in ("step-000010.safetensors", "step-000020.safetensors"):
        shutil.copy(path, run / name)
    assert C.resolve(run) == run / "step-000020.safetensors"
    shutil.copy(path, run / "best.safetensors")
    assert C.resolve(run) == run / "best.safetensors"


def _rewrite_header(path: Path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def _rewrite_meta(path: Path, edit) -> None:
    """Apply `edit` to the plotgpt JSON metadata inside the safetensors header."""

    def on_header(header):
        meta = json.loads(header["__metadata__"]["plotgpt"])
        edit(meta)
        header["__metadata__"]["plotgpt"] = json.dumps(meta)

    _rewrite_header(path, on_header)


def test_header_lying_about_shapes_is_refused(saved):
    path, _ = saved
    _rewrite_header(path, lambda h: h["model.transformer.wpe.weight"].__setitem__("shape", [16, 64]))
    with pytest.raises(C.CheckpointError, match="wpe.weight has shape"):
        C.load(path)


def test_header_lying_about_offsets_is_refused(saved):
    path, _ = saved
    _rewrite_header(path, lambda h: h["model.transformer.wpe.weight"].__setitem__("data_offsets", [0, 10**12]))
    with pytest.raises(C.CheckpointError, match="points outside the file"):
        C.load(path)


def test_absurd_config_is_refused_without_allocating(saved):
    path, _ = saved

    _rewrite_meta(path, lambda meta: meta["model_config"].__setitem__("n_layer", 10**9))
    with pytest.raises(C.CheckpointError, match="n_layer=1000000000 is outside"):
        C.load(path)


def test_malformed_tokenizer_in_checkpoint_is_refused(saved):
    path, _ = saved

    _rewrite_meta(path, lambda meta: meta["tokenizer"]["tokens"].__setitem__(5, meta["tokenizer"]["tokens"][6]))
    with pytest.raises(tok.TokenizerError, match="duplicate"):
        C.load(path)


def test_truncated_and_garbage_files_are_refused(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(C.CheckpointError, match="corrupt|truncated|outside"):
        C.load(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello")
    with pytest.raises(C.CheckpointError, match="not a PlotGPT checkpoint"):
        C.load(junk)
    with pytest.raises(C.CheckpointError, match="no checkpoint at"):
        C.load(tmp_path / "missing.safetensors")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(C.CheckpointError, match="holds no checkpoint"):
        C.resolve(tmp_path / "empty-dir")


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, kind, cli_env):
    marker = tmp_path / "PWNED"
    evil = tmp_path / f"evil-{kind}.pt"
    if kind == "pickle":
        evil.write_bytes(pickle.dumps({"model": Payload(marker)}, protocol=4))
    else:
        torch.save({"model": Payload(marker)}, evil)
    # Sanity: unpickling this file really would run the payload
    probe = tmp_path / "probe.pt"
    probe.write_bytes(pickle.dumps(Payload(tmp_path / "PROBE")))
    pickle.loads(probe.read_bytes())
    assert (tmp_path / "PROBE").exists()

    for cmd in (["generate", "--checkpoint", str(evil)], ["evaluate", "--checkpoint", str(evil)],
                ["finetune", "--checkpoint", str(evil)]):
        r = subprocess.run([sys.executable, "-m", "helpers", *cmd], capture_output=True, text=True, env=cli_env,
                           timeout=120)
        assert r.returncode == 2, r.stderr
        assert "never unpickles" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    with pytest.raises(C.CheckpointError, match="never unpickles"):
        C.load(evil)
    assert not marker.exists()
