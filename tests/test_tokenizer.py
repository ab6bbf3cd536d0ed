import base64
import json

import pytest
import tiktoken

from conftest import SAMPLE
from helpers import tokenizer as tok
from helpers.corpus import read_documents


@pytest.fixture(scope="module")
def enc():
    return tok.train_bpe(read_documents(SAMPLE), vocab_size=600)


def test_trained_bpe_is_a_tiktoken_encoding_that_round_trips(enc):
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.n_vocab == 600 and enc.eot_token == 599
    text = "Title: The Glass Cashier\nPlot: Zoë meets José in Saint-Étienne — “twice”."
    ids = enc.encode_ordinary(text)
    assert enc.decode(ids) == text
    assert max(ids) < 599
    # Merges learned from movie plots make domain words short
    assert len(enc.encode_ordinary(" the")) == 1


def test_eot_is_special_and_not_produced_by_ordinary_text(enc):
    assert enc.encode("<|endoftext|>", allowed_special="all") == [enc.eot_token]
    assert enc.eot_token not in enc.encode_ordinary("<|endoftext|>")


def test_save_load_and_fingerprint(enc, tmp_path):
    tok.save(enc, tmp_path / "t.json")
    back = tok.load(tmp_path / "t.json")
    assert back._mergeable_ranks == enc._mergeable_ranks
    assert tok.fingerprint(back) == tok.fingerprint(enc)
    other = tok.train_bpe(["completely different text about ships and seas"] * 20, vocab_size=300)
    assert tok.fingerprint(other) != tok.fingerprint(enc)


@pytest.mark.parametrize("corrupt,msg", [
    (lambda d: d["tokens"].__setitem__(3, d["tokens"][4]), "duplicate"),
    (lambda d: d["tokens"].__setitem__(300, "!!notbase64"), "base64"),
    (lambda d: d["tokens"].__setitem__(10, base64.b64encode(b"xy").decode()), "256 single bytes"),
    (lambda d: d.__setitem__("special", {"<|endoftext|>": 5}), "special tokens"),
    (lambda d: d.__setitem__("tokens", d["tokens"] * 200), "tokens; expected"),
    (lambda d: d.__setitem__("kind", "pickle"), "not a plotgpt tokenizer"),
])
def test_malformed_tokenizers_are_refused(enc, corrupt, msg):
    d = json.loads(json.dumps(tok.to_dict(enc)))
    corrupt(d)
    with pytest.raises(tok.TokenizerError, match=msg):
        tok.from_dict(d)


def test_vocab_size_bounds():
    with pytest.raises(tok.TokenizerError, match="does not fit uint16"):
        tok.check_vocab_size(65_536)
    with pytest.raises(tok.TokenizerError, match="too small"):
        tok.check_vocab_size(100)
    tok.check_vocab_size(65_535)


def test_gpt2_offline_error_names_the_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    try:
        enc = tok.gpt2()
    except tok.TokenizerError as exc:
        msg = str(exc)
        assert "--tokenizer bpe" in msg and "\n" not in msg
    else:  # online: the real GPT-2 encoding
        assert enc.n_vocab == 50257 and tok.to_dict(enc) == {"kind": "gpt2"}
