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
# # Chapter 5: Fine-tuning and judging
#
# The reference project did not stop after its 15-hour run on Wikipedia plots: it continued
# training the same model on a second, 1.1 MB corpus of plots, so that the general knowledge of
# "how a plot goes" would carry over and only the flavour would change. That is *fine-tuning*,
# and it is the cheapest way to a model for a narrow taste: the expensive part (learning English,
# names, the shape of a story) is already paid for.
#
# In this chapter we fine-tune chapter 4's model on 50 ghost-story and folk-horror plots, and
# then learn to *judge* what comes out, with numbers instead of impressions:
#
# 1. **bits per byte** on held-out text: what the model gained on ghost stories, and what it
#    forgot about everything else;
# 2. **repetition**: how much a sample loops (the reference's "the vampire … the vampire");
# 3. **novelty**: how much a sample copies its training text, and where from.
#
# With these three we compare temperatures and top-k settings, watch greedy decoding loop and a
# repetition penalty cure it, and catch the model reciting a plot it was trained on.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %%
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.nn import functional as F

from helpers import checkpoint, evaluate, paths
from helpers.book import chapter_checkpoint, sample_data
from helpers.config import TrainConfig
from helpers.corpus import read_documents, split_counts
from helpers.device import seed_everything
from helpers.sample import SampleSettings, generate

seed_everything(1337)
base_path = chapter_checkpoint()  # chapter 4's best.safetensors (a quick stand-in if 04 has not run)
base = checkpoint.load(base_path)
base_train_cfg = TrainConfig(**base.info["train_config"])
print(f"base model: {base.model.num_params() / 1e6:.2f}M parameters, {base.config.n_layer} layers x "
      f"{base.config.n_embd}, block {base.config.block_size}, trained {base.info['step']} steps "
      f"at peak lr {base_train_cfg.lr:g}")
print(f"its tokenizer: {base.tokenizer.name}, {base.tokenizer.n_vocab:,} ids")

# %% [markdown]
# ## 1. The second corpus
#
# `data/sample/ghost-stories.txt` holds 50 original plots in the same format as the sample
# corpus (`Title:` line, `Plot:` paragraph, documents separated by `===`): lighthouses, drowned
# daughters, haunted photographs. About 50 KB — far smaller than the reference's 1.1 MB, and
# that will matter: a few hundred steps are many passes over it.

# %%
ghost_docs = list(read_documents(paths.SECOND_CORPUS))
n_train, n_val = split_counts(len(ghost_docs), 0.1)
print(f"{len(ghost_docs)} documents, {paths.SECOND_CORPUS.stat().st_size:,} bytes: "
      f"{n_train} for training, the last {n_val} for validation\n")
print(ghost_docs[0][:600], "...")

# %% [markdown]
# ## 2. One tokenizer, or the ids lie
#
# A model never sees text, only ids. Row 1,234 of its embedding table has learned what *the
# base tokenizer's* token 1,234 means. If we prepared the ghost stories with a new BPE trained
# on them (what `plotgpt prepare` does by default), its merges would come in a different order
# and token 1,234 would be some other string. The ids would be valid numbers, the loss would be
# computed, training would run — on text the model reads as gibberish.
#
# Let us see how bad. We train a small BPE on the ghost stories, encode a sentence with it, and
# read those ids back the way the base model would:

# %%
from helpers.tokenizer import train_bpe

own_bpe = train_bpe(ghost_docs[:n_train], vocab_size=1024)
sentence = "The ghost of the drowned keeper climbs the lighthouse stairs at midnight."
ids = own_bpe.encode_ordinary(sentence)
print("ghost-story BPE ids   :", ids)
print("what those ids mean   :", repr(own_bpe.decode(ids)))
print("what the base model reads:", repr(base.tokenizer.decode(ids)))

