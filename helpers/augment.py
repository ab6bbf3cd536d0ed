"""Token splitting: a data augmentation that changes how the training text is cut into tokens,
never the text itself (after StochasTok, Sims et al. 2025, and in the spirit of BPE-dropout).

Every BPE token but the 256 bytes was made by merging two earlier tokens. With probability p a
training token is replaced by those two parents, so " vampire" may arrive as " vamp" + "ire":
the same bytes, another segmentation. On a small corpus a model sees each plot many times, and
this way it sees it written a little differently each pass, which is harder to memorise.
Validation data is never split, so bits per byte are measured on the tokenizer's own output.

    parents = merge_parents(enc)            # (V, 2) ids, -1 where a token has no parents
    split = TokenSplitter(parents, p=0.1)
    windows = split(windows, uniforms)      # same shape, some tokens split, rows cut back to length
"""
from __future__ import annotations

import numpy as np
import tiktoken


def _bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """Byte-level BPE of `token` using only merges ranked below `max_rank` (lowest rank first)."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_i, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best_i, best_rank = i, r
        if best_i < 0:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def merge_parents(enc: tiktoken.Encoding) -> np.ndarray:
    """For each token id, the two token ids BPE merged into it: an (n_vocab, 2) int64 array.

    Stopping BPE just before a token's own rank leaves exactly the pair that merged into it (the
    way minbpe recovers GPT-2's merges from tiktoken's ranks). Byte tokens and special tokens have
    no parents (-1).
    """
    ranks: dict[bytes, int] = enc._mergeable_ranks  # tiktoken keeps them only here
    out = np.full((enc.n_vocab, 2), -1, dtype=np.int64)
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        parts = _bpe_parts(ranks, token, rank)
        if len(parts) == 2:  # always so for a BPE trained by merging; anything else stays whole
            out[rank] = ranks[parts[0]], ranks[parts[1]]
    return out


class TokenSplitter:
    """Split tokens of training windows into their BPE parents, each with probability p."""

    def __init__(self, parents: np.ndarray, p: float):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"token split probability {p} must be in [0, 1)")
        self.left, self.right = parents[:, 0], parents[:, 1]
        self.splittable = self.left >= 0
        self.p = p

    def __call__(self, win: np.ndarray, u: np.ndarray) -> np.ndarray:
        """win: (B, L) token ids; u: (B, L) uniform draws in [0, 1), one per token.

        Returns (B, L): each row with its chosen tokens replaced by their two parents, then cut back
        to L tokens (a split row is longer; its tail is dropped).
        """
        B, L = win.shape
        split = (u < self.p) & self.splittable[win]  # (B, L)
        width = 1 + split  # tokens each input token becomes
        ends = np.cumsum(width, axis=1)  # (B, L) end of each token's slot within its row
        starts = ends - width
        out = np.empty((B, 2 * L), dtype=win.dtype)  # room for every token split
        rows = np.broadcast_to(np.arange(B)[:, None], (B, L))
        out[rows, starts] = np.where(split, self.left[win], win)
        out[rows[split], starts[split] + 1] = self.right[win[split]]
        return out[:, :L]  # every row holds at least L tokens: splitting only lengthens it


class DocShuffler:
    """Training windows that never show the same document-to-document transition twice.

    Random windows from one fixed token stream always see plot X followed by plot Y, so after a
    few passes a model can learn which title comes after which ending: memorising that teaches it
    nothing it can use on new plots. Here a window that runs past the end of its document goes
    on into a randomly chosen one, from its start, as if the documents were shuffled anew for
    every window. Windows inside one document are unchanged, and so is validation data.

        shuffle = DocShuffler(train_tokens, eot_id)
        windows = shuffle(train_tokens, offsets, block_size + 1, picks)   # picks: (B, K) doc indices
    """

    def __init__(self, data: np.ndarray, eot: int):
        starts = np.flatnonzero(np.asarray(data) == eot)  # every document opens with <|endoftext|>
        if starts.size == 0 or starts[0] != 0:
            starts = np.r_[0, starts]  # text before the first separator is a document too
        self.starts = starts.astype(np.int64)
        self.ends = np.r_[starts[1:], len(data)].astype(np.int64)

    @property
    def n_docs(self) -> int:
        return len(self.starts)

    def __call__(self, data: np.ndarray, ix: np.ndarray, length: int, picks: np.ndarray) -> np.ndarray:
        """ix: (B,) window offsets into data; picks: (B, K) document indices to continue into, in order.

        Returns (B, length) int64 windows. A row needing more than K continuations (documents shorter
        than the window) goes on with the documents that follow the last one, in stream order.
        """
        out = np.empty((len(ix), length), dtype=np.int64)
        doc_of = np.searchsorted(self.starts, ix, side="right") - 1  # (B,) the document each window opens in
        for b in range(len(ix)):
            d, pos, filled, k = int(doc_of[b]), int(ix[b]), 0, 0
            while True:
                n = min(int(self.ends[d]) - pos, length - filled)
                out[b, filled:filled + n] = data[pos:pos + n]
                filled += n
                if filled == length:
                    break
                d = int(picks[b, k]) if k < picks.shape[1] else (d + 1) % self.n_docs
                pos, k = int(self.starts[d]), k + 1
        return out
