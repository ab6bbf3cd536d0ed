# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1: Data and tokenization
#
# A language model never sees text. It sees a long row of integers, and learns to predict the
# next one. This chapter builds that row for our domain, movie plots, in four steps:
#
# 1. **load** the corpus and look at it: how many plots, how long, which characters;
# 2. **tokenize**: choose the units the model predicts (characters, bytes, or BPE subwords), train
#    a byte-level BPE *by hand* and check it against the library's, and see what the size of the
#    vocabulary costs and buys;
# 3. **write** the token ids of every plot into a `uint16` file on disk, once, by hand and with
#    the library;
# 4. **read** random training windows back from that file: the `(x, y)` pairs every later chapter
#    trains on.
#
# The reference project we follow tokenized with GPT-2's tokenizer (50,257 ids) and trained a
# 124M-parameter model for 15 hours on a GPU. On a laptop CPU, with a small corpus, the
# tokenizer is one of the cheapest places to win back model capacity, so we look at it closely.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %%
import json
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import regex  # the `re` module lacks \p{L} (any letter), which GPT-2's pattern needs
import torch

from helpers import corpus, corpusstats, paths
from helpers import tokenizer as tok
from helpers.book import sample_data
from helpers.config import DEFAULT_VOCAB_SIZE, get_preset
from helpers.device import seed_everything
from helpers.dataset import get_batch, token_stats
from helpers.model import GPT

seed_everything(1337)

# %% [markdown]
# ## 1. The corpus
#
# The book's corpus is `data/sample/plots.txt`: 1,220 plots of films that do not exist, written
# for this project and free to use (CC0). Each document is a `Title:` line and a `Plot:` line,
# the format of the reference project's data, and documents are separated by a line holding only
# `===`. `helpers.corpus.read_documents` streams the documents one at a time (so a corpus larger
# than memory works too) and cleans each one: whitespace normalised, Wikipedia citation markers
# such as `[12]` dropped, control bytes removed. It also reads CSV, JSONL, folders of `.txt`
# files and the CMU Movie Summary Corpus; here we only need the text file.

# %%
source = paths.SAMPLE_CORPUS
docs = list(corpus.read_documents(source))
raw_bytes = source.stat().st_size
n_chars = np.array([len(d) for d in docs])
n_bytes = np.array([len(d.encode("utf-8")) for d in docs])
n_words = np.array([len(d.split()) for d in docs])

print(f"{source.name}: {raw_bytes:,} bytes on disk, {len(docs)} documents")
print(f"characters: {n_chars.sum():,}   UTF-8 bytes: {n_bytes.sum():,}   words: {n_words.sum():,}")
print(f"words per plot: min {n_words.min()}, median {int(np.median(n_words))}, max {n_words.max()}")
print()
print(docs[0])

# %% [markdown]
# Every plot is between 127 and 208 words (median 171), and the spread is narrow: the corpus was
# written to a length. A real corpus (Wikipedia, the CMU summaries) has a long tail of one-line
# stubs and multi-page epics, and this histogram is the first thing to look at on any new corpus.
# It also tells us how much of a plot a model can see at once: a context of 128 tokens, the CPU
# preset's `block_size`, covers just over half a plot, since at the default vocabulary an unseen
# plot is about 228 tokens (section 4).

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(n_words, bins=20, color="tab:blue", edgecolor="white")
ax.axvline(np.median(n_words), color="black", ls="--", lw=1, label=f"median {int(np.median(n_words))} words")
ax.set_xlabel("words per document")
ax.set_ylabel("documents")
ax.set_title(f"{source.name}: length of the {len(docs)} plots")
ax.legend()
plt.show()

# %% [markdown]
# ### Varied, or templated?
#
# A corpus written to order (by people or by a language model) has a failure a histogram cannot
# show: sameness. If most plots open with the same words, or the same stock phrase turns up in
# hundreds of them, a model learns the template, and its plots all sound alike.
# `helpers.corpusstats` (`plotgpt stats FILE`) measures that. Each of the 1,000 plots added to
# the first 220 was written to a card drawn at random before writing (genre, period, place, tone,
# how it opens, who it follows, how it ends, three objects to use: `data/sample/cards.py`), as
# the TinyStories authors did for their synthetic stories. Two figures tell:
#
# - the **commonest openings**: the first three words of each plot, counted;
# - **shared 8-grams**: the share of a plot's runs of 8 words that also occur in another plot.
#   Eight words in a row are almost never shared by chance; real Wikipedia-style plots share
#   about 1 % (stock phrases such as "at the end of the film"), templated text far more.

