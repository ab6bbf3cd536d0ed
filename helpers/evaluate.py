"""Judging a model: loss, bits per byte, and two sample-quality figures. Taught in notebook 05.

Bits per byte = total negative log-likelihood (nats) / (ln 2 * UTF-8 bytes of the text). Unlike
loss per token it does not depend on the tokenizer, so a 4k-token domain BPE and GPT-2's 50k
vocabulary compare fairly.

Repetition: the share of a sample's word 4-grams that occur more than once in it (a looping
"the vampire ... the vampire" sample scores high). Novelty: the share of its word 8-grams found
verbatim in the training text, and the longest copied span - we want imaginary plots, not
recalled ones. Made-up words: the share of a sample's lowercase words that never occur in the
training text in any capitalisation ("strancase", "didentery"): the sub-word noise of an
undertrained or overfitted model, plus the odd rare real word the corpus never used ("fisher").
It misses a real word used wrongly, and it ignores capitalised words, since invented names are
what a plot model should write.
"""
from __future__ import annotations

import math
import re
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn import functional as F

from .dataset import PreparedData, get_batch


@torch.no_grad()
def estimate_loss(model, data: PreparedData, *, batch_size: int, block_size: int, eval_iters: int,
                  generator: torch.Generator, device: str = "cpu", ctx=None,
                  splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
    """Mean loss over `eval_iters` random batches per split (cheap, used during training)."""
    was_training = model.training
    model.eval()
    out = {}
    for split in splits:
        arr = data.tokens(split)
        losses = torch.zeros(eval_iters)
        for i in range(eval_iters):
            x, y = get_batch(arr, batch_size, block_size, generator, device)
            with ctx or nullcontext():
                _, loss = model(x, y)
            losses[i] = loss.float()
        out[split] = losses.mean().item()
    model.train(was_training)
    return out


def bits_per_byte(loss_per_token: float, bytes_per_token: float) -> float:
    """nats/token -> bits/byte."""
    return loss_per_token / (math.log(2) * bytes_per_token)


@torch.no_grad()
def full_loss(model, data: PreparedData, split: str = "val", *, batch_size: int = 16, stride: int | None = None,
              device: str = "cpu", ctx=None) -> dict[str, float]:
    """Exact loss over every token of a split: each token is scored exactly once.

    `stride` = None scores consecutive, non-overlapping windows: the first token of each window
    sees no context, and on average a token sees half a block. A smaller stride slides the window
    and scores only its last `stride` tokens (the last window is a full block ending at the last
    token), so every token after the first window sees at least block - stride tokens of context:
    a fairer figure for what the model can do, at block / stride times the compute. Returns loss
    per token, bits per byte (the plots-bench metric) and the token count.
    """
    was_training = model.training
    model.eval()
    T = model.config.block_size if hasattr(model, "config") else model.module.config.block_size
    S = T if stride is None else stride
    if not 1 <= S <= T:
        raise ValueError(f"stride must be between 1 and the block size {T}, got {S}")
    arr = torch.from_numpy(np.asarray(data.tokens(split), dtype=np.int64))
    n_pred = len(arr) - 1
    # Window w covers predictions [start, start + T); it scores those from `first` on.
    windows, scored = [], 0
    while scored < n_pred:
        start = scored if stride is None else max(0, min(scored + S, n_pred) - T)
        windows.append((start, scored))
        scored = min(start + T, n_pred)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        group = windows[i:i + batch_size]
        by_len: dict[int, list[tuple[int, int]]] = {}
        for start, first in group:  # only the very last window may be shorter than T
            by_len.setdefault(min(T, n_pred - start), []).append((start, first))
        for length, chunk in by_len.items():
            xy = torch.stack([arr[s:s + length + 1] for s, _ in chunk]).to(device)
            with ctx or nullcontext():
                logits, _ = model(xy[:, :-1], xy[:, 1:])  # with targets: logits at every position
            nll = F.cross_entropy(logits.float().transpose(1, 2), xy[:, 1:], reduction="none")  # (b, length)
            for row, (start, first) in enumerate(chunk):
                total += nll[row, first - start:].sum().item()
                count += length - (first - start)
    model.train(was_training)
    assert count == n_pred, (count, n_pred)  # every token scored exactly once
    nbytes = data.meta["splits"][split]["bytes"]
    return {"loss": total / n_pred, "bpb": total / (math.log(2) * nbytes), "tokens": n_pred}


def repetition(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 = no loops)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


# Words are runs of letters with apostrophes inside them ("don't"); curly apostrophes count as
# straight ones and a possessive 's is dropped ("detective's" is "detective"). Only lowercase
# words of two letters or more are judged: a capitalised word may be a name, and new names are
# what a plot model should invent.
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def _words(text: str):
    return (w.removesuffix("'s") for w in _WORD.findall(text.replace("\u2019", "'")))


def lowercase_words(text: str) -> list[str]:
    """The words the made-up-word rate looks at, in order (see the module docstring)."""
    return [w for w in _words(text) if len(w) >= 2 and w.islower()]


def known_words(text: str) -> set[str]:
    """Every word of a training text, lowercased: "View" at the start of a sentence makes "view" known."""
    return {w.lower() for w in _words(text)}


def made_up_words(texts: list[str], known: set[str]) -> dict:
    """Share of the samples' lowercase words that are not in `known` (a training vocabulary, lowercased).

    Returns {'made_up_rate', 'words', 'made_up', 'examples'}: examples are the distinct made-up
    words in order of first appearance.
    """
    words = [w for t in texts for w in lowercase_words(t)]
    bad = [w for w in words if w not in known]
    return {"made_up_rate": len(bad) / len(words) if words else 0.0, "words": len(words), "made_up": len(bad),
            "examples": list(dict.fromkeys(bad))}


class NoveltyIndex:
    """The training text's word 8-grams (hashed into a sorted array for fast membership tests) and
    its lowercase vocabulary (for the made-up-word rate)."""

    def __init__(self, train_text: str, n: int = 8):
        self.n = n
        self.vocabulary = known_words(train_text)
        self.words = train_text.split()
        self.joined = " " + " ".join(self.words) + " "
        self.hashes = np.unique(self._hashes(self.words))

    def _hashes(self, words: list[str]) -> np.ndarray:
        n = self.n
        return np.array([hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)], dtype=np.int64)

    def score(self, text: str) -> dict:
        """{'copied_8gram_share', 'longest_copied_words', 'longest_copied_text'} for one sample."""
        words = text.split()
        h = self._hashes(words)
        share = 0.0
        if len(h):
            pos = np.searchsorted(self.hashes, h).clip(max=len(self.hashes) - 1)
            share = float(np.mean(self.hashes[pos] == h))
        # Longest span of the sample found verbatim in the training text. Two pointers: if
        # words[i:j] occurs, so does words[i+1:j], so j never moves back.
        best, best_span, j = 0, "", 0
        for i in range(len(words)):
            j = max(j, i)
            while j < len(words) and f" {' '.join(words[i:j + 1])} " in self.joined:
                j += 1
            if j - i > best:
                best, best_span = j - i, " ".join(words[i:j])
        return {"copied_8gram_share": share, "longest_copied_words": best, "longest_copied_text": best_span}


