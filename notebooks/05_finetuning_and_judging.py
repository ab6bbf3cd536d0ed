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
# In this chapter we fine-tune chapter 4's model on 154 ghost-story and folk-horror plots, and
# then learn to *judge* what comes out, with numbers instead of impressions:
#
# 1. **bits per byte** on held-out text: what the model gained on ghost stories, and what it
#    forgot about everything else;
# 2. **repetition**: how much a sample loops (the reference's "the vampire … the vampire");
# 3. **novelty**: how much a sample copies its training text, and where from — and, for the
#    opposite failure, how many of its words were never seen at all.
#
# With these we compare temperatures and top-k settings, watch greedy decoding loop and a
# repetition penalty cure it, and catch a model in the act of reciting its training plots.

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
from helpers.device import detect_device, seed_everything
from helpers.sample import SampleSettings, generate

seed_everything(1337)
device = detect_device()  # a GPU if there is one; everything here also runs in minutes on a CPU
base_path = chapter_checkpoint()  # chapter 4's best.safetensors (a quick stand-in if 04 has not run)
base = checkpoint.load(base_path, device=device)
base_train_cfg = TrainConfig(**base.info["train_config"])
print(f"base model: {base.model.num_params() / 1e6:.2f}M parameters, {base.config.n_layer} layers x "
      f"{base.config.n_embd}, block {base.config.block_size}; its best checkpoint is from step "
      f"{base.info['step']}, peak lr {base_train_cfg.lr:g}")
print(f"its tokenizer: {base.tokenizer.name}, {base.tokenizer.n_vocab:,} ids")

# %% [markdown]
# ## 1. The second corpus
#
# `data/sample/ghost-stories.txt` holds 154 original plots in the same format as the sample
# corpus (`Title:` line, `Plot:` paragraph, documents separated by `===`): lighthouses, drowned
# daughters, haunted photographs. About 150 KB — far smaller than the reference's 1.1 MB, and
# that will matter: a short run is already several passes over it.

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
print("ghost-story BPE ids      :", ids)
print("what those ids mean      :", repr(own_bpe.decode(ids)))
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
from helpers.dataset import DataError
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
from helpers.dataset import load_data
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
pieces = [base.tokenizer.decode([i]) for i in base.tokenizer.encode_ordinary(" the Gullstack Point lighthouse")]
print("\nbase tokens of a ghost-story phrase:", pieces)

# %% [markdown]
# Bytes per token measure how well a tokenizer fits a text. The base BPE packs the most bytes
# into a token on the split it was built from; on text it has not seen (the ghost stories, and
# the plots' own validation split too) rarer words come in smaller pieces. That is one reason
# the next section measures in bits per byte.

# %% [markdown]
# ## 3. Bits per byte: a yardstick that ignores the tokenizer
#
# The training loss is the mean negative log-likelihood per *token*, in nats. Two corpora that
# tokenize at different rates cannot be compared that way — nor can two models with different
# tokenizers (the reference's 50,257-token GPT-2 BPE against our 16,384). Dividing the total by
# the number of *bytes* of the text instead, and converting nats to bits, gives a number that
# only depends on the text:
#
# $$\text{bits per byte} = \frac{\sum_i -\ln p(x_i \mid x_{<i})}{\ln 2 \cdot N_\text{bytes}}$$
#
# It is the size, in bits, that the model would compress the text to, per byte of input: 8
# means no better than storing raw bytes; large modern models get well below 1 on English.
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
    ids = ids.to(next(model.parameters()).device)
    nll = 0.0  # total negative log-likelihood in nats
    for pos in range(0, len(ids) - 1, T):
        y = ids[pos + 1:pos + T + 1][None]  # (1, t) the tokens to predict
        x = ids[pos:pos + y.size(1)][None]  # (1, t) the tokens before each of them
        logits, _ = model(x, y)  # (1, t, V)
        nll += F.cross_entropy(logits[0], y[0], reduction="sum").item()
    n_bytes = data.meta["splits"][split]["bytes"]
    return nll / (math.log(2) * n_bytes)


