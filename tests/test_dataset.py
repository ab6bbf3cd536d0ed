import json

import numpy as np
import pytest
import torch

from conftest import SAMPLE, write
from helpers import dataset, paths, prepare
from helpers.corpus import CorpusError, read_documents
from helpers.dataset import DataError, get_batch, load_data


def test_prepared_sample_matches_its_documents(prepared):
    data = load_data(prepared)
    meta = data.meta
    docs = list(read_documents(SAMPLE))
    assert meta["splits"]["train"]["documents"] == 1098 and meta["splits"]["val"]["documents"] == 122
    assert meta["vocab_size"] == 512 and meta["tokenizer"]["kind"] == "bpe"
    enc, eot = data.tokenizer, data.tokenizer.eot_token
    for split, chosen in (("train", docs[:1098]), ("val", docs[1098:])):
        ids = np.asarray(data.tokens(split))
        assert ids.dtype == np.uint16 and len(ids) == meta["splits"][split]["tokens"]
        assert ids[0] == eot and (ids == eot).sum() == len(chosen)  # one <|endoftext|> opens each document
        decoded = enc.decode(ids.tolist()).split("<|endoftext|>")[1:]
        assert decoded == chosen
        assert meta["splits"][split]["bytes"] == sum(len(d.encode()) for d in chosen)
    assert meta["source_sha256"] == paths.sha256_file(SAMPLE)


def test_token_stats(prepared):
    s = dataset.token_stats(load_data(prepared), "train", top=5)
    counts = [c for _, c in s["most_frequent"]]
    assert counts == sorted(counts, reverse=True) and len(counts) == 5
    assert 2.0 < s["bytes_per_token"] < 5.0


def test_get_batch_windows_are_shifted_by_one(prepared):
    data = load_data(prepared)
    arr = data.tokens("train")
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(arr, 4, 32, g)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(get_batch(arr, 4, 32, g2)[0], x)  # reproducible from the generator
    with pytest.raises(DataError, match="fewer than one block"):
        get_batch(arr[:20], 2, 32, g)


def test_load_data_detects_inconsistent_folders(prepared, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(prepared, bad)
    with open(bad / "val.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(DataError, match="val.bin holds 50 tokens but meta.json says"):
        load_data(bad)
    shutil.copy(prepared / "val.bin", bad / "val.bin")
    load_data(bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["tokenizer"]["fingerprint"] = "0000"
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match meta.json"):
        load_data(bad)
    (bad / "meta.json").write_text("{broken")
    with pytest.raises(DataError, match="corrupt"):
        load_data(bad)
    with pytest.raises(DataError, match="no meta.json"):
        load_data(tmp_path)


def test_prepare_failure_leaves_previous_data_intact(prepared, tmp_path):
    import shutil

    out = tmp_path / "keep"
    shutil.copytree(prepared, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write(tmp_path / "bad.txt", "good doc\n===\ncaf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError):
        prepare.prepare(bad, out, vocab_size=300, progress=False, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_prepare_refuses_empty_and_too_large_vocab(tmp_path):
    from helpers.tokenizer import TokenizerError

    with pytest.raises(CorpusError, match="is empty"):
        prepare.prepare(write(tmp_path / "e.txt", ""), tmp_path / "o", progress=False)
    with pytest.raises(TokenizerError, match="does not fit uint16"):
        prepare.prepare(SAMPLE, tmp_path / "o", vocab_size=70_000, progress=False)
    assert not (tmp_path / "o" / "train.bin").exists()