# %% [markdown]
# So the second corpus must be encoded with the base model's tokenizer:
# `sample_data(..., encoding=base.tokenizer)` passes it to `helpers.prepare.prepare`, which then
# trains no tokenizer at all. Ghost-story words the base BPE never merged ("Gullstack") simply
# split into more, shorter pieces.
#
# Because this mistake is silent, the library refuses it: a prepared folder records its
# tokenizer's fingerprint (a hash of its merges), a checkpoint carries its tokenizer, and
# `helpers.train.train(..., init_from=checkpoint)` compares the two before touching anything.
# Here is the refusal, on the ghost stories prepared the wrong way:

# %%
# NBVAL_CHECK_OUTPUT
from helpers.memmap import DataError
from helpers.train import train

wrong = sample_data(1024, source=paths.SECOND_CORPUS, name="ghost-stories-own-bpe")
try:
    train(wrong, base.config, base_train_cfg, paths.checkpoints_root() / "book-ghost-refused",
          init_from=base, progress=False, log=lambda *_: None)
    refusal = ""
except DataError as err:
    refusal = str(err)
assert refusal.startswith("tokenizer mismatch"), refusal
assert not (paths.checkpoints_root() / "book-ghost-refused").exists()  # refused before writing anything
print("helpers.train.train refused: tokenizer mismatch")

# %%
print(refusal)

# %% [markdown]
# The right way, and what the ghost stories cost in tokens next to the plots the model was
# trained on:

# %%
from helpers.memmap import load_data
from helpers.prepare import prepare
from helpers.tokenizer import fingerprint

ghost = sample_data(source=paths.SECOND_CORPUS, name="ghost-stories", encoding=base.tokenizer)
if ghost.meta["tokenizer"]["fingerprint"] != fingerprint(base.tokenizer):
    # sample_data reuses a prepared folder when the source is unchanged, whatever encoding it was
    # prepared with; if the base model was retrained with another tokenizer, prepare again.
    ghost = load_data(prepare(paths.SECOND_CORPUS, ghost.path, encoding=base.tokenizer, progress=False,
                              log=lambda *_: None))
plots = sample_data()  # the corpus chapter 4 trained on (same tokenizer)
corpora = {"general plots": plots, "ghost stories": ghost}

print(f"{'':15} {'split':>6} {'docs':>5} {'tokens':>8} {'bytes/token':>12}")
for name, d in corpora.items():
    for split in ("train", "val"):
        s = d.meta["splits"][split]
        print(f"{name:15} {split:>6} {s['documents']:>5} {s['tokens']:>8,} {d.bytes_per_token(split):>12.2f}")

# %% [markdown]
# The ghost stories compress a little worse than the plots the tokenizer was built on (fewer
# bytes per token): their rarer words come in smaller pieces. That is one reason the next
# section measures in bits per byte.

# %% [markdown]
# ## 3. Bits per byte: a yardstick that ignores the tokenizer
#
# The training loss is the mean negative log-likelihood per *token*, in nats. Two corpora that
# tokenize at different rates cannot be compared that way — nor can two models with different
# tokenizers (the reference's 50,257-token GPT-2 BPE against our 4,096). Dividing the total by
# the number of *bytes* of the text instead, and converting nats to bits, gives a number that
# only depends on the text:
#
# $$\text{bits per byte} = \frac{\sum_i -\ln p(x_i \mid x_{<i})}{\ln 2 \cdot N_\text{bytes}}$$
#
# It is the size, in bits, that the model would compress the text to, per byte of input: 8
# means no better than storing raw bytes; good English models reach about 1.
#
# During training, chapter 4 estimated the loss on random windows. To compare models we want
# the exact figure over every validation token: walk the split in consecutive windows of one
# block each and add up the losses.