# %%
figures = corpusstats.stats(docs)
print(f"{figures['distinct_titles']:,} distinct titles in {figures['documents']:,} plots")
print("commonest openings: " + ", ".join(f'"{o}" {share:.1%}' for o, share in figures["openings"][:3]))
print(f"8-grams shared between plots: {figures['shared_ngram_share']:.2%}")
print(f"distinct words per 100,000 words: {figures['distinct_words_per_100k']:,.0f}")

# %% [markdown]
# Let us check the measure on a corpus we know is templated: the same plots, each opening with
# one stock sentence.

# %%
stock = "Plot: In a small town where nothing ever happens, everything changes one day when"
templated = [d.replace("Plot:", stock, 1) for d in docs[:200]]
t = corpusstats.stats(templated)
print(f"templated copy: commonest opening \"{t['openings'][0][0]}\" {t['openings'][0][1]:.0%}, "
      f"8-grams shared {t['shared_ngram_share']:.1%}")
assert t["shared_ngram_share"] > 5 * figures["shared_ngram_share"] and t["openings"][0][1] == 1.0

# %% [markdown]
# ### Characters are not bytes
#
# Computers store text as bytes; UTF-8 spends one byte on each ASCII character and two to four on
# everything else. Our plots are nearly all ASCII, but their names come from everywhere (*Lucía*,
# *Björn*, *Dybbøl*), and an accented letter is two bytes (a few, such as the Vietnamese `ế`,
# three). This matters for tokenization: a *byte-level* tokenizer starts from the 256 possible
# bytes, so it can encode any string at all, including characters it never saw in training. (A
# Wikipedia corpus adds curly quotes, dashes and non-breaking spaces: three or two bytes each.)

# %%
non_ascii = Counter(c for d in docs for c in d if ord(c) > 127)
print(f"{n_bytes.sum() - n_chars.sum():,} more bytes than characters; "
      f"{len(non_ascii)} distinct non-ASCII characters, the most common:")
for ch, count in non_ascii.most_common(12):
    print(f"  {ch!r:6} U+{ord(ch):04X}  {count:5,}x  bytes {ch.encode('utf-8').hex(' ')}")

# %% [markdown]
# ### Train and validation: split by document
#
# We hold out text to measure what the model has *learned* rather than memorised. The split is by
# whole documents, in file order: the first 90 % of the plots train, the last 10 % validate
# (`helpers.corpus.split_counts`). Never cut by characters or tokens: a plot cut in two would put
# its beginning in the training set and its end in the validation set, and the validation loss
# would reward remembering the characters' names from training. Splitting by document keeps
# every validation plot entirely unseen, which is the situation the model is in when it writes a
# new plot. (The sample corpus is stored in a shuffled order, so the last 122 plots are a random
# draw from the whole, not one corner of it.)

# %%
n_train, n_val = corpus.split_counts(len(docs), val_fraction=0.1)
train_docs, val_docs = docs[:n_train], docs[n_train:]
train_bytes = sum(len(d.encode("utf-8")) for d in train_docs)
val_bytes = sum(len(d.encode("utf-8")) for d in val_docs)
print(f"train: {n_train} plots, {train_bytes:,} bytes   val: {n_val} plots, {val_bytes:,} bytes")

# %% [markdown]
# ## 2. What is a token?
#
# The model has one row of its embedding table per vocabulary entry and one softmax output per
# entry, and it predicts one token per step. Two extreme choices:
#
# - **characters** (or bytes): a tiny vocabulary, but long sequences. Each plot is about 1,000
#   steps, and a 128-token context sees about one sentence. The model spends its capacity spelling.
# - **words**: short sequences, but the vocabulary is unbounded (every name, every typo) and a word
#   not seen in training cannot be written at all.
#
# **Byte-pair encoding** (BPE) sits between them. It starts from the 256 bytes and repeatedly
# *merges* the most frequent adjacent pair into a new token, so frequent words become one token
# and rare words are spelled from pieces. The vocabulary size is a dial we set.

# %%
chars = sorted(set("".join(docs)))
print(f"character vocabulary: {len(chars)} symbols")
print("".join(c for c in chars if c.isprintable()))
print(f"a character-level model needs {n_chars.mean():,.0f} steps per plot on average")

# %% [markdown]
# ### GPT-2's tokenizer
#
# The reference project used GPT-2's BPE through `tiktoken`: 50,257 ids learned on 40 GB of web
# text. `tiktoken` downloads its merge table the first time it is used and caches it, so
# `helpers.tokenizer.gpt2()` needs the network once; offline it raises a `TokenizerError` that
# says so, and we carry on with our own tokenizer.

# %%
sentence = "Title: The Drummer of Dybbøl\nPlot: Niels lies about his age to join the Danish army."