# %%
# NBVAL_CHECK_OUTPUT
mine = val_bits_per_byte(base.model, ghost)
theirs = evaluate.full_loss(base.model, ghost, device=device)["bpb"]
assert abs(mine - theirs) < 1e-4, (mine, theirs)
print("matches helpers.evaluate.full_loss")

# %% [markdown]
# `helpers.evaluate.full_loss` (batched, and also returning the loss per token) is the version
# the rest of the book and `plotgpt evaluate` use. The base model's scores, before any
# fine-tuning:

# %%
before = {name: evaluate.full_loss(base.model, d, device=device)["bpb"] for name, d in corpora.items()}
for name, bpb in before.items():
    print(f"base model on {name:14}: {bpb:.3f} bits per byte")

# %% [markdown]
# ## 4. Fine-tuning: the same loop, a gentler schedule
#
# Fine-tuning is `helpers.train.train` started from a checkpoint (`init_from=`) instead of from
# random weights. Everything else — AdamW, clipping, evaluation, checkpoints — is chapter 4's
# loop. What changes is the schedule:
#
# - a **lower peak learning rate**, a tenth of the base run's. The weights are already good;
#   big steps would wreck what they know before they learn anything new (at a third of the
#   base rate and 8 sequences a step, this corpus got worse from the first steps);
# - a **short warmup**: the optimizer is fresh (the base run's AdamW moments describe gradients
#   on the *other* corpus), so its first steps are noisy and should be small;
# - **a short run**, with the cosine decay fitted to it. How short is set by the data: our 138
#   training stories (about 32,000 tokens) are one pass every 16 steps at 16 sequences of 128
#   tokens, so 60 steps already show them to the model nearly four times;
# - **no average of the weights**: chapter 4's average (0.998) remembers about the last 500
#   steps, so in a 60-step run it would hardly move away from the base model.
#
# Besides the live loss plot, a callback measures the exact bits per byte on *both* validation
# sets at every evaluation, so we can watch what happens to the old skill while the new one is
# learned. (`train` updates the model it is given in place, which is what lets the callback
# score it.)
#
# On the command line this is `plotgpt prepare data/sample/ghost-stories.txt --tokenizer-from
# checkpoints/book` followed by `plotgpt finetune --checkpoint checkpoints/book --data
# data/prepared/ghost-stories`, which picks the same kind of schedule.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.plots import LiveLossPlot

# A tenth of the base run's peak lr and no average of the weights (a 0.998 average would hardly
# move in 60 steps); bench/LOG.md (2026-12-04) has what a third of the lr did.
ft_cfg = replace(base_train_cfg, lr=base_train_cfg.lr / 10, warmup_iters=2 if SMOKE else 10,
                 max_iters=20 if SMOKE else 60, eval_interval=5, batch_size=16, ema_decay=0.0,
                 max_minutes=0, patience=0, keep_last=1, sample_tokens=0)
ghost_run = paths.checkpoints_root() / "book-ghost"
start = checkpoint.load(base_path, device=device)  # a fresh copy: train() changes its model in place
print(f"fine-tuning: peak lr {ft_cfg.lr:.2g} (base run {base_train_cfg.lr:g}), warmup {ft_cfg.warmup_iters}, "
      f"{ft_cfg.max_iters} steps of {ft_cfg.batch_size} x {start.config.block_size} tokens")

live = LiveLossPlot(title=f"chapter 4's model, fine-tuned on {n_train} ghost stories")
track = []  # (step, bits per byte on each validation set) at every evaluation


def on_record(rec):
    live(rec)
    if rec["kind"] == "eval":
        track.append((rec["step"], *(evaluate.full_loss(start.model, d, device=device)["bpb"]
                                     for d in corpora.values())))


result = train(ghost, start.config, ft_cfg, ghost_run, init_from=start, overwrite=True, progress=False,
               callback=on_record, log=lambda *_: None)