# %%
@torch.no_grad()
def val_bits_per_byte(model, data, split="val"):
    """Exact bits per byte over a split, one block-sized window at a time."""
    model.eval()
    T = model.config.block_size
    ids = torch.from_numpy(np.asarray(data.tokens(split), dtype=np.int64))  # (N,)
    nll = 0.0  # total negative log-likelihood in nats
    for start in range(0, len(ids) - 1, T):
        y = ids[start + 1:start + T + 1][None]  # (1, t) the tokens to predict
        x = ids[start:start + y.size(1)][None]  # (1, t) the tokens before each of them
        logits, _ = model(x, y)  # (1, t, V)
        nll += F.cross_entropy(logits[0], y[0], reduction="sum").item()
    n_bytes = data.meta["splits"][split]["bytes"]
    return nll / (math.log(2) * n_bytes)


# %%
# NBVAL_CHECK_OUTPUT
mine = val_bits_per_byte(base.model, ghost)
theirs = evaluate.full_loss(base.model, ghost)["bpb"]
assert abs(mine - theirs) < 1e-4, (mine, theirs)
print("matches helpers.evaluate.full_loss")

# %% [markdown]
# `helpers.evaluate.full_loss` (batched, and also returning the loss per token) is the version
# the rest of the book and `plotgpt evaluate` use. The base model's scores, before any
# fine-tuning:

# %%
before = {name: evaluate.full_loss(base.model, d)["bpb"] for name, d in corpora.items()}
for name, bpb in before.items():
    print(f"base model on {name:14}: {bpb:.3f} bits per byte")

# %% [markdown]
# ## 4. Fine-tuning: the same loop, a gentler schedule
#
# Fine-tuning is `helpers.train.train` started from a checkpoint (`init_from=`) instead of from
# random weights. Everything else — AdamW, clipping, evaluation, checkpoints — is chapter 4's
# loop. What changes is the schedule:
#
# - a **lower peak learning rate**, about a third of the base run's. The weights are already
#   good; big steps would wreck what they know before they learn anything new;
# - a **short warmup**: AdamW starts with empty moment estimates (a fresh optimizer: the base
#   run's moments describe gradients of the *other* corpus), and its first steps are noisy;
# - **a few hundred steps**, with the cosine decay fitted to them.
#
# On the command line this is `plotgpt prepare data/sample/ghost-stories.txt --tokenizer-from
# checkpoints/book` followed by `plotgpt finetune --checkpoint checkpoints/book --data
# data/prepared/ghost-stories`, which picks the same defaults.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.plots import LiveLossPlot

ft_cfg = replace(base_train_cfg, lr=base_train_cfg.lr / 3, warmup_iters=2 if SMOKE else 20,
                 max_iters=20 if SMOKE else 300, max_minutes=0, eval_interval=5 if SMOKE else 25,
                 patience=0, keep_last=1, sample_tokens=0)
ghost_run = paths.checkpoints_root() / "book-ghost"
start = checkpoint.load(base_path)  # a second copy: train() updates the model it is given in place
print(f"fine-tuning: peak lr {ft_cfg.lr:.2g} (base run {base_train_cfg.lr:g}), warmup {ft_cfg.warmup_iters}, "
      f"{ft_cfg.max_iters} steps of {ft_cfg.batch_size} x {start.config.block_size} tokens")
live = LiveLossPlot(title=f"chapter 4's model, fine-tuned on {n_train} ghost stories")
result = train(ghost, start.config, ft_cfg, ghost_run, init_from=start, overwrite=True, progress=False,
               callback=live, log=lambda *_: None)
tuned = checkpoint.load(ghost_run)  # best.safetensors: the step with the lowest ghost-story val loss
print(f"{result.step} steps; best ghost-story val loss {result.best_val:.3f} at step {tuned.info['step']}")

# %% [markdown]
# The curve starts where the base model stands on ghost stories (step 0 is evaluated before the
# first update) and drops fast: most of what a ghost story needs, the model already had. Then
# the training loss keeps falling while the validation loss flattens or turns up: 45 stories are
# soon learned by heart. `best.safetensors` keeps the weights from the best validation step,
# and those are what we judge.
#
# ## 5. What it gained, and what it forgot
#
# Now the same exact bits per byte for both models on both validation sets:

# %%
after = {name: evaluate.full_loss(tuned.model, d)["bpb"] for name, d in corpora.items()}
print(f"{'validation set':15} {'base':>7} {'tuned':>7} {'change':>8}")
for name in corpora:
    print(f"{name:15} {before[name]:7.3f} {after[name]:7.3f} {after[name] - before[name]:+8.3f}")

fig, ax = plt.subplots(figsize=(6.5, 3.8))
x = np.arange(len(corpora))
b1 = ax.bar(x - 0.2, [before[n] for n in corpora], 0.4, label="base (chapter 4)", color="tab:blue")
b2 = ax.bar(x + 0.2, [after[n] for n in corpora], 0.4, label="fine-tuned on ghost stories", color="tab:purple")
ax.bar_label(b1, fmt="%.3f", fontsize=8)
ax.bar_label(b2, fmt="%.3f", fontsize=8)
ax.set_xticks(x, [f"{n}\n(val)" for n in corpora])
ax.set_ylabel("bits per byte (lower is better)")
ax.set_ylim(0, max(*before.values(), *after.values()) * 1.2)
ax.set_title("Fine-tuning: better at ghost stories, worse at the rest")
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# That is *catastrophic forgetting* in numbers. Nothing in the loss asks the model to keep
# writing general plots well, so every step spent on ghost stories moves some weights away from
# what served the old corpus. Here the damage is small, because the two corpora are close
# relatives (the sample corpus has its own share of hauntings) and because the low learning rate
# and the short run kept the weights near where they started. The usual remedies, when it
# matters: mix some of the old corpus into the new one, lower the learning rate further, or
# stop earlier.

# %% [markdown]
# ## 6. Temperature and top-k, measured
#
# Sampling does not draw from the model's distribution as it is. **Temperature** $T$ divides
# the logits $z$ before the softmax, and **top-k** keeps only the $k$ largest:
#
# $$p_T(v) = \frac{e^{z_v / T}}{\sum_{u \in \text{top-}k} e^{z_u / T}} \quad \text{for } v \in
# \text{top-}k, \qquad 0 \text{ otherwise.}$$
#
# (Chapter 6 plots what that does to one next-token distribution.) Here is the transformation,
# and a check that sampling from it picks exactly the tokens the model's own sampler picks with
# the same random stream:

# %%
def sampling_probs(logits, temperature=1.0, top_k=None):
    """The distribution we actually sample from: logits / T, top-k kept, softmax."""
    logits = logits / temperature  # (B, V)
    if top_k is not None:
        kth = torch.topk(logits, top_k).values[:, [-1]]  # (B, 1) the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))  # everything below it: probability 0
    return F.softmax(logits, dim=-1)  # (B, V)


# %%
# NBVAL_CHECK_OUTPUT
from helpers.model import GPT

logits = torch.randn(8, tuned.tokenizer.n_vocab, generator=torch.Generator().manual_seed(0)) * 3  # (B, V)
for t, k in [(0.5, 10), (1.0, None), (1.3, 50)]:
    mine = torch.multinomial(sampling_probs(logits, t, k), 1, generator=torch.Generator().manual_seed(1)).squeeze(1)
    theirs = GPT._sample(logits / t, k, None, torch.Generator().manual_seed(1))
    assert torch.equal(mine, theirs)
print("matches the sampler inside helpers.model.GPT.generate_stream")

# %% [markdown]
# Bits per byte gives a first, sample-free way to compare settings: score the validation text
# under $p_T$ instead of $p$. At $T = 1$ and no top-k this is the model's own bits per byte;
# training minimised exactly that, so other temperatures should do worse (a perfectly
# calibrated model would have its minimum exactly at $T = 1$). Top-k is harsher still: whenever
# the true next token is not among the $k$ favourites, $p_T$ gives it probability zero, an
# infinite loss. So for top-k we count how often that happens instead.