def judge_samples(texts: list[str], index: NoveltyIndex) -> dict:
    """Every sample yardstick over `texts`: mean repetition and copied share, the longest copy, and
    the made-up-word rate of all their words together (with the made-up words as examples)."""
    scores = [index.score(t) for t in texts]
    longest = max(scores, key=lambda s: s["longest_copied_words"], default={"longest_copied_words": 0,
                                                                              "longest_copied_text": ""})
    made_up = made_up_words(texts, index.vocabulary)
    return {"samples": len(texts), "repetition_4gram": float(np.mean([repetition(t) for t in texts] or [0.0])),
            "copied_8gram_share": float(np.mean([s["copied_8gram_share"] for s in scores] or [0.0])),
            "longest_copied_words": longest["longest_copied_words"],
            "longest_copied_text": longest["longest_copied_text"],
            "made_up_word_rate": made_up["made_up_rate"], "lowercase_words": made_up["words"],
            "made_up_examples": made_up["examples"][:20]}


def report(ck, data: PreparedData, texts: list[str], device: str) -> dict:
    """`plotgpt evaluate`'s report: the full val loss of a checkpoint and every yardstick of its samples,
    judged against the text it was trained on."""
    from .device import autocast, pick_dtype

    data.check_tokenizer(ck.tokenizer, ck.path)
    full = full_loss(ck.model, data, "val", device=device, ctx=autocast(device, pick_dtype(device)))
    return {"checkpoint": str(ck.path), "data": str(data.path), "val_loss": full["loss"], "val_bpb": full["bpb"],
            "val_tokens": full["tokens"],
            **judge_samples(texts, NoveltyIndex("\n".join(data.documents("train"))))}