tuned = checkpoint.load(ghost_run, device=device)  # best.safetensors: lowest ghost-story val loss
print(f"{result.step} steps; best ghost-story val loss {result.best_val:.3f} nats/token at step {tuned.info['step']}")

# %% [markdown]
# The ghost-story validation loss (orange) starts where the base model stands, about 5.45 nats
# per token, and drops only a little, to 5.303 at step 15: most of what a ghost story needs, the
# model already had. After that the training loss keeps falling (to about 4.2) while the
# validation loss turns up: the 138 stories are being learned by heart.
# `best.safetensors` keeps the weights from the best validation step, and those are what we
# judge below.
#
# ## 5. What it gained, and what it forgot
#
# Now the same exact bits per byte on both validation sets: for the base model, for the best
# fine-tuned checkpoint, and for the weights at the end of the run.

# %%
best_bpb = {name: evaluate.full_loss(tuned.model, d, device=device)["bpb"] for name, d in corpora.items()}
last_bpb = {name: evaluate.full_loss(start.model, d, device=device)["bpb"] for name, d in corpora.items()}
best_step = tuned.info["step"]
print(f"{'validation set':15} {'base':>7} {f'step {best_step} (best)':>16} {f'step {result.step} (last)':>16}")
for name in corpora:
    print(f"{name:15} {before[name]:7.3f} {best_bpb[name]:10.3f} ({best_bpb[name] - before[name]:+.3f})"
          f" {last_bpb[name]:8.3f} ({last_bpb[name] - before[name]:+.3f})")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
steps = [s for s, *_ in track]
for i, (name, color) in enumerate(zip(corpora, ["tab:blue", "tab:purple"])):
    ax1.plot(steps, [row[i + 1] for row in track], "o-", ms=3, color=color, label=f"{name} (val)")
    ax1.axhline(before[name], color=color, ls=":", lw=1)
ax1.axvline(best_step, color="grey", ls="--", lw=1, label="best ghost-story checkpoint")
ax1.set_xlabel("fine-tuning step")
ax1.set_ylabel("bits per byte (dotted: base model)")
ax1.set_title("Both validation sets during fine-tuning")
ax1.legend(fontsize=8)
ax1.grid(alpha=0.3)
x = np.arange(len(corpora))
for j, (label, vals, color) in enumerate([(f"step {best_step} (best)", best_bpb, "tab:purple"),
                                          (f"step {result.step} (last)", last_bpb, "plum")]):
    bars = ax2.bar(x + (j - 0.5) * 0.35, [vals[n] - before[n] for n in corpora], 0.35, label=label, color=color)
    ax2.bar_label(bars, fmt="%+.3f", fontsize=8, padding=2)