# %%
@torch.no_grad()
def val_logits(model, data, split="val"):
    """Logits and targets for every validation token, one block-sized window at a time."""
    model.eval()
    T = model.config.block_size
    ids = torch.from_numpy(np.asarray(data.tokens(split), dtype=np.int64))  # (N,)
    out_logits, out_targets = [], []
    for start in range(0, len(ids) - 1, T):
        y = ids[start + 1:start + T + 1][None]  # (1, t)
        logits, _ = model(ids[start:start + y.size(1)][None], y)  # (1, t, V)
        out_logits.append(logits[0, :, :data.vocab_size])
        out_targets.append(y[0])
    return torch.cat(out_logits), torch.cat(out_targets)  # (N-1, V), (N-1,)


val_z, val_y = val_logits(tuned.model, ghost)
n_bytes = ghost.meta["splits"]["val"]["bytes"]
temps = np.round(np.arange(0.4, 2.01, 0.1), 2)
bpb_at_t = [F.cross_entropy(val_z / t, val_y, reduction="sum").item() / (math.log(2) * n_bytes) for t in temps]
rank_of_truth = (val_z > val_z.gather(1, val_y[:, None])).sum(1)  # (N-1,) how many tokens the model preferred
ks = [1, 3, 10, 50, 200]
miss = [float((rank_of_truth >= k).float().mean()) for k in ks]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.plot(temps, bpb_at_t, "o-", color="tab:purple")
ax1.axvline(1.0, color="grey", ls=":", lw=1)
ax1.set_xlabel("temperature T")
ax1.set_ylabel("ghost-story val bits per byte under $p_T$")
ax1.set_title("Any T but ~1 predicts real text worse")
ax2.bar([str(k) for k in ks], miss, color="tab:orange")
ax2.bar_label(ax2.containers[0], labels=[f"{m:.0%}" for m in miss], fontsize=8)
ax2.set_xlabel("top-k")
ax2.set_ylabel("share of val tokens outside the top k")
ax2.set_title("How often top-k rules out the real next token")
fig.tight_layout()
plt.show()
print(f"lowest bits per byte at T = {temps[int(np.argmin(bpb_at_t))]:.1f}")

# %% [markdown]
# So every setting we are about to try is, strictly, a *worse* model of ghost stories. We use
# them anyway because a model of text and a writer of text want different things: the true
# distribution has a long tail of individually unlikely tokens, and a long sample that draws from
# it will, sooner or later, draw something absurd and build on it. Lowering $T$ and cutting the
# tail trade fidelity for coherence. Bits per byte cannot see coherence; for that we need to
# look at samples — and to count in them what we would otherwise only eyeball.

# %% [markdown]
# ## 7. Two yardsticks for samples
#
# **Repetition.** Split a sample into words and take every run of 4 consecutive words (its
# 4-grams). In fluent prose almost all are distinct; a looping text repeats them. The share of
# 4-grams that repeat an earlier one:
#
# $$\text{repetition} = 1 - \frac{\#\,\text{distinct 4-grams}}{\#\,\text{4-grams}}$$
#
# **Novelty.** We want imaginary plots, not recalled ones. Take every 8-gram of the sample and
# look it up among the 8-grams of the training text: 8 words in a row are almost never shared
# by chance, so a hit means the model copied. We report the share of copied 8-grams, and the
# longest run of the sample found verbatim in the training text.

# %%
def my_repetition(text, n=4):
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


class MyNovelty:
    def __init__(self, train_text, n=8):
        words = train_text.split()
        self.n = n
        self.grams = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}  # every training n-gram
        self.joined = " " + " ".join(words) + " "  # for substring search, on word boundaries

    def copied_share(self, text):
        words = text.split()
        grams = [tuple(words[i:i + self.n]) for i in range(len(words) - self.n + 1)]
        return 0.0 if not grams else sum(g in self.grams for g in grams) / len(grams)

    def longest_copy(self, text):
        """Longest run of words of `text` that occurs verbatim in the training text."""
        words, best = text.split(), ""
        for i in range(len(words)):
            for j in range(i + len(best.split()) + 1, len(words) + 1):  # only longer runs are worth testing
                span = " ".join(words[i:j])
                if f" {span} " not in self.joined:
                    break
                best = span
        return best