def show_ids(enc, ids):
    """Token ids as their pieces of text, separated by |."""
    pieces = [enc.decode_single_token_bytes(int(t)).decode("utf-8", errors="replace") for t in ids]
    return f"{len(pieces)} tokens: " + "|".join(pieces).replace("\n", "\\n")


def show_tokens(enc, text):
    """The text cut into its tokens, separated by |."""
    return show_ids(enc, enc.encode_ordinary(text))


try:
    gpt2 = tok.gpt2()
except tok.TokenizerError as exc:
    gpt2 = None
    print("GPT-2's tokenizer is not available on this machine: it needs a one-time download")
    print(f"(tiktoken caches it after that). The library says: {exc}")
    print("Going on with the domain BPE trained below, which needs no network.")
else:
    gpt2_val_tokens = sum(len(ids) for ids in gpt2.encode_ordinary_batch(val_docs))
    print(f"GPT-2: {gpt2.n_vocab:,} ids, {val_bytes / gpt2_val_tokens:.2f} bytes per token on the val plots")
    print(show_tokens(gpt2, sentence))

# %% [markdown]
# Even when it is available, GPT-2's vocabulary is a poor fit for a small model. Its embedding
# table alone is $50{,}257 \times 768 = 38.6$M parameters, almost a third of the reference's
# 124M model, and many of its rows are for code, URLs and languages that never occur in a
# movie plot. A tokenizer trained on our own domain spends its entries on our words.
#
# ## 3. Byte-level BPE by hand
#
# Training a BPE tokenizer takes three ideas.
#
# **Pre-tokenization.** First the text is cut into chunks with a regular expression, and merges
# never cross a chunk boundary. GPT-2's pattern (`helpers.tokenizer.GPT2_PATTERN`) keeps a word
# together with its leading space, and splits digits, punctuation and whitespace apart. So
# `" the"` can become a token, but `"the."` cannot: the model would otherwise learn a separate
# token for every word-punctuation combination.

# %%
pattern = regex.compile(tok.GPT2_PATTERN)
print(tok.GPT2_PATTERN)
print(pattern.findall(sentence))

# %% [markdown]
# **Counting.** Only the distinct chunks matter, with their counts: `" the"` occurring 3,000
# times is one entry with weight 3,000. Each chunk starts as the list of its UTF-8 byte values
# (0-255), which are the first 256 token ids.
#
# **Merging.** Count every adjacent pair of ids over all chunks (weighted), take the most
# frequent pair $(a, b)$, give it the next free id, and replace every occurrence of $a, b$ by
# the new id. Repeat. After $k$ merges the vocabulary has $256 + k$ entries, and each entry's
# bytes are the concatenation of its two parents'. When two pairs are equally frequent we take the
# one with the smaller ids, which is what `rustbpe` (the library's trainer) does, so the two can
# be compared merge for merge.

# %%
def chunk_counts(texts):
    """Distinct pre-tokenized chunks -> how often each occurs."""
    counts = Counter()
    for text in texts:
        counts.update(pattern.findall(text))
    return counts


def pair_counts(seqs, weights):
    """How often each adjacent pair of ids occurs, over all chunks (weighted by chunk count)."""
    counts = Counter()
    for ids, w in zip(seqs, weights):
        for pair in zip(ids, ids[1:]):
            counts[pair] += w
    return counts