ax2.axhline(0, color="black", lw=0.8)
ax2.set_xticks(x, [f"{n} (val)" for n in corpora])
ax2.set_ylabel("change vs base (bits per byte)")
lim = max(abs(v[n] - before[n]) for v in (best_bpb, last_bpb) for n in corpora) * 1.4
ax2.set_ylim(-lim, lim)
ax2.set_title("Gained (below 0) and forgotten (above 0)")
ax2.legend(fontsize=7, loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# Three phases show up, and they are worth telling apart.
#
# 1. **Early on, both improve.** 138 new plots are more data of nearly the same kind (the
#    sample corpus has its own share of hauntings), and a model trained on 1,098 plots is
#    starved of data: fresh text of a similar kind helps it generalise a little.
# 2. **Then the curves part.** Ghost stories stay below where the base model started, while
#    the general plots climb past it after step 15, and end 0.043 bits per byte worse than the
#    base model: every step spent on the new corpus moves weights away from what served the
#    old one, and nothing in the loss asks the model to keep them. That is *catastrophic
#    forgetting*, in numbers.
# 3. **Meanwhile the ghost-story loss turns up too**, after its best step: the model is
#    memorising 138 stories rather than learning ghost stories in general (its training loss,
#    in the plot above, keeps falling).
#
# Keeping the best checkpoint by ghost-story loss stops before the forgetting here: at step 15
# the general plots are still 0.007 bits per byte better than the base model. On a bigger
# second corpus the best point comes later, and the forgetting with it. The usual remedies are
# to mix some of the old corpus into the new one, lower the learning rate further, or stop
# earlier. (With only 16 validation stories, about 3,800 tokens, expect some noise in the
# purple curve.) Judged by the old validation set alone the last weights look like a
# failure; judged by the new one alone the forgetting would go unnoticed. Measure both.

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
    ids = ids.to(next(model.parameters()).device)
    out_logits, out_targets = [], []
    for pos in range(0, len(ids) - 1, T):
        y = ids[pos + 1:pos + T + 1][None]  # (1, t)
        logits, _ = model(ids[pos:pos + y.size(1)][None], y)  # (1, t, V)
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
# The minimum sits at $T = 1.0$, where training put it: sharpening or flattening the
# distribution only makes it a worse description of real ghost stories. (A minimum a little
# above 1 would mean the model is over-confident on text it has not seen, a mild symptom of
# the memorising we saw during fine-tuning; the step-15 checkpoint shows none on this grid.)
# The right panel is sobering: a small model trained for minutes is rarely sure, its favourite
# token is the real one only 22 % of the time, and even top-50 shuts out 40 % of what the
# real text goes on to say.
#
# So every setting we are about to try is, strictly, a *worse* model of ghost stories. We use
# them anyway because a model of text and a writer of text want different things: the true
# distribution has a long tail of individually unlikely tokens, and a long sample that draws from
# it will, sooner or later, draw something absurd and build on it. Lowering $T$ and cutting the
# tail trade fidelity for coherence. Bits per byte cannot see coherence; for that we need to
# look at samples — and to count in them what we would otherwise only eyeball.

# %% [markdown]
# ## 7. Yardsticks for samples
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
#
# **Made-up words.** The opposite failure: an undertrained or overfitted model, or one sampled
# too hot, strings together word pieces that make no word ("strancase", "didentery"). The
# *made-up-word rate* is the share of a sample's lowercase words (letters and apostrophes, two
# letters or more; a possessive 's dropped) that never occur anywhere in the training text, in
# any case ("View" there makes "view" known). Capitalised words of the sample are left out on
# purpose: a plot model should invent names. What it catches is sub-word noise; what it misses
# is a real word in the wrong place ("she drinks the staircase" scores 0 %), so it is a floor on
# nonsense, not a measure of sense.

# %%
import re


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


def all_words(text):
    """Words: letters with apostrophes inside them (curly ones straightened), a possessive 's dropped."""
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", text.replace("\u2019", "'"))
    return [w[:-2] if w.endswith("'s") else w for w in words]


def my_words(text):
    """The words judged: lowercase ones of two letters or more."""
    return [w for w in all_words(text) if len(w) >= 2 and w.islower()]


def made_up_share(text, known_words):
    """Share of the lowercase words of `text` never seen in training."""
    words = my_words(text)
    return 0.0 if not words else sum(w not in known_words for w in words) / len(words)


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
known_words = {w.lower() for w in all_words(train_text)}  # "View" in training makes "view" known
print(", ".join(f"{len(docs)} {name}" for name, docs in seen_docs.items()),
      f"= {len(train_text.split()):,} words, {len(known_words):,} distinct")

# %%
# NBVAL_CHECK_OUTPUT
index, my_index = evaluate.NoveltyIndex(train_text), MyNovelty(train_text)
recalled = " ".join(seen_docs["ghost stories"][3].split()[10:40])  # 30 words lifted from a training plot
tests = {
    "loop": "the vampire attacks the village and the vampire attacks the village and the vampire attacks",
    "fresh": "A retired clockmaker in Lisbon teaches his parrot to recite the shipping forecast.",
    "recalled": f"It was a dark night. {recalled} Nobody knew why.",
    "rambling": "Oregian Counter sails the strancase to a fisher of winds, bribed by didentery.",
    "wrong": "The widow drinks the staircase and marries a lighthouse.",
}
assert known_words == index.vocabulary and seen_docs["general plots"] == plots.documents()
for name, text in tests.items():
    score = index.score(text)
    assert my_repetition(text) == evaluate.repetition(text)
    assert abs(my_index.copied_share(text) - score["copied_8gram_share"]) < 1e-12
    assert my_index.longest_copy(text) == score["longest_copied_text"]
    assert my_words(text) == evaluate.lowercase_words(text)
    assert made_up_share(text, known_words) == evaluate.made_up_words([text], index.vocabulary)["made_up_rate"]
    copies = score["copied_8gram_share"] > 0
    print(f"{name:9} repetition {my_repetition(text):.2f}   copies the training text: {str(copies):5}   "
          f"made-up words {made_up_share(text, known_words):.0%}")
assert len(index.score(tests["recalled"])["longest_copied_text"].split()) >= 30
print("matches helpers.evaluate: repetition, NoveltyIndex and made_up_words")

# %% [markdown]
# The looping sentence scores high on repetition; the lifted passage is caught word for word;
# the rambling one makes up words, and the wrong one, nonsense made of real words, passes.
# (The rambling one's 30 % is three words of ten: "strancase", "didentery" and "fisher", a
# real word that the training text never uses. Rare real words count too.)
# `helpers.evaluate.NoveltyIndex` is the version to use on real corpora: it hashes the 8-grams
# into a sorted numpy array (compact even for millions of them) and finds the longest copy with
# two pointers instead of our nested loop.

# %% [markdown]
# ## 8. The trade-off, measured
#
# Now the sweep: the fine-tuned model writes several plots (from an empty prompt, so it also
# invents the title) at each temperature and top-k, and we average the yardsticks per setting.

# %%
# NBVAL_IGNORE_OUTPUT
N_SAMPLES, N_TOKENS = (2, 48) if SMOKE else (6, 200)
sweep_temps, sweep_ks = [0.5, 0.8, 1.0, 1.3], [10, 50, None]


def judge(ck, temperature, top_k):
    """Sample N_SAMPLES plots and score them: the texts, and the mean of each yardstick."""
    texts = generate(ck, "", N_SAMPLES, SampleSettings(N_TOKENS, temperature=temperature, top_k=top_k, seed=7))
    scores = [index.score(s) for s in texts]
    return texts, {"repetition": np.mean([evaluate.repetition(s) for s in texts]),
                   "made_up": np.mean([made_up_share(s, known_words) for s in texts]),
                   "copied": np.mean([s["copied_8gram_share"] for s in scores]),
                   "longest": np.mean([s["longest_copied_words"] for s in scores])}


samples, results = {}, {}
for k in sweep_ks:
    for t in sweep_temps:
        samples[t, k], results[t, k] = judge(tuned, t, k)

print(f"{N_SAMPLES} samples of up to {N_TOKENS} tokens per setting; means:")
print(f"{'top-k':>6} {'T':>4} {'repetition':>11} {'made-up words':>14} {'copied 8-grams':>15} {'longest copy':>13}")
for (t, k), r in results.items():
    print(f"{str(k):>6} {t:>4} {r['repetition']:>11.1%} {r['made_up']:>14.1%} {r['copied']:>15.1%} "
          f"{r['longest']:>8.1f} words")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for key, ax, label, title in [("repetition", axes[0], "repeated word 4-grams", "Low temperature loops…"),
                              ("made_up", axes[1], "words never seen in training", "…high temperature rambles")]:
    for k, color in zip(sweep_ks, ["tab:red", "tab:blue", "tab:green"]):
        ax.plot(sweep_temps, [results[t, k][key] for t in sweep_temps], "o-", color=color,
                label=f"top-k {k}" if k else "no top-k")
    ax.set_xlabel("temperature")
    ax.set_ylabel(label)
    ax.set_xticks(sweep_temps)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
fig.suptitle(f"The fine-tuned model, {N_SAMPLES} samples per setting", y=1.0)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the curves left to right. At low temperature the model keeps to its favourite paths,
# and for a small model the favourite path is often a loop back to a phrase it just wrote: at
# $T = 0.5$ about 4–6 % of the 4-grams repeat, whatever the top-k, and from 0.8 up under 1 %.
# Raising the temperature breaks the loops — and, without top-k, starts the rambling: the
# model picks unlikely word pieces and glues them into words no plot has ever contained, 3.7 %
# of its words at $T = 0.8$, 8.3 % at 1.0 and 16.2 % at 1.3. Top-k matters more the hotter
# the sampling, because it is the only thing keeping the long tail out: with k = 10 or 50 the
# made-up words stay near 1 % or below at every temperature.
# Samples this few are noisy, so trust the trend more than any one point; the sweet spot sits
# in between, which is why `SampleSettings` defaults to $T = 0.8$ with top-k 50, where
# repetition and made-up words are both 0.3 %.
#
# The copy columns of the table are the quiet surprise: this model copies nothing. Its longest
# verbatim runs average about three to six words, stock phrases any plot might contain
# ("is found dead in the"). After a few minutes of training it is not strong enough to
# recite — its problem is coherence, not recall.
#
# One sample from each end, to see what the numbers mean:

# %%
# NBVAL_IGNORE_OUTPUT
for t, k in [(0.5, 10), (1.3, None)]:
    text = samples[t, k][0]
    print(f"--- temperature {t}, top-k {k}: repetition {evaluate.repetition(text):.0%}, "
          f"made-up words {made_up_share(text, known_words):.0%} ---\n{text}\n")

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
enc = tuned.tokenizer
prompt_ids = torch.tensor([[enc.eot_token, *enc.encode_ordinary("Title:")]], device=device)  # (1, T)
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
    print(f"--- greedy, repetition penalty {penalty}: repetition {evaluate.repetition(text):.0%}, "
          f"made-up words {made_up_share(text, known_words):.0%} ---")
    print(text, "\n")

# %% [markdown]
# Greedy decoding finds the loop and never leaves it; the repetition figure (45 %) says so
# before you read a word. The penalty breaks the loop (2 % at 1.2), but bluntly: it also
# penalises "the", "of" and the full stop, which a plot needs again and again, so a strong
# penalty pushes the model toward broken grammar and sense ("The village is found dead on the
# roof at dawn" at 1.5). The made-up-word rate stays at 0 % at all three penalties: the damage
# is real words in the wrong places, which it cannot see. A mild penalty (1.1–1.3) together
# with sampling is the usual recipe: `--repetition-penalty` on the command line,
# `SampleSettings(repetition_penalty=...)` in Python.

# %% [markdown]
# ## 10. Spotting copied passages
#
# Our model copies nothing — but a detector that has never fired is untested. So let us build a
# model that *does* copy, on purpose: take the fine-tuned model and train it hard on just three
# ghost stories, with chapter 4's loop by hand (section 8, here without its schedule or clipping),
# until it knows them by heart.

# %%
# NBVAL_IGNORE_OUTPUT
seed_everything(0)
memo = checkpoint.load(ghost_run, device=device)  # a fresh copy of the fine-tuned model, to spoil
enc, T = memo.tokenizer, memo.config.block_size
three = seen_docs["ghost stories"][:3]
ids = [t for doc in three for t in [enc.eot_token, *enc.encode_ordinary(doc)]]  # each story opens with <|endoftext|>
ids = torch.tensor(ids, device=device)  # (N,)
optimizer = torch.optim.AdamW(memo.model.parameters(), lr=1e-3)
memo.model.train()
for step in range(30 if SMOKE else 80):
    ix = torch.randint(len(ids) - T - 1, (8,))  # 8 random windows
    x = torch.stack([ids[i:i + T] for i in ix])  # (8, T)
    y = torch.stack([ids[i + 1:i + T + 1] for i in ix])  # (8, T)
    _, loss = memo.model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
print(f"{len(ids)} tokens of {', '.join(d.splitlines()[0][7:] for d in three)}; training loss now {loss.item():.2f}")

memo_samples, memo_results = {}, {}
for t in sweep_temps:
    memo_samples[t], memo_results[t] = judge(memo, t, 50)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for key, ax, label in [("copied", axes[0], "8-grams copied from training text"),
                       ("longest", axes[1], "longest copied run (words)")]:
    ax.plot(sweep_temps, [results[t, 50][key] for t in sweep_temps], "o-", color="tab:blue",
            label="fine-tuned model")
    ax.plot(sweep_temps, [memo_results[t][key] for t in sweep_temps], "s--", color="tab:red",
            label="memoriser (3 stories by heart)")
    ax.set_xlabel("temperature (top-k 50)")
    ax.set_ylabel(label)
    ax.set_xticks(sweep_temps)
    ax.grid(alpha=0.3)
axes[0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
axes[0].set_title("Low temperature copies…")
axes[1].set_title("…in long verbatim runs")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The detector fires, and the temperature trend is the one we expected: a model that has stored
# text recites it most faithfully at low temperature, where it follows its most likely path
# (nearly all of its 8-grams are copied at $T = 0.5$ and 0.8), and less as the temperature
# shakes it off that path (about 60 % at 1.3, in runs of about 40 words). Now the forensic
# part: take the sample with the longest verbatim run, and find that run in the training
# documents.

# %%
# NBVAL_IGNORE_OUTPUT
all_samples = [(t, s) for t, texts in memo_samples.items() for s in texts]
t, worst = max(all_samples, key=lambda ts: index.score(ts[1])["longest_copied_words"])
span = index.score(worst)["longest_copied_text"]
print(f"worst sample (temperature {t}): a run of {len(span.split())} words copied verbatim\n")
print(worst[:700], "...\n" if len(worst) > 700 else "\n")

found = [(name, doc) for name, docs in seen_docs.items() for doc in docs
         if span and f" {span} " in f" {' '.join(doc.split())} "]
print(f"the run occurs in {len(found)} training document(s):")
for name, doc in found[:3]:
    flat = " ".join(doc.split())
    at = flat.index(span)
    print(f"\n  {doc.splitlines()[0]}   ({name})")
    before_span, after_span = flat[max(at - 120, 0):at], flat[at + len(span):at + len(span) + 120]
    print(f"  {'…' * (at > 120)}{before_span}[[{span}]]{after_span}{'…' * (len(flat) > at + len(span) + 120)}")

# %% [markdown]
# Inside the double brackets is the sample's run; around it, the training plot it came from.
# A long run found in exactly one document is recall, not writing (a short run found in many
# documents would just be a common phrase). Notice too how this sample was written: not as a
# collage but as a recitation, one story from its title on, 143 words word for word, nearly
# all of the 200 tokens it was allowed.
#
# On a 154-story corpus a model that trains long enough will get there; on the reference's
# 1.1 MB, and far more on a full Wikipedia dump, it takes much longer, which is the best
# argument for more data. `plotgpt evaluate` prints these same figures — val bits per byte,
# repetition, copied share, the longest copy and the made-up-word rate — for any checkpoint.

# %% [markdown]
# ## What we built
#
# - **Fine-tuning** as the training loop started from a checkpoint, with the base model's
#   tokenizer (a mismatch is refused, because ids would mean different strings) and a gentler,
#   shorter schedule: `helpers.train.train(..., init_from=...)`, or `plotgpt finetune`.
# - **Bits per byte** over a whole validation split, comparable across corpora and tokenizers
#   (`helpers.evaluate.full_loss`), and with it catastrophic forgetting in numbers.
# - Yardsticks for samples: **repetition** (`helpers.evaluate.repetition`), **novelty**
#   (`helpers.evaluate.NoveltyIndex`) and made-up words, and what they say about temperature,
#   top-k, greedy decoding and the repetition penalty — down to where exactly a copied passage
#   came from.
#
# Next, chapter 6 puts the sampling knobs in your hands: the next-token distribution, top-p,
# streaming, and a panel where you can write with the base model or the ghost-story one.