# %% [markdown]
# Which training text? Everything the fine-tuned model has been trained on: the plots of
# chapter 4 *and* the ghost stories. We decode the `train.bin` splits back into documents
# (each starts after an `<|endoftext|>`), so the index holds exactly what the model saw.

# %%
def train_documents(data):
    """The documents of a prepared train split, decoded from train.bin."""
    ids = np.asarray(data.tokens("train"))
    starts = np.flatnonzero(ids == data.tokenizer.eot_token)  # each document opens with <|endoftext|>
    return [data.tokenizer.decode(ids[a + 1:b].tolist()) for a, b in zip(starts, [*starts[1:], len(ids)])]


seen_docs = {name: train_documents(d) for name, d in corpora.items()}
train_text = "\n".join(doc for docs in seen_docs.values() for doc in docs)
print(", ".join(f"{len(docs)} {name}" for name, docs in seen_docs.items()), f"= {len(train_text.split()):,} words")

# %%
# NBVAL_CHECK_OUTPUT
index, my_index = evaluate.NoveltyIndex(train_text), MyNovelty(train_text)
recalled = " ".join(seen_docs["ghost stories"][3].split()[10:40])  # 30 words lifted from a training plot
tests = {
    "loop": "the vampire attacks the village and the vampire attacks the village and the vampire attacks",
    "fresh": "A retired clockmaker in Lisbon teaches his parrot to recite the shipping forecast.",
    "recalled": f"It was a dark night. {recalled} Nobody knew why.",
}
for name, text in tests.items():
    score = index.score(text)
    assert my_repetition(text) == evaluate.repetition(text)
    assert abs(my_index.copied_share(text) - score["copied_8gram_share"]) < 1e-12
    assert my_index.longest_copy(text) == score["longest_copied_text"]
    print(f"{name:9} repetition {my_repetition(text):.2f}   copies the training text: {score['copied_8gram_share'] > 0}")
assert len(index.score(tests["recalled"])["longest_copied_text"].split()) >= 30
print("matches helpers.evaluate.repetition and helpers.evaluate.NoveltyIndex")

# %% [markdown]
# The looping sentence scores high on repetition; the lifted passage is caught word for word
# (its 30 words, and maybe a neighbour that happens to match too). `helpers.evaluate.NoveltyIndex`
# is the version to use on real corpora: it hashes the 8-grams into a sorted numpy array
# (compact even for millions of them) and finds the longest copy with two pointers instead of
# our nested loop.

# %% [markdown]
# ## 8. The trade-off, measured
#
# Now the sweep: the fine-tuned model writes several plots (from an empty prompt, so it also
# invents the title) at each temperature and top-k, and we average the two yardsticks per
# setting.

# %%
# NBVAL_IGNORE_OUTPUT
N_SAMPLES, N_TOKENS = (2, 48) if SMOKE else (6, 200)
sweep_temps, sweep_ks = [0.5, 0.8, 1.0, 1.3], [10, 50, None]
samples, results = {}, {}
for k in sweep_ks:
    for t in sweep_temps:
        texts = generate(tuned, "", N_SAMPLES, SampleSettings(N_TOKENS, temperature=t, top_k=k, seed=7))
        scores = [index.score(s) for s in texts]
        samples[t, k] = texts
        results[t, k] = {"repetition": np.mean([evaluate.repetition(s) for s in texts]),
                         "copied": np.mean([s["copied_8gram_share"] for s in scores]),
                         "longest": np.mean([s["longest_copied_words"] for s in scores])}