def merge(ids, pair, new_id):
    """Replace every occurrence of `pair` in `ids` (left to right, no overlaps) by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe_by_hand(texts, n_merges):
    """Byte-level BPE: returns the merges {(a, b): new_id} in order and the vocabulary {id: bytes}."""
    chunks = chunk_counts(texts)
    seqs = [list(c.encode("utf-8")) for c in chunks]  # each chunk as byte ids, 0..255
    weights = list(chunks.values())
    vocab = {i: bytes([i]) for i in range(256)}
    merges, history = {}, []
    for k in range(n_merges):
        counts = pair_counts(seqs, weights)
        # most frequent pair; on a tie the smaller pair of ids (rustbpe's rule)
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        new_id = 256 + k
        seqs = [merge(ids, pair, new_id) for ids in seqs]
        merges[pair] = new_id
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        history.append((new_id, vocab[pair[0]], vocab[pair[1]], counts[pair]))
    return merges, vocab, history


N_MERGES = 20
my_merges, my_vocab, history = train_bpe_by_hand(train_docs, N_MERGES)
print(f"{len(chunk_counts(train_docs)):,} distinct chunks in the training plots")
print(" id   merged                  occurrences")
for new_id, a, b, count in history:
    print(f"{new_id:4}   {a!r:>8} + {b!r:<8} -> {(a + b)!r:10} {count:6,}")

# %% [markdown]
# The first merges are what you would guess for English: a space before a common initial letter
# (`" t"`, `" a"`), `he`, `in`, and by the fifth merge the whole word `" the"`, built from two
# tokens made a moment earlier (`" t"` + `"he"`). It is the only one of these twenty built from
# merged tokens, but later merges reuse earlier tokens as parents all the time (three merges
# after the list ends, `"in"` + `"g"` gives `"ing"`), which is how long words end up as single
# tokens.
#
# Now the check. `helpers.tokenizer.train_bpe` trains with `rustbpe` (Rust, multi-threaded, what
# nanochat uses) and returns a `tiktoken.Encoding`, whose `_mergeable_ranks` maps each token's
# bytes to its id. Asking it for $256 + 20 + 1$ ids (the bytes, 20 merges, and `<|endoftext|>`)
# must give the same 20 tokens in the same order.

# %%
# NBVAL_CHECK_OUTPUT
lib = tok.train_bpe(train_docs, vocab_size=256 + N_MERGES + 1)
lib_tokens = sorted(lib._mergeable_ranks, key=lib._mergeable_ranks.get)  # bytes, in rank (id) order
mine = [my_vocab[256 + k] for k in range(N_MERGES)]
assert lib_tokens[256] == mine[0], (lib_tokens[256], mine[0])
print(f"first merge {mine[0]!r} matches helpers.tokenizer.train_bpe (rank 256)")
assert lib_tokens[256:] == mine
print(f"all {N_MERGES} merges match helpers.tokenizer.train_bpe, in order")

# %% [markdown]
# **Encoding** new text with the learned merges replays them: cut the text into chunks, turn each
# chunk into bytes, and, while any adjacent pair is in the merge table, merge the pair that was
# learned *first* (lowest id). That is how `tiktoken` encodes too (it ranks by the merged bytes;
# for a vocabulary built by BPE this is the same thing), so our 20-merge encoder must produce the
# exact ids of the library's 20-merge tokenizer on text it has never seen: a validation plot.

# %%
def encode_by_hand(text, merges):
    ids = []
    for chunk in pattern.findall(text):
        seq = list(chunk.encode("utf-8"))
        while len(seq) > 1:
            pair = min(zip(seq, seq[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break  # nothing left to merge in this chunk
            seq = merge(seq, pair, merges[pair])
        ids.extend(seq)
    return ids


# %%
# NBVAL_CHECK_OUTPUT
assert encode_by_hand(val_docs[0], my_merges) == lib.encode_ordinary(val_docs[0])
print("encoding a val plot by hand matches the library's tiktoken encoding")
assert lib.decode(encode_by_hand(val_docs[0], my_merges)) == val_docs[0]
print("and decoding gives the text back exactly")

# %%
print("20 merges:  ", show_tokens(lib, sentence))
enc_full = tok.train_bpe(train_docs, vocab_size=DEFAULT_VOCAB_SIZE)  # the size the book and the CLI use
print(f"{enc_full.n_vocab - 1:,} ids:", show_tokens(enc_full, sentence))

# %% [markdown]
# With 20 merges, BPE has only learned the commonest fragments. With all 16,383 (the 16,384th id
# is `<|endoftext|>`) every word of the sentence but *Drummer* and *Dybbøl* is a single token,
# and a rare name such as *Dybbøl* is still spelled, from pieces (`Dy|bb|ø|l`). Nothing can be
# out of vocabulary: in the worst case a string falls back to its bytes. With 20 merges `ø` is
# not merged yet, so it is written as its two UTF-8 bytes, the two `�`: neither is a character on
# its own, but together they decode to `ø`. The full vocabulary has merged those two bytes into
# one token.
#
# Our pure-Python trainer recounts every pair after every merge; that is fine for 20 merges but
# far too slow for thousands of merges on a large corpus. `rustbpe` updates the counts
# incrementally with a priority queue. `helpers.tokenizer.train_bpe` is the version the rest of
# the book uses.
#
# ## 4. How large a vocabulary?
#
# A larger vocabulary packs more text into each token: more **bytes per token**, so a plot is a
# shorter sequence, the model sees more of it within its context window, and one training step
# covers more text. The price is parameters: the embedding table has one row of `n_embd` numbers
# per token,
#
# $$\text{embedding parameters} = V \times d_\text{model},$$
#
# and (with the input embedding and the output layer sharing one matrix, as in GPT-2) the same
# matrix computes the $V$ logits at every position. Each row is also trained only when its token
# occurs, and a rare token's row gets few updates on a small corpus.
#
# We train a domain BPE of each size on the training plots and measure bytes per token on both
# splits, and compare the embedding table with the rest of the CPU preset's model (width 256,
# 6 layers), which does not depend on $V$.

# %%
VOCABS = [300, 512, 1024] if SMOKE else [512, 1024, 2048, 4096, 8192, 16384]
model_cfg, _ = get_preset("cpu")
body = GPT(replace(model_cfg, vocab_size=512)).num_params(non_embedding=True)
print(f"cpu preset: width {model_cfg.n_embd}, {model_cfg.n_layer} layers: {body:,} parameters besides the embeddings")

RARE = 5  # an embedding row whose token occurs fewer times than this in train.bin is barely trained
rows = []
for v in VOCABS:
    enc = tok.train_bpe(train_docs, vocab_size=v)
    train_tok = np.concatenate([np.array(ids, dtype=np.int64) for ids in enc.encode_ordinary_batch(train_docs)])
    uses = np.bincount(train_tok, minlength=enc.n_vocab)[256:-1]  # the learned tokens (no bytes, no EOT)
    val_tokens = sum(len(ids) for ids in enc.encode_ordinary_batch(val_docs))
    rows.append({"vocab": enc.n_vocab, "train": train_bytes / len(train_tok), "val": val_bytes / val_tokens,
                 "rare": int((uses < RARE).sum()), "emb": enc.n_vocab * model_cfg.n_embd})

print(f"{'vocab':>6} {'bytes/token':>12} {'(train)':>8} {'tokens/plot':>12} {'rare tokens':>12} "
      f"{'embedding params':>17} {'share of model':>15}")
for r in rows:
    per_plot = val_bytes / n_val / r["val"]
    print(f"{r['vocab']:6,} {r['val']:12.2f} {r['train']:8.2f} {per_plot:12.0f} {r['rare']:12,} {r['emb']:17,} "
          f"{r['emb'] / (r['emb'] + body):14.0%}")
if gpt2 is not None:
    g = {"vocab": gpt2.n_vocab, "val": val_bytes / gpt2_val_tokens, "emb": gpt2.n_vocab * model_cfg.n_embd}
    print(f"{g['vocab']:6,} {g['val']:12.2f} {'':8} {val_bytes / n_val / g['val']:12.0f} {'':12} {g['emb']:17,} "
          f"{g['emb'] / (g['emb'] + body):14.0%}   (GPT-2)")
print(f"bytes/token: on the val plots, and (train) on the plots the tokenizer was trained on.\n"
      f"tokens/plot: an average val plot ({val_bytes / n_val:,.0f} bytes). "
      f"rare tokens: learned tokens used fewer than {RARE} times in the training plots.")

# %%
vs = [r["vocab"] for r in rows]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.plot(vs, [r["train"] for r in rows], "o--", color="tab:gray", label="train plots (the tokenizer saw them)")
ax1.plot(vs, [r["val"] for r in rows], "o-", color="tab:blue", label="val plots (unseen)")
ax1.axhline(n_bytes.sum() / n_chars.sum(), color="tab:red", ls=":", label="characters (one per token)")
ax1.set_xscale("log", base=2)
ax1.set_xticks(vs, [f"{v:,}" for v in vs])
ax1.set_ylim(0, None)
ax1.set_xlabel("vocabulary size V")
ax1.set_ylabel("bytes per token")
ax1.set_title("What it buys: text per token")
ax1.legend(fontsize=8, loc="upper left")

emb = np.array([r["emb"] for r in rows]) / 1e6
rare = np.array([r["rare"] * model_cfg.n_embd for r in rows]) / 1e6
ax2.bar(range(len(vs)), emb - rare, color="tab:orange", label=f"embedding rows, V x {model_cfg.n_embd}")
ax2.bar(range(len(vs)), rare, bottom=emb - rare, color="navajowhite", hatch="//", edgecolor="tab:orange",
        label=f"... of tokens seen < {RARE} times")
ax2.axhline(body / 1e6, color="black", ls="--", label=f"rest of the cpu model ({body / 1e6:.1f}M)")
ax2.set_xticks(range(len(vs)), [f"{v:,}" for v in vs])
ax2.set_xlabel("vocabulary size V")
ax2.set_ylabel("parameters (millions)")
ax2.set_title("What it costs: embedding parameters")
ax2.legend(fontsize=8, loc="center left")
fig.suptitle(f"Domain BPE trained on the {n_train:,} training plots")
fig.tight_layout()
plt.show()

# %% [markdown]
# Three things to read off the table and the plot.
#
# - **Diminishing returns.** Each doubling of $V$ doubles the embedding table, but on unseen plots
#   it buys less and less: the first doubling shortens a plot by a fifth (479 to 385 tokens), the
#   last by a twelfth (248 to 228).
# - **The tokenizer overfits too.** On the plots it was trained on, bytes per token keep climbing
#   by about half a byte per doubling, to 4.58 at 16,384; on unseen plots the last doubling adds
#   only a third of a byte (4.00 to 4.34). The late merges are names and rare words that occur in
#   a few training plots (a character's surname, a town): of little use on new text. The gap
#   between the two curves, a few hundredths up to 4,096, a tenth at 8,192 and a quarter of a
#   byte at 16,384, is a cheap signal of how large a vocabulary a corpus can support.
# - **Rows that barely train.** Those late tokens are exactly the rare ones: the hatched part of
#   each bar is embedding rows whose token occurs fewer than five times in all the training
#   data. They cost parameters and softmax outputs and learn almost nothing. At 4,096 they are
#   152 of the 3,839 learned tokens; at 8,192 one in eight (1,046); at 16,384 three in five
#   (9,629 of 16,127). On balance the last doubling adds only rare rows: it even leaves fewer
#   learned tokens seen five times or more than 8,192 had (6,498 against 6,889), since longer
#   tokens take over some of their occurrences: the solid part of the last bar is lower than the
#   one before it.
#
# By these measures alone a corpus this size would stop at 4,096 or 8,192 tokens. But there is a
# second way to pick a size: train a model at each and *read* what it writes. A small model writes
# a word it has as one token easily; a word it must spell from three pieces it sometimes
# misspells, gluing pieces into words no plot ever contained ("glassblow", "popious"). Chapter 5
# measures that as the **made-up-word rate**: the share of the lowercase words of its samples
# that never occur in the training text. `bench/results/vocabulary.json` holds the measurement:
# the CPU model of Chapter 4 trained for 4 minutes at each vocabulary, then 20 samples of 200
# tokens from each, on this corpus and on plots-bench (the corpus of the Performance page).

# %%
vocab_runs = json.loads((paths.PROJECT / "bench" / "results" / "vocabulary.json").read_text())
print(vocab_runs["what"], "\non", vocab_runs["machine"], "\n")
print(f"{'corpus':26} {'vocab':>6} {'steps':>6} {'val bits/byte':>14} {'made-up words':>14}  e.g.")
for r in vocab_runs["rows"]:
    print(f"{r['corpus']:26} {r['vocab_size']:6,} {r['steps']:6,} {r['val_bpb']:14.3f} {r['made_up_word_rate']:14.1%}  "
          + ", ".join(r["made_up_examples"][:3]))

# %% [markdown]
# The two yardsticks disagree. In bits per byte the vocabularies are within a few hundredths,
# the smaller ones ahead (on this corpus 1.824 at 4,096, 1.862 at 16,384): their models take more
# steps in the same minutes (1,049 against 731). In made-up words the larger ones win. On this
# corpus each doubling about halves the rate or better, 3.8 % to 1.8 % to 0.5 %, so at 16,384
# one word in two hundred is invented; on plots-bench it falls from 3.2 % at 2,048 to 1.2 % at
# 8,192, slowly at first (2.5 % at 4,096).
#
# The book, `make run` and `plotgpt prepare` all use `DEFAULT_VOCAB_SIZE` = 16,384
# (`helpers.config`), on every machine: they choose the words a reader sees over bits per byte.
# The price is the one the table above showed. The embedding table is then 47 % of the CPU
# model, and three in five of its learned rows belong to tokens seen fewer than five times in the
# training plots, rows that barely train. Chapter 5 teaches the measure, and what it misses.
# (Compare models in **bits per byte**, as Chapter 4 does, not in loss per token: a model with a
# bigger vocabulary has a higher loss per token simply because each token carries more text.)
#
# ## 5. Writing the tokens to disk
#
# Training reads random windows of the token stream thousands of times, so we encode the corpus
# **once** and store the ids in a flat binary file that `numpy.memmap` maps into memory: the
# operating system pages in only the parts that are read, so a corpus far larger than RAM
# works too (this is nanoGPT's `train.bin` / `val.bin`).
#
# Each document is written as `<|endoftext|>` followed by its tokens. The end-of-text token is
# the last id of the vocabulary and never comes out of ordinary text, so the model learns
# exactly where a plot begins, and a generation can stop when it writes one.
#
# **Why `uint16`.** An unsigned 16-bit integer holds 0 to 65,535. Every vocabulary we use is
# smaller than 65,536 (the library refuses larger ones), so two bytes per token suffice: half of
# `int32` and a quarter of `int64`, the type PyTorch's embedding lookup wants. We convert to
# `int64` only for the few thousand ids of one batch. GPT-2's 50,257 ids fit too; a 100k
# vocabulary such as GPT-4's would not.
#
# `helpers.prepare.prepare` does it all: read, split by document, train the BPE on the training
# plots, encode, write `train.bin`, `val.bin`, `tokenizer.json` and `meta.json` (sizes, split
# statistics and the tokenizer's fingerprint, checked whenever the data is loaded).
# `helpers.book.sample_data()` runs it for the sample corpus (if not done already) and loads the
# result.

# %%
data = sample_data()  # the default vocabulary, DEFAULT_VOCAB_SIZE
train_ids, val_ids = data.tokens("train"), data.tokens("val")
print(f"{data.path.relative_to(paths.root())}: {sorted(p.name for p in data.path.iterdir())}")
print(f"tokenizer {data.tokenizer.name}: {data.vocab_size:,} ids, <|endoftext|> = {data.tokenizer.eot_token}")
for split, ids in (("train", train_ids), ("val", val_ids)):
    size = (data.path / f"{split}.bin").stat().st_size
    print(f"{split}.bin: {len(ids):,} tokens x 2 bytes = {size:,} bytes (as int64 it would be {8 * len(ids):,}); "
          f"dtype {ids.dtype}, max id {int(ids.max())}")

# %% [markdown]
# Now the same thing by hand for the first few training plots: encode each, put the end-of-text
# id in front, convert to `uint16` and write the raw bytes with `tofile`. There is no header in
# the file, just two bytes per token, so the hand-written file must equal the start of the
# library's `train.bin` exactly. The first validation plot must likewise open `val.bin`: the split
# fell between two documents.

# %%
# NBVAL_CHECK_OUTPUT
enc = data.tokenizer
K = 5
ids = []
for doc in train_docs[:K]:
    ids += [enc.eot_token, *enc.encode_ordinary(doc)]  # <|endoftext|> opens every document
arr = np.array(ids, dtype=np.uint16)
assert arr.max() < 2**16 and arr.nbytes == 2 * len(ids)
path = Path(tempfile.mkdtemp()) / "first-plots.bin"
arr.tofile(path)
by_hand = np.fromfile(path, dtype=np.uint16)
assert np.array_equal(by_hand, train_ids[: len(by_hand)])
print(f"the first {K} plots written by hand equal the start of train.bin (helpers.prepare.prepare)")

first_val = np.array([enc.eot_token, *enc.encode_ordinary(val_docs[0])], dtype=np.uint16)
assert np.array_equal(first_val, val_ids[: len(first_val)])
print("val.bin opens with the first validation plot: the split is by document")
assert int((train_ids == enc.eot_token).sum()) == n_train and int((val_ids == enc.eot_token).sum()) == n_val
print("one <|endoftext|> per document in each split")

# %% [markdown]
# ## 6. Corpus statistics
#
# `helpers.dataset.token_stats` summarises a split the way the reference project's notebook did:
# sizes, bytes per token, and the most and least frequent tokens.

# %%
stats = token_stats(data, "train", top=10)
print(f"train split: {stats['documents']} documents, {stats['characters']:,} characters, "
      f"{stats['bytes']:,} bytes, {stats['tokens']:,} tokens ({stats['bytes_per_token']:.2f} bytes/token)")
print(f"distinct tokens used: {stats['distinct_tokens']:,} of {data.vocab_size:,}")
print("\nmost frequent:")
for s, count in stats["most_frequent"]:
    print(f"  {s:>16} {count:6,}")
print("least frequent:")
for s, count in stats["least_frequent"]:
    print(f"  {s:>16} {count:6,}")

# %% [markdown]
# The top of the list is the scaffolding of English (`the`, `,`, `a`, `.`, `and`, `in`, `of`,
# `'s`) and of our format (the `:` of every `Title:` and `Plot:` line). The bottom is tokens seen
# once: pieces of longer, rarer words. Some ids are not used at all (the count is printed under
# the plot below): 160 of the 256 single bytes (the corpus has 150 distinct characters, 72 of
# them ASCII), and intermediate tokens that later merges absorbed everywhere they occurred (a
# token for the first half of a long name, say).
#
# Word frequencies in natural language follow Zipf's law, $f(r) \propto 1/r$: the $r$-th most
# frequent word is about $r$ times rarer than the first. BPE tokens fall off more slowly, because
# merging the most frequent pairs is exactly what evens frequencies out (a frequent word becomes
# one token, a rare one several common pieces). The imbalance the model meets is still large: a
# hundred tokens make up almost half the text, while thousands of rows of the embedding table
# see a handful of examples each.

# %%
counts = np.bincount(np.asarray(train_ids), minlength=data.vocab_size)
freq = np.sort(counts[counts > 0])[::-1]
rank = np.arange(1, len(freq) + 1)
top100 = freq[:100].sum() / freq.sum()

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.loglog(rank, freq, ".", ms=3, label="tokens of train.bin")
ax.loglog(rank, freq[0] / rank, "--", color="gray", label="Zipf: $f_1 / r$")
ax.set_xlabel("rank r (most frequent first)")
ax.set_ylabel("occurrences f(r)")
ax.set_title(f"Token frequencies, V = {data.vocab_size:,}: the top 100 tokens are {top100:.0%} of the text")
ax.legend()
plt.show()
print(f"{(counts == 0).sum():,} ids never occur in train.bin ({(counts[:256] == 0).sum()} single bytes, "
      f"{(counts[256:] == 0).sum()} learned tokens); {(counts == 1).sum():,} occur exactly once")

# %% [markdown]
# ## 7. Reading training windows back
#
# A language model learns from every position of a window at once: given tokens
# $t_1 \dots t_T$, it predicts $t_2$ from $t_1$, $t_3$ from $t_1 t_2$, and so on, up to
# $t_{T+1}$ from all $T$. So a training example is a window of $T+1$ consecutive tokens, split
# into the input $x = t_1 \dots t_T$ and the target $y = t_2 \dots t_{T+1}$: the same window
# shifted by one. A batch is $B$ windows starting at random offsets.
#
# The offsets ignore document boundaries. A window that crosses an `<|endoftext|>` teaches the
# model that after the end of a plot comes `Title:`, and that nothing before it matters for the
# new plot. Here is `get_batch` by hand; `helpers.dataset.get_batch` is the version the training
# loop uses (it also pins memory and copies asynchronously on a GPU).

# %%
def get_batch_by_hand(tokens, batch_size, block_size, generator):
    ix = torch.randint(len(tokens) - block_size - 1, (batch_size,), generator=generator)  # (B,) offsets
    x = torch.stack([torch.from_numpy(tokens[i : i + block_size].astype(np.int64)) for i in ix])  # (B, T)
    y = torch.stack([torch.from_numpy(tokens[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])  # (B, T)
    return x, y


# %%
# NBVAL_CHECK_OUTPUT
B, T = 4, model_cfg.block_size
x, y = get_batch(train_ids, B, T, torch.Generator().manual_seed(1337))
x_mine, y_mine = get_batch_by_hand(train_ids, B, T, torch.Generator().manual_seed(1337))
print("x", tuple(x.shape), x.dtype, "  y", tuple(y.shape), y.dtype)
assert torch.equal(x, x_mine) and torch.equal(y, y_mine)
print("get_batch by hand matches helpers.dataset.get_batch")
assert torch.equal(x[:, 1:], y[:, :-1])
print("y is x shifted left by one token")

# %% [markdown]
# Decoded, the first window of the batch and its targets: the same text, one token apart.

# %%
print("x:", repr(enc.decode(x[0].tolist())))
print()
print("y:", repr(enc.decode(y[0].tolist())))

# %% [markdown]
# Spelled out position by position, one window holds $T$ training examples. Here the first ten
# positions of a window that starts just before a plot begins (the offset is picked by hand, so
# that it crosses an `<|endoftext|>`); the left column shows at most the last six tokens of the
# context, the right one the target the model must predict from it:

# %%
eot_positions = np.flatnonzero(np.asarray(train_ids) == enc.eot_token)
start = int(eot_positions[3]) - 4  # 4 tokens before the start of the 4th plot
window = train_ids[start : start + 11].astype(np.int64)
xs, ys = window[:-1], window[1:]


def piece(i):
    """One token as text, newlines made visible."""
    return enc.decode_single_token_bytes(int(i)).decode("utf-8", errors="replace").replace("\n", "\\n")


for t in range(10):
    context = "".join(piece(i) for i in xs[max(0, t - 5) : t + 1])
    print(f"{'...' if t > 5 else '   '}{context:>42}  ->  {piece(ys[t])!r}")

# %% [markdown]
# ## What we built
#
# - The corpus as documents, with their lengths and characters, split 90/10 **by document**
#   (`helpers.corpus.read_documents`, `helpers.corpus.split_counts`).
# - A byte-level BPE trainer and encoder in pure Python whose 20 merges and whose encoding of an
#   unseen plot match `helpers.tokenizer.train_bpe`, the `rustbpe`-backed version the book uses.
# - A measurement of the vocabulary-size trade-off on this corpus: each doubling adds less text
#   per token on unseen plots and more rows that barely train, while the model's made-up words
#   fall with every doubling; 16,384 is the default, for those words, at the price of 9,629 rare
#   rows.
# - The token ids in `uint16` memmaps, written by hand and checked byte for byte against
#   `helpers.prepare.prepare`, each plot opened by `<|endoftext|>`.
# - Random `(x, y)` windows, `y` shifted by one, as `helpers.dataset.get_batch` serves them.
#
# **Next, Chapter 2: attention.** A batch `x` of shape `(B, T)` becomes a `(B, T, C)` tensor of
# embeddings, and the model needs a way for position $t$ to gather information from positions
# $1 \dots t$ (never from the future, which $y$ holds). That mechanism is causal self-attention.
