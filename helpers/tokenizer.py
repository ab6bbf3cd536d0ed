"""Tokenizers, both served as `tiktoken.Encoding`: GPT-2's BPE (what the reference used) and a
domain byte-level BPE trained here with rustbpe (no network needed). Taught in notebook 01.

A domain tokenizer is plain JSON (pattern, ranks as base64 bytes, special tokens); it is saved
beside the prepared data and embedded in every checkpoint, and checked on load.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

import tiktoken

from .config import DEFAULT_VOCAB_SIZE
from .corpus import cut_at_whitespace

EOT = "<|endoftext|>"
# GPT-2's pre-tokenisation regex: words keep their leading space, digits and punctuation split off.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
MAX_VOCAB = 65_536  # ids must fit uint16 memmaps
MIN_VOCAB = 257  # 256 byte tokens + end-of-text


class TokenizerError(ValueError):
    """A tokenizer that cannot be built, fetched or trusted."""


def gpt2() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding (50,257 ids). Needs the network once; tiktoken caches it."""
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # tiktoken raises requests/urllib errors of many kinds offline
        raise TokenizerError(
            "could not load the GPT-2 tokenizer (tiktoken downloads it on first use and this machine "
            f"seems offline: {type(exc).__name__}); use --tokenizer bpe to train a domain tokenizer "
            "here instead, or run once online so tiktoken caches gpt2") from None


# A BPE learns its merges from word counts, which settle long before 100 M characters; the
# cap keeps a huge corpus's tokenizer training short and its memory bounded.
TRAIN_MAX_CHARS = 100_000_000
_TRAIN_PIECE = 1 << 16  # texts are fed to rustbpe in pieces of at most this many characters


def train_bpe(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, name: str | None = None,
              max_chars: int = TRAIN_MAX_CHARS) -> tiktoken.Encoding:
    """Train a byte-level BPE on `texts` (their first `max_chars` characters) with rustbpe.

    Returned as a tiktoken Encoding. `vocab_size` counts the 256 byte tokens, the merges and
    <|endoftext|> (the last id).
    """
    import rustbpe

    check_vocab_size(vocab_size)
    trainer = rustbpe.Tokenizer()
    # rustbpe buffers `buffer_size` texts at a time: bounded pieces keep that buffer bounded.
    trainer.train_from_iterator(_bounded(texts, max_chars), vocab_size - 1, buffer_size=1024, pattern=GPT2_PATTERN)
    ranks = {bytes(tok): rank for tok, rank in trainer.get_mergeable_ranks()}
    return _encoding(name or f"plotgpt-bpe-{vocab_size}", GPT2_PATTERN, ranks)


def _bounded(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    """The texts, cut at whitespace into pieces of at most _TRAIN_PIECE characters, up to max_chars.

    Cutting before a space keeps GPT-2's pre-tokens (" word") whole, so the counts barely change.
    """
    left = max_chars
    for text in texts:
        if left <= 0:
            return
        text = text[:left]
        left -= len(text)
        yield from cut_at_whitespace(text, _TRAIN_PIECE)


def check_vocab_size(vocab_size: int) -> None:
    if vocab_size >= MAX_VOCAB:
        raise TokenizerError(f"vocabulary size {vocab_size:,} does not fit uint16 memmaps; use at most {MAX_VOCAB - 1:,}")
    if vocab_size < MIN_VOCAB:
        raise TokenizerError(f"vocabulary size {vocab_size} is too small; a byte-level BPE needs at least {MIN_VOCAB}")


def _encoding(name: str, pattern: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens={EOT: len(ranks)})


def eot_id(enc: tiktoken.Encoding) -> int:
    return enc.eot_token


def to_dict(enc: tiktoken.Encoding) -> dict:
    """A JSON-ready description: {'kind': 'gpt2'} or the full domain BPE."""
    if enc.name == "gpt2":
        return {"kind": "gpt2"}
    ranks = sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1])
    return {"kind": "bpe", "name": enc.name, "pattern": enc._pat_str,
            "tokens": [base64.b64encode(tok).decode("ascii") for tok, _ in ranks],
            "special": dict(enc._special_tokens)}


def from_dict(d: dict) -> tiktoken.Encoding:
    """Rebuild an Encoding from `to_dict` output, refusing anything malformed."""
    if not isinstance(d, dict) or d.get("kind") not in ("gpt2", "bpe"):
        raise TokenizerError("tokenizer description is not a plotgpt tokenizer (expected kind gpt2 or bpe)")
    if d["kind"] == "gpt2":
        return gpt2()
    try:
        tokens = [base64.b64decode(t, validate=True) for t in d["tokens"]]
        pattern, name, special = str(d["pattern"]), str(d["name"]), dict(d["special"])
    except Exception:
        raise TokenizerError("tokenizer description is malformed (tokens must be base64 strings)") from None
    if not MIN_VOCAB - 1 <= len(tokens) < MAX_VOCAB - 1:
        raise TokenizerError(f"tokenizer has {len(tokens)} tokens; expected {MIN_VOCAB - 1} to {MAX_VOCAB - 2}")
    if len(set(tokens)) != len(tokens) or any(not t for t in tokens):
        raise TokenizerError("tokenizer ranks are malformed: duplicate or empty tokens")
    if set(tokens[:256]) != {bytes([b]) for b in range(256)}:
        raise TokenizerError("tokenizer ranks are malformed: the first 256 ranks must be the 256 single bytes")
    if special != {EOT: len(tokens)}:
        raise TokenizerError(f"tokenizer special tokens are malformed: expected {{{EOT!r}: {len(tokens)}}}")
    return _encoding(name, pattern, {tok: i for i, tok in enumerate(tokens)})


def fingerprint(enc: tiktoken.Encoding) -> str:
    """A short hash identifying the tokenizer, to refuse data/checkpoint mismatches."""
    blob = json.dumps(to_dict(enc), sort_keys=True).encode()
    return "gpt2" if enc.name == "gpt2" else hashlib.sha256(blob).hexdigest()[:16]


def save(enc: tiktoken.Encoding, path: str | Path) -> None:
    from .atomic import atomic_write_text

    atomic_write_text(path, json.dumps(to_dict(enc)))


def load(path: str | Path) -> tiktoken.Encoding:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"cannot read tokenizer {path}: {exc}") from None
    return from_dict(d)


def token_str(enc: tiktoken.Encoding, token: int) -> str:
    """A printable form of one token (bytes that are not UTF-8 on their own shown escaped)."""
    raw = enc.decode_single_token_bytes(token)
    try:
        return repr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(raw)