print(f"{N_SAMPLES} samples of up to {N_TOKENS} tokens per setting; means:")
print(f"{'top-k':>6} {'T':>4} {'repetition':>11} {'copied 8-grams':>15} {'longest copy (words)':>21}")
for (t, k), r in results.items():
    print(f"{str(k):>6} {t:>4} {r['repetition']:>11.1%} {r['copied']:>15.1%} {r['longest']:>21.1f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for key, ax, label in zip(["repetition", "copied", "longest"], axes,
                          ["repeated word 4-grams", "8-grams copied from training text", "longest copied run (words)"]):
    for k, color in zip(sweep_ks, ["tab:red", "tab:blue", "tab:green"]):
        ax.plot(sweep_temps, [results[t, k][key] for t in sweep_temps], "o-", color=color,
                label=f"top-k {k}" if k else "no top-k")
    ax.set_xlabel("temperature")
    ax.set_ylabel(label)
    ax.set_xticks(sweep_temps)
    ax.grid(alpha=0.3)
axes[0].set_title("Low temperature loops…")
axes[1].set_title("…and copies…")
axes[2].set_title("…in long verbatim runs")
axes[0].legend(fontsize=8)
fig.suptitle("Judging the fine-tuned model: means over samples per setting", y=1.02)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the curves left to right. At low temperature the model keeps to its favourite paths,
# and on a corpus it has nearly memorised those paths are the training plots themselves:
# repetition and copying are high. Raising the temperature breaks both — and past about 1 the
# text starts to ramble: grammatical for a clause, then off somewhere else. Top-k matters most
# at high temperature, where it is the only thing keeping the long tail out. Small samples are
# noisy, so trust the trend more than any one point; the sweet spot sits in between, which is
# why `SampleSettings` defaults to $T = 0.8$ with top-k 50.
#
# One sample from each end, to see what the numbers mean:

# %%
# NBVAL_IGNORE_OUTPUT
for t, k in [(0.5, 10), (1.3, None)]:
    text = samples[t, k][0]
    print(f"--- temperature {t}, top-k {k}: repetition {evaluate.repetition(text):.0%}, "
          f"copied 8-grams {index.score(text)['copied_8gram_share']:.0%} ---\n{text}\n")

# %% [markdown]
# ## 9. Greedy decoding loops; a repetition penalty breaks the loop
#
# The limit of low temperature is **greedy** decoding: always take the single most likely
# token. It is deterministic, and it has a failure everyone who trains a small model meets: as
# soon as a phrase is the most likely continuation of itself, it repeats forever. That was the
# reference's "the vampire … the vampire".
#
# A **repetition penalty** (from the CTRL paper) makes every token already in the context less
# attractive: its logit $z$ is divided by the penalty $\theta > 1$ if positive, multiplied by it
# if negative. Our own greedy loop with the penalty, checked against `helpers`:

# %%
@torch.no_grad()
def greedy(model, idx, n_new, penalty=1.0):
    """Greedy decoding with a CTRL-style repetition penalty; idx (1, T) -> (1, T + n_new)."""
    model.eval()
    for _ in range(n_new):
        context = idx[:, -model.config.block_size:]  # (1, t)
        z = model(context)[0][:, -1, :].float()  # (1, V) logits for the next token
        z[:, tuned.tokenizer.n_vocab:] = float("-inf")  # padding rows of the table are not tokens
        seen = z.gather(1, context)  # (1, t) the logits of tokens already in the context
        z.scatter_(1, context, torch.where(seen > 0, seen / penalty, seen * penalty))
        idx = torch.cat([idx, z.argmax(dim=-1, keepdim=True)], dim=1)  # (1, T + 1)
    return idx


# %%
# NBVAL_CHECK_OUTPUT
prompt_ids = torch.tensor([[tuned.tokenizer.eot_token, *tuned.tokenizer.encode_ordinary("Title:")]])  # (1, T)
for penalty in (1.0, 1.3):
    mine = greedy(tuned.model, prompt_ids, 24, penalty)
    theirs = tuned.model.generate(prompt_ids, 24, do_sample=False, repetition_penalty=penalty,
                                  n_valid=tuned.tokenizer.n_vocab)
    assert torch.equal(mine, theirs)
