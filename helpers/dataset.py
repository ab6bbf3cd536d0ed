"""A prepared dataset: the token memmaps `train.bin` / `val.bin` (uint16), `meta.json` and the
tokenizer, read back and checked; random training windows; the documents of a split.

Written by helpers/prepare.py; taught in notebook 01. Each document is stored as <|endoftext|> followed by its tokens, so the
model learns where plots begin and end, and generation can stop at the end of one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tiktoken
import torch

from . import tokenizer as tok

META_VERSION = 1
SPLITS = ("train", "val")


class DataError(ValueError):
    """Prepared data that is missing, inconsistent or unusable."""


@dataclass
class PreparedData:
    """A prepared data folder: memmaps, meta.json and its tokenizer, validated."""

    path: Path
    meta: dict
    tokenizer: tiktoken.Encoding

    def tokens(self, split: str) -> np.memmap:
        # A fresh memmap per call: numpy memmaps held for long keep pages resident (nanoGPT's trick).
        return np.memmap(self.path / f"{split}.bin", dtype=np.uint16, mode="r")

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def bytes_per_token(self, split: str = "val") -> float:
        s = self.meta["splits"][split]
        return s["bytes"] / max(s["tokens"], 1)

    @property
    def fingerprint(self) -> str:
        """The tokenizer's fingerprint (a hash of its merges) that this data was prepared with."""
        return self.meta["tokenizer"]["fingerprint"]

    def check_tokenizer(self, enc: tiktoken.Encoding, source) -> None:
        """Refuse a model whose tokenizer is not this data's: its token ids would mean other text."""
        if tok.fingerprint(enc) != self.fingerprint:
            raise DataError(f"tokenizer mismatch: {source} was trained with tokenizer {tok.fingerprint(enc)} but "
                            f"{self.path} was prepared with {self.fingerprint}; prepare the corpus with the "
                            f"checkpoint's tokenizer: plotgpt prepare CORPUS --tokenizer-from {source}")

    def documents(self, split: str = "train") -> list[str]:
        """The documents of a split, decoded back from its tokens (each opens with <|endoftext|>)."""
        ids = np.asarray(self.tokens(split))
        starts = np.flatnonzero(ids == self.tokenizer.eot_token)
        return [self.tokenizer.decode(ids[a + 1:b].tolist()) for a, b in zip(starts, [*starts[1:], len(ids)])]


def load_data(path: str | Path) -> PreparedData:
    """Open a prepared folder, checking meta.json against the .bin sizes and the tokenizer."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise DataError(f"{path} is not prepared data (no meta.json); run: plotgpt prepare YOUR_CORPUS --out {path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        splits = {s: int(meta["splits"][s]["tokens"]) for s in SPLITS}
        vocab = int(meta["vocab_size"])
        fp = str(meta["tokenizer"]["fingerprint"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{meta_path} is corrupt; prepare the data again") from None
    if not 0 < vocab < tok.MAX_VOCAB:
        raise DataError(f"{meta_path}: vocab_size {vocab} does not fit uint16 memmaps")
    for split, n in splits.items():
        f = path / f"{split}.bin"
        size = f.stat().st_size if f.exists() else -1
        if size != 2 * n:
            raise DataError(f"{f} holds {max(size, 0) // 2:,} tokens but meta.json says {n:,} (truncated or from "
                            "another run?); prepare the data again")
    enc = tok.load(path / "tokenizer.json") if (path / "tokenizer.json").exists() else None
    if enc is None or tok.fingerprint(enc) != fp or enc.n_vocab != vocab:
        raise DataError(f"{path}/tokenizer.json does not match meta.json (another tokenizer?); prepare the data again")
    return PreparedData(path, meta, enc)


class TokenWriter:
    """Append token ids to an open uint16 file, refusing ids that do not fit."""

    def __init__(self, f, vocab_size: int):
        tok.check_vocab_size(vocab_size)
        self.f, self.n = f, 0

    def write(self, ids: list[int] | np.ndarray) -> None:
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= tok.MAX_VOCAB):
            raise DataError("token id out of uint16 range")
        arr.astype(np.uint16).tofile(self.f)
        self.n += arr.size


def get_batch(data: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              device: str = "cpu", rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x = tokens[i : i+T], y = tokens[i+1 : i+T+1], for B random offsets i.

    With `world` data-parallel ranks, every rank draws the offsets of the whole global batch from
    the same generator and keeps its own slice: the ranks see different windows, and together they
    see exactly what one process with a world-times-larger batch would.
    """
    n = len(data) - block_size - 1
    if n < 1:
        raise DataError(f"split has {len(data):,} tokens, fewer than one block of {block_size + 1}; "
                        "use a smaller --block-size or a bigger corpus")
    mine = slice(rank * batch_size, (rank + 1) * batch_size)  # this rank's rows of the global batch
    ix = torch.randint(n, (batch_size * world,), generator=generator)[mine].numpy()
    win = data[ix[:, None] + np.arange(block_size + 1)].astype(np.int64)  # (B, T+1): one gather, no loop
    xy = torch.from_numpy(win)
    if device.startswith("cuda"):
        xy = xy.pin_memory().to(device, non_blocking=True)  # overlap the copy with compute
    elif device != "cpu":
        xy = xy.to(device)
    return xy[:, :-1], xy[:, 1:]


def token_stats(data: PreparedData, split: str = "train", top: int = 10) -> dict:
    """Corpus statistics as the reference notebook printed them."""
    counts = np.zeros(data.vocab_size, dtype=np.int64)
    with open(data.path / f"{split}.bin", "rb") as f:  # in slices, so a huge split needs little memory
        while (ids := np.fromfile(f, dtype=np.uint16, count=1 << 24)).size:
            counts += np.bincount(ids, minlength=data.vocab_size)
    order = np.argsort(-counts, kind="stable")
    used = order[counts[order] > 0]
    s = data.meta["splits"][split]
    return {
        "documents": s["documents"], "characters": s["characters"], "bytes": s["bytes"], "tokens": s["tokens"],
        "bytes_per_token": s["bytes"] / max(s["tokens"], 1),
        "distinct_tokens": int(len(used)),
        "most_frequent": [(tok.token_str(data.tokenizer, int(i)), int(counts[i])) for i in used[:top]],
        "least_frequent": [(tok.token_str(data.tokenizer, int(i)), int(counts[i])) for i in used[-top:][::-1]],
    }