print("matches helpers.model.GPT.generate (do_sample=False, repetition_penalty)")

# %%
# NBVAL_IGNORE_OUTPUT
for penalty in (1.0, 1.2, 1.5):
    text = generate(tuned, "Title:", 1, SampleSettings(N_TOKENS, do_sample=False, repetition_penalty=penalty))[0]
    sc = index.score(text)
    print(f"--- greedy, repetition penalty {penalty}: repetition {evaluate.repetition(text):.0%}, "
          f"copied 8-grams {sc['copied_8gram_share']:.0%}, longest copy {sc['longest_copied_words']} words ---")
    print(text, "\n")

# %% [markdown]
# Without a penalty, greedy decoding either loops or — on a model this familiar with its
# corpus — walks straight down one training plot; both show up in the numbers. The penalty
# breaks loops, but bluntly: it also penalises "the", "a" and the full stop, which a plot needs
# again and again, so a strong penalty makes the prose strange. A mild one (1.1–1.3) together
# with sampling is the usual recipe; `--repetition-penalty` on the command line and in the
# chapter 6 panel.

# %% [markdown]
# ## 10. Spotting copied passages
#
# A copied 8-gram share says *that* the model copies; to see *what* it copies, take the sample
# with the longest verbatim run and find that run in the training documents.

# %%
# NBVAL_IGNORE_OUTPUT
all_samples = [(t, k, s) for (t, k), texts in samples.items() for s in texts]
t, k, worst = max(all_samples, key=lambda x: index.score(x[2])["longest_copied_words"])
span = index.score(worst)["longest_copied_text"]
print(f"worst sample (temperature {t}, top-k {k}): a run of {len(span.split())} words copied verbatim:\n")
print(f"  «{span}»\n")

found = [(name, doc) for name, docs in seen_docs.items() for doc in docs if f" {span} " in f" {' '.join(doc.split())} "]
print(f"it occurs in {len(found)} training document(s):")
for name, doc in found[:3]:
    flat = " ".join(doc.split())
    at = flat.index(span)
    print(f"\n  {doc.splitlines()[0]}   ({name})")
    print(f"  …{flat[max(at - 150, 0):at]}[[{span}]]{flat[at + len(span):at + len(span) + 150]}…")

# %% [markdown]
# The bracketed passage is the sample's text; around it, the training plot it came from. A long
# run found in one document is recall, not writing: the model has stored that plot. (A short
# run found in many documents is just a common phrase — "falls in love with".) On a 50-story
# corpus some recall is unavoidable; on the reference's 1.1 MB, and far more on a full Wikipedia
# dump, it fades, which is the best argument for more data. `plotgpt evaluate` prints these
# same figures — val bits per byte, repetition, copied share and the longest copy — for any
# checkpoint.

# %% [markdown]
# ## What we built
#
# - **Fine-tuning** as the training loop started from a checkpoint, with the base model's
#   tokenizer (a mismatch is refused, because ids would mean different strings) and a gentler
#   schedule: `helpers.train.train(..., init_from=...)`, or `plotgpt finetune`.
# - **Bits per byte** over a whole validation split, comparable across corpora and tokenizers
#   (`helpers.evaluate.full_loss`), and with it catastrophic forgetting in numbers.
# - Two sample yardsticks, **repetition** (`helpers.evaluate.repetition`) and **novelty**
#   (`helpers.evaluate.NoveltyIndex`), and what they say about temperature, top-k, greedy
#   decoding and the repetition penalty — including where exactly a sample was copied from.
#
# Next, chapter 6 puts the sampling knobs in your hands: the next-token distribution, top-p,
# streaming, and a panel where you can write with the base model or the ghost-story one.
