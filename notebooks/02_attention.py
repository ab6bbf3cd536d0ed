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
# # Chapter 2: Attention
#
# Chapter 1 turned movie plots into a stream of token ids. A language model reads such a stream
# and, at every position, predicts the next token. To do that well, the vector at position $t$
# must gather information from the tokens before it: *who* "she" is, *which* door was nailed shut.
# **Self-attention** is the mechanism that does the gathering, and it is the one part of a GPT
# that lets tokens talk to each other (everything else works on each position alone).
#
# In this chapter we build causal self-attention from scratch, one line at a time, on a real
# sentence from our corpus:
#
# 1. one attention head by hand: queries, keys, values, $QK^\top/\sqrt{d}$, the causal mask, softmax;
# 2. why we divide by $\sqrt{d}$ (a small experiment where softmax saturates without it);
# 3. multi-head attention as a reshape, and PyTorch's fused `scaled_dot_product_attention`;
# 4. a check that our version computes exactly what `helpers.model.CausalSelfAttention` computes;
# 5. causality, tested: changing a future token never changes the past;
# 6. what the heads of a *trained* PlotGPT actually look at, as heatmaps.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %%
import math
import re

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
from torch.nn import functional as F

from helpers import book, paths
from helpers.corpus import read_documents
from helpers.device import seed_everything

seed_everything(1337)
torch.set_printoptions(precision=2, sci_mode=False, linewidth=140)

data = book.sample_data()  # the embedded corpus, prepared with its domain BPE (chapter 1)
enc = data.tokenizer
print(f"tokenizer {enc.name}: {enc.n_vocab:,} ids")

# %% [markdown]
# ## 1. A sentence, as vectors
#
# We take the first sentence of 8 to 12 tokens in the sample corpus: short enough that every
# matrix below fits on the screen. The first plot has no sentence that short, so this one comes
# from the second.

# %%
docs = list(read_documents(paths.SAMPLE_CORPUS))
sentences = [s for d in docs for s in re.split(r"(?<=[.!?])\s+", d.split("Plot:", 1)[1].strip())]
sentence = next(s for s in sentences if 8 <= len(enc.encode_ordinary(s)) <= 12)  # the first short one
ids = enc.encode_ordinary(sentence)
tokens = [enc.decode([i]) for i in ids]
T = len(ids)
print(repr(sentence))
print(T, "tokens:", tokens)

# %% [markdown]
# A GPT first looks each token up in an embedding table and adds a second learned vector for its
# position (chapter 3 builds that part properly). Here both tables are random: the mechanics of
# attention do not care whether the vectors mean anything yet. Training (chapter 4) is what makes
# them meaningful. We use a small width $C = 32$ so that the numbers stay readable.

# %%
C = 32  # embedding width (n_embd)
token_table = torch.randn(enc.n_vocab, C)  # (V, C): one row per token id
position_table = torch.randn(64, C)  # (block_size, C): one row per position

idx = torch.tensor([ids])  # (B, T) with B = 1: a batch of one sequence
x = token_table[idx] + position_table[torch.arange(T)]  # (B, T, C)
print("idx", tuple(idx.shape), "-> x", tuple(x.shape))

# %% [markdown]
# ## 2. One attention head, by hand
#
# Every position emits three vectors, each a linear map of its embedding:
#
# * a **query** $q_t$: "what am I looking for?"
# * a **key** $k_s$: "what do I contain?"
# * a **value** $v_s$: "what do I pass on if you pick me?"
#
# Position $t$ scores every position $s$ by the dot product $q_t \cdot k_s$ (large when the
# query and the key point the same way), turns the scores into weights with a softmax, and
# outputs the weighted average of the values. For all positions at once, with
# $Q = XW_Q$, $K = XW_K$, $V = XW_V$:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}} + M\right) V$$
#
# where $d$ is the head size and $M$ is the causal mask (0 where allowed, $-\infty$ where not).
# We take it apart one step at a time.

# %%
hs = 16  # head size d
W_q = torch.randn(C, hs) / math.sqrt(C)  # (C, hs); / sqrt(C) keeps q, k, v at unit scale
W_k = torch.randn(C, hs) / math.sqrt(C)  # (C, hs)
W_v = torch.randn(C, hs) / math.sqrt(C)  # (C, hs)

q = x @ W_q  # (B, T, C) @ (C, hs) -> (B, T, hs)
k = x @ W_k  # (B, T, hs)
v = x @ W_v  # (B, T, hs)
scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
print("q, k, v", tuple(q.shape), "  scores", tuple(scores.shape))

# %% [markdown]
# `scores[0, t, s]` is how much token $t$ wants to read token $s$, for *every* pair, the future
# included. But a language model predicts token $t+1$ from tokens $\le t$; if position $t$ could
# read position $t+1$ during training, it would simply copy the answer and learn nothing useful.
# The **causal mask** forbids it: a lower-triangular matrix of allowed pairs.

# %%
mask = torch.tril(torch.ones(T, T, dtype=torch.bool))  # (T, T): True on and below the diagonal
print(mask.int())

# %% [markdown]
# Row $t$ has ones in columns $0..t$: position 0 sees only itself, the last position sees the
# whole sentence. We set the forbidden scores to $-\infty$, so that after the softmax
# $e^{-\infty} = 0$ gives them exactly zero weight. The softmax then turns each row into
# non-negative weights that sum to one:
#
# $$\mathrm{softmax}(z)_s = \frac{e^{z_s}}{\sum_{s'} e^{z_{s'}}}$$

# %%
masked = scores.masked_fill(~mask, float("-inf"))  # (B, T, T): the future is -inf
att = F.softmax(masked, dim=-1)  # (B, T, T): normalise each row (over the keys s)
print(att[0])

# %%
# NBVAL_CHECK_OUTPUT
assert torch.allclose(att.sum(dim=-1), torch.ones(1, T))
assert (att[0][~mask] == 0).all()
print("every row of the attention matrix sums to 1, and every weight above the diagonal is 0")

# %% [markdown]
# The three stages side by side, with the tokens on the axes (rows: the token that reads;
# columns: the token that is read):

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
panels = [(scores[0], "1. scores $QK^T/\\sqrt{d}$"), (masked[0], "2. causal mask: future = $-\\infty$ (white)"),
          (att[0], "3. softmax: each row sums to 1")]
for ax, (m, title) in zip(axes, panels):
    im = ax.imshow(m.masked_fill(m.isinf(), float("nan")), cmap="viridis")
    ax.set_xticks(range(T), tokens, rotation=90)
    ax.set_yticks(range(T), tokens)
    ax.set_xlabel("key position s (read)")
    ax.set_ylabel("query position t (reads)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle(f"One attention head on {sentence!r}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Finally each position outputs the weighted sum of the values it may see,
# $\mathrm{out}_t = \sum_{s \le t} a_{ts} v_s$: the matrix product `att @ v` does it for every $t$
# at once. Spelled out as a loop for one position, to see that nothing else is going on:

# %%
out = att @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
print("out", tuple(out.shape))

# %%
# NBVAL_CHECK_OUTPUT
t = T - 1
by_hand = sum(att[0, t, s] * v[0, s] for s in range(t + 1))  # (hs,)
assert torch.allclose(out[0, t], by_hand, atol=1e-6)
print("out[t] == sum over s <= t of att[t, s] * v[s]")

# %% [markdown]
# Put together as one function (we reuse it below):

# %%
def one_head(x, W_q, W_k, W_v):
    """Causal self-attention with a single head. x: (B, T, C) -> output (B, T, hs), weights (B, T, T)."""
    T, hs = x.size(1), W_q.size(1)
    q, k, v = x @ W_q, x @ W_k, x @ W_v  # 3 x (B, T, hs)
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, T, T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))  # (T, T)
    att = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, T, T)
    return att @ v, att  # (B, T, hs), (B, T, T)


# %% [markdown]
# ## 3. Why divide by $\sqrt{d}$?
#
# If the components of $q$ and $k$ are independent with mean 0 and variance 1, their dot product
# $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1: its variance is $d$,
# its typical size $\sqrt{d}$. A head of size 64 would produce scores of size ~8, and the softmax
# of numbers that far apart is nearly one-hot: $e^{8}/e^{0} \approx 3000$. Dividing by $\sqrt{d}$
# brings the variance back to 1 whatever the head size. First the variance, measured:

# %%
for d in (4, 16, 64, 256, 1024):
    qs, ks = torch.randn(10_000, d), torch.randn(10_000, d)
    dots = (qs * ks).sum(-1)  # (10000,) dot products
    print(f"d = {d:4d}   var(q.k) = {dots.var():7.1f}   var(q.k / sqrt(d)) = {(dots / math.sqrt(d)).var():.2f}")

# %% [markdown]
# Now what it does to attention. For each head size we draw a query and 12 keys, and measure two
# things over many draws: the largest softmax weight (1.0 means the head reads only one token),
# and the size of the softmax's gradient. The softmax Jacobian is $J = \mathrm{diag}(p) - pp^\top$;
# when $p$ is one-hot, $J = 0$: no gradient flows back into the queries and keys, and the head
# stops learning. That, more than the sharpness itself, is why the scale matters.

# %%
dims = [2**i for i in range(1, 12)]
n_keys, n_trials = 12, 300 if SMOKE else 2000
curves = {"unscaled: softmax(q.k)": ([], []), "scaled: softmax(q.k / sqrt(d))": ([], [])}
for d in dims:
    q_, k_ = torch.randn(n_trials, 1, d), torch.randn(n_trials, n_keys, d)
    dots = (q_ * k_).sum(-1)  # (n_trials, n_keys)
    for (name, (top, grad)), z in zip(curves.items(), (dots, dots / math.sqrt(d))):
        p = F.softmax(z, dim=-1)  # (n_trials, n_keys)
        jac = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (n_trials, n_keys, n_keys)
        top.append(p.max(-1).values.mean().item())
        grad.append(jac.norm(dim=(1, 2)).mean().item())

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for name, (top, grad) in curves.items():
    ax1.plot(dims, top, "o-", label=name)
    ax2.plot(dims, grad, "o-", label=name)
ax1.axhline(1 / n_keys, color="gray", ls=":", label=f"uniform (1/{n_keys})")
ax1.set(xscale="log", xlabel="head size d", ylabel="mean of the largest attention weight",
        title="Without the scale, attention turns one-hot")
ax2.set(xscale="log", yscale="log", xlabel="head size d", ylabel="mean ||softmax Jacobian||",
        title="... and its gradient vanishes")
for ax in (ax1, ax2):
    ax.legend()
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# With the scale, both curves are flat: a head of size 8 and a head of size 1024 start training
# in the same regime. (At initialisation, that is: training is free to make scores large where a
# sharp pattern helps, and in section 7 one trained head is quite sharp.)
#
# ## 4. Many heads: the same thing, in parallel
#
# One head computes one weighted average per position, so it can follow one kind of relation at a
# time. GPT runs `n_head` heads side by side, each on its own slice of size `hs = C // n_head`, and
# concatenates their outputs: one head may follow the previous word while another finds where the
# plot began. The cost is the same as one big head, because it is the same matrix
# multiplications with the channels split up.
#
# In code the split is only a reshape. GPT-2 computes $Q$, $K$ and $V$ for all heads with **one**
# linear layer `c_attn` of shape $C \to 3C$, cuts its output in three, and views each piece as
# `(B, T, nh, hs)`; the transpose to `(B, nh, T, hs)` puts the heads next to the batch dimension,
# so the batched matmul `q @ k.transpose(-2, -1)` runs all heads at once. A last linear layer
# `c_proj` mixes the heads' outputs back together. Step by step, with the shapes:

# %%
n_head = 4
hs = C // n_head  # 8 channels per head
B = 1
c_attn = nn.Linear(C, 3 * C)  # q, k and v for all heads in one matmul
c_proj = nn.Linear(C, C)  # mixes the heads' outputs

qkv = c_attn(x)  # (B, T, 3C)
q, k, v = qkv.split(C, dim=2)  # 3 x (B, T, C)
print("q          ", tuple(q.shape), "(B, T, C)")
q = q.view(B, T, n_head, hs)  # (B, T, nh, hs): cut the channels into heads
print("view       ", tuple(q.shape), "(B, T, nh, hs)")
q = q.transpose(1, 2)  # (B, nh, T, hs): heads become a batch dimension
print("transpose  ", tuple(q.shape), "(B, nh, T, hs)")
k = k.view(B, T, n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
v = v.view(B, T, n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, hs) @ (B, nh, hs, T) -> (B, nh, T, T)
att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)  # (B, nh, T, T); the mask broadcasts
print("att        ", tuple(att.shape), "(B, nh, T, T): one T x T pattern per head")
y = att @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, nh, hs) -> (B, T, C): heads side by side
print("heads glued", tuple(y.shape), "(B, T, C)")
y = c_proj(y)  # (B, T, C)

# %% [markdown]
# To be sure the reshapes do what the prose says, compute the same thing the slow way: four
# separate single heads (our `one_head` from above), each with its own slice of `c_attn`'s weight,
# concatenated. `nn.Linear` stores its weight as `(out, in)`, hence the transposes.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    Wq, Wk, Wv = c_attn.weight.split(C, dim=0)  # 3 x (C, C), as (out, in)
    bq, bk, bv = c_attn.bias.split(C, dim=0)  # 3 x (C,)
    outs = []
    for h in range(n_head):
        sl = slice(h * hs, (h + 1) * hs)  # this head's channels
        # a bias is a linear map of the input with an extra constant-1 feature: append it to x
        x1 = torch.cat([x, torch.ones(B, T, 1)], dim=-1)  # (B, T, C + 1)
        W = [torch.cat([Wm[sl].T, bm[sl][None]], dim=0) for Wm, bm in ((Wq, bq), (Wk, bk), (Wv, bv))]  # (C+1, hs)
        outs.append(one_head(x1, *W)[0])  # (B, T, hs)
    slow = c_proj(torch.cat(outs, dim=-1))  # (B, T, C)
    assert torch.allclose(slow, y, atol=1e-5)
print("multi-head attention == n_head single heads on slices of the weights, concatenated")

# %% [markdown]
# ### The fused kernel
#
# Materialising the `(B, nh, T, T)` attention matrix costs memory quadratic in $T$. PyTorch's
# `F.scaled_dot_product_attention(q, k, v, is_causal=True)` computes the same
# $\mathrm{softmax}(QK^\top/\sqrt{d} + M)V$ in one fused call (FlashAttention and memory-efficient
# kernels on GPUs, which never store the full matrix). It must give the same numbers as our
# explicit version:

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    y_explicit = att @ v  # (B, nh, T, hs), from the step-by-step cell
    y_fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
assert torch.allclose(y_explicit, y_fused, atol=1e-6)
print("F.scaled_dot_product_attention(is_causal=True) == softmax(q k^T / sqrt(hs) + mask) v")

# %% [markdown]
# ## 5. Our module, checked against the library
#
# Here is the whole layer as a module, written out explicitly. The parameter names `c_attn` and
# `c_proj` are GPT-2's (and the library's), so the two modules share one `state_dict` format.
# `causal=False` turns the mask off: we will need it in a moment to see what the mask buys.
# `qk_norm=True` first rescales every query and key to unit root-mean-square (**QK-norm**, from
# the nanoGPT speedruns). A score $q \cdot k / \sqrt{d}$ is then at most $\sqrt{d}$ in size however
# large the weights grow, so the softmax cannot saturate. It matters most for big models at high
# learning rates; on plots-bench it gained nothing measurable (round 5 in `bench/LOG.md`), so the
# library no longer has it: it lives here, as an aside, checked against torch's `F.rms_norm`.

# %%
class MyCausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool = True, rotary=None, qk_norm: bool = False):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head, self.n_embd, self.qk_norm = n_head, n_embd, qk_norm
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # x -> q, k, v for all heads
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)  # heads -> back into the residual stream
        self.rotary = rotary  # rotary positions (chapter 3), or None for GPT-2's position table

    def forward(self, x, causal=True, return_att=False):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        if self.qk_norm:  # QK-norm: every query and key rescaled to unit RMS, so no score can blow up
            eps = torch.finfo(q.dtype).eps  # F.rms_norm's default
            q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps)  # (B, nh, T, hs)
            k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + eps)
        if self.rotary is not None:  # a model with rotary positions turns q and k by their positions
            q, k = self.rotary(q), self.rotary(k)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
        if causal:
            mask = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))  # (T, T)
            att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)  # (B, nh, T, T), rows sum to 1
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        y = self.c_proj(y)  # (B, T, C)
        return (y, att) if return_att else y


# %% [markdown]
# The library's `helpers.model.CausalSelfAttention` is the version the rest of the book uses (and
# its tests cover). It uses the fused kernel (except in bf16 on a CPU, where measurement showed
# this written-out version trains 2-4 times faster; see the Performance page) and has a dropout
# for training. With dropout 0, in
# eval mode, and our module loaded with its weights, the two must agree to float precision, here
# on a batch of two random sequences:

# %%
# NBVAL_CHECK_OUTPUT
from helpers.config import ModelConfig
from helpers.model import CausalSelfAttention

seed_everything(0)
cfg = ModelConfig(vocab_size=enc.n_vocab, block_size=64, n_layer=1, n_head=4, n_embd=C, dropout=0.0)
theirs = CausalSelfAttention(cfg).eval()
mine = MyCausalSelfAttention(cfg.n_embd, cfg.n_head).eval()
mine.load_state_dict(theirs.state_dict())  # same c_attn / c_proj weights and biases

xb = torch.randn(2, 20, C)  # (B, T, C)
with torch.no_grad():
    assert torch.allclose(mine(xb), theirs(xb), atol=1e-6)
    assert torch.allclose(mine(x), theirs(x), atol=1e-6)  # and on our sentence
print("matches helpers.model.CausalSelfAttention")
# QK-norm by hand is torch's F.rms_norm, and does what it promises: bigger q and k weights change nothing
qb = torch.randn(2, 4, 20, C // 4)  # (B, nh, T, hs)
eps = torch.finfo(qb.dtype).eps
assert torch.allclose(qb * torch.rsqrt(qb.pow(2).mean(-1, keepdim=True) + eps), F.rms_norm(qb, (C // 4,)), atol=1e-6)
qk_mine = MyCausalSelfAttention(C, 4, qk_norm=True).eval()
with torch.no_grad():
    before = qk_mine(xb)
    qk_mine.c_attn.weight[: 2 * C] *= 7.0  # the q and k rows (and their biases); v untouched
    qk_mine.c_attn.bias[: 2 * C] *= 7.0
    assert torch.allclose(qk_mine(xb), before, atol=1e-4)
print("QK-norm by hand matches F.rms_norm, and 7x the q and k weights leave the output as it was")

# %% [markdown]
# ## 6. Causality, tested
#
# The mask is a promise: the output at position $t$ depends on tokens $0..t$ only. That promise
# is what lets training use all $T$ positions of a window as $T$ separate next-token problems at
# once, and it is what makes generation sound (at inference there *is* no future to peek at, so
# the model had better not rely on one). Let us test it rather than trust it: replace one token in
# the middle of the sentence with something else (" vampire", in memory of the reference model's
# loops) and measure how much each position's output moves, with the mask and without it.

# %%
t0 = tokens.index(" door") if " door" in tokens else T // 2  # a word in the middle of the sentence
changed = list(ids)
changed[t0] = enc.encode_ordinary(" vampire")[0]
xa = token_table[torch.tensor([ids])] + position_table[torch.arange(T)]  # (1, T, C)
xc = token_table[torch.tensor([changed])] + position_table[torch.arange(T)]  # (1, T, C)
print(f"position {t0}: {tokens[t0]!r} -> {enc.decode([changed[t0]])!r}")

with torch.no_grad():
    diff_causal = (mine(xa) - mine(xc)).abs().amax(dim=-1)[0]  # (T,): largest change per position
    diff_full = (mine(xa, causal=False) - mine(xc, causal=False)).abs().amax(dim=-1)[0]

fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True)
for ax, d, title in zip(axes, (diff_causal, diff_full), ("with the causal mask", "without the mask")):
    ax.bar(range(T), d, color=["tab:blue" if s < t0 else "tab:red" for s in range(T)])
    ax.axvline(t0 - 0.5, color="gray", ls="--")
    ax.set_xticks(range(T), tokens, rotation=90)
    ax.set_xlabel(f"output position (token {t0} changed)")
    ax.set_title(title)
axes[0].text((t0 - 1) / 2, 0.02 * float(diff_full.max()), "exactly 0", ha="center", color="tab:blue")
axes[0].set_ylabel("max |change| of the output")
fig.suptitle("Changing one token (red: it and the positions after it; blue: the positions before it)")
fig.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
assert torch.all(diff_causal[:t0] == 0)  # exactly unchanged, not just close
assert torch.all(diff_causal[t0:] > 0)  # the changed token and everything after it moved
assert torch.all(diff_full[:t0] > 0)  # without the mask, the past reads the future
print("with the mask, outputs before the changed token are unchanged; without it, every output moves")

# %% [markdown]
# ## 7. What a trained model attends to
#
# Random weights make random patterns. To see what attention is *for*, we load the PlotGPT model
# that chapter 4 trains (`helpers.book.chapter_checkpoint()`; if chapter 4 has not been run yet,
# it trains a small stand-in first, and in CI mode that stand-in is tiny and barely trained, so its
# patterns are faint). The model is a stack of blocks; block $l$ applies its attention to
# `ln_1` of the residual stream $x_l$ (chapter 3 explains blocks and LayerNorm):
#
# $$x_0 = \mathrm{wte}(\text{tokens}) + \mathrm{wpe}(\text{positions}), \qquad x_{l+1} = \mathrm{Block}_l(x_l)$$
#
# (The book's model, chapter 4's `cpu` preset, has no `wpe` table: it uses rotary positions,
# which chapter 3 describes, so $x_0$ is the token embedding alone and each block turns its
# queries and keys by their positions.)
#
# So we run the embedding and the blocks, and at each block compute the attention weights by hand
# from that block's `c_attn` weights, with our module. The check first: our module, loaded with a
# trained block's weights, reproduces that block's attention output at every layer.

# %%
from helpers.checkpoint import load

ckpt = load(book.chapter_checkpoint())
model = ckpt.model.eval()  # eval: dropout off
mcfg = model.config
print(f"{mcfg.n_layer} layers x {mcfg.n_head} heads, n_embd {mcfg.n_embd}, block_size {mcfg.block_size}, "
      f"trained {ckpt.info.get('step', '?')} steps")

# the beginning of the same plot, as the model saw it in training: <|endoftext|> then the text
eot = ckpt.tokenizer.eot_token
prompt_ids = [eot] + ckpt.tokenizer.encode_ordinary(docs[0])[: min(31, mcfg.block_size - 1)]
prompt = torch.tensor([prompt_ids])  # (1, T)
labels = ["<eot>" if i == eot else ckpt.tokenizer.decode([i]).replace("\n", "\\n") for i in prompt_ids]


@torch.no_grad()
def attention_maps(model, idx):
    """Attention weights of every layer and head, (n_layer, n_head, T, T), computed with our module."""
    tr, T = model.transformer, idx.size(1)
    x = tr.wte(idx)  # (1, T, C): the block-0 input (dropout is off in eval) ...
    if "wpe" in tr:  # ... plus the position table, unless the model uses rotary positions (the cpu presets)
        x = x + tr.wpe(torch.arange(T))
    maps, ok = [], True
    for block in tr.h:
        xn = block.ln_1(x)  # (1, T, C): what the attention of this block reads
        my = MyCausalSelfAttention(mcfg.n_embd, mcfg.n_head, bias=mcfg.bias, rotary=block.attn.rotary)
        my.load_state_dict(block.attn.state_dict())  # this block's trained c_attn / c_proj
        y, att = my(xn, return_att=True)  # (1, T, C), (1, nh, T, T)
        ok &= torch.allclose(y, block.attn(xn), atol=1e-5)
        maps.append(att[0])
        x = block(x)  # (1, T, C): the next block's input
    return torch.stack(maps), ok  # (n_layer, nh, T, T)


maps, same = attention_maps(model, prompt)

# %%
# NBVAL_CHECK_OUTPUT
assert same
print("attention recomputed from each trained block's c_attn weights matches the block's own output")

# %% [markdown]
# Every head of every layer on the start of the corpus's first plot, *The Silk Envoy's Camel* (rows:
# the token reading; columns: the token read; the brighter, the more weight):

# %%
L, H, Tp = maps.shape[0], maps.shape[1], maps.shape[-1]
fig, axes = plt.subplots(L, H, figsize=(2.6 * H, 2.6 * L), squeeze=False)
for l in range(L):
    for h in range(H):
        ax = axes[l, h]
        ax.imshow(maps[l, h], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"layer {l}, head {h}", fontsize=9)
    axes[l, 0].set_ylabel("query t")
for h in range(H):
    axes[-1, h].set_xlabel("key s")
fig.suptitle(f"All attention heads of the trained model on the first {Tp} tokens of a plot")
fig.tight_layout()
plt.show()

# %% [markdown]
# Heads differ, and a few numbers per head describe them (rows $t \ge 4$, where a token has some
# choice; the first rows attend to one or two tokens by necessity):
#
# * **spread**: the entropy of a row, divided by its largest possible value $\ln(t+1)$ and
#   averaged over rows: 1 for a head that averages everything evenly, 0 for one that reads a
#   single token;
# * **on t-1**: the weight on the token just before, the signature of a *previous-token head*
#   (which lets the model see word pairs such as "Buenos" -> "Aires");
# * the **most-read token**: which key gets the most weight from the later queries, on average.

# %%
pos = torch.arange(Tp).float()
entropy = -(maps * maps.clamp_min(1e-12).log()).sum(-1)  # (L, H, T): entropy of each row
spread = (entropy[..., 4:] / torch.log(pos[4:] + 1)).mean(-1)  # (L, H): 1 = uniform, 0 = one token
prev = maps.diagonal(offset=-1, dim1=-2, dim2=-1)[..., 3:].mean(-1)  # (L, H): weight on t-1, rows t >= 4
read = maps[..., Tp // 4:, :].mean(-2)  # (L, H, T): mean weight each key gets from the later queries
print(f"layer head  spread  on t-1   most-read token   (a uniform head would put {(1 / (pos[4:] + 1)).mean():.2f} on t-1)")
for l in range(L):
    for h in range(H):
        s = int(read[l, h].argmax())
        token = f"'{labels[s]}'"
        print(f"{l:5d} {h:4d}  {spread[l, h]:6.2f}  {prev[l, h]:6.2f}   {token:>12} {read[l, h, s]:5.0%}")

# %% [markdown]
# In the run this book was built with (chapter 4's best checkpoint, which was its last: 6 layers
# of 4 heads after 800 steps on our small corpus, 1.840 bits per byte on validation), two kinds of
# heads stand out:
#
# * **averaging heads**: the first layer's heads have a spread of 0.98 to 1.00: every position
#   receives the running average of everything before it, a bag-of-words summary of "what this
#   text is about so far";
# * **a landmark head**: the sharpest head by far, layer 3, head 3 (spread 0.24), sends the
#   tokens of the title line to the word `Title` and every plot token to the word `Plot`, which
#   gets 80 % of the later queries' weight. That tells each position where it is (title or plot?)
#   and where the plot began. Weaker versions of it sit nearby: layer 2, head 3 puts 30 % on the
#   colon after `Plot`, and layer 4's heads put 10 to 20 % on that colon or on `Plot`. A token that
#   every row can see is also a convenient place to park weight when nothing else is relevant,
#   since the weights must sum to 1 somewhere (an "attention sink").
#
# No head is a clear previous-token head yet. A few put well above the uniform 0.07 on $t-1$, up
# to 0.30 (layer 2, head 0) and 0.27 (layer 3, head 2), but none puts most of its weight there:
# this small, briefly trained model has not grown one. Models trained longer on more text do, and
# then *induction heads*, which find an earlier occurrence of the current token and copy what
# followed it (Olsson et al., 2022). Your run may differ in the details. The sharpest and the
# broadest head in full, with the tokens on the axes:

# %%
picks = {"the sharpest head": divmod(int(spread.argmin()), H), "the broadest head": divmod(int(spread.argmax()), H)}
for what, (l, h) in picks.items():
    s = int(read[l, h].argmax())
    print(f"{what}: layer {l}, head {h} (spread {spread[l, h]:.2f}); its most-read token '{labels[s]}' "
          f"gets {read[l, h, s]:.0%} of the later queries' weight")

fig, axes = plt.subplots(1, 2, figsize=(17, 8.2))
for ax, (what, (l, h)) in zip(axes, picks.items()):
    im = ax.imshow(maps[l, h], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(Tp), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(Tp), labels, fontsize=8)
    ax.set_xlabel("key: the token being read")
    ax.set_ylabel("query: the token reading")
    ax.set_title(f"layer {l}, head {h}: {what} (spread {spread[l, h]:.2f})")
fig.colorbar(im, ax=axes, fraction=0.025, label="attention weight")
plt.show()

# %% [markdown]
# Finally the causality test again, on the whole trained model: the logits at every position
# (passing `targets` makes `GPT.forward` return all $T$ positions, not only the last) before and
# after replacing one token in the middle of the prompt. Everything in a GPT other than attention
# works position by position, so the mask in each layer is enough to make the entire model causal.

# %%
# NBVAL_CHECK_OUTPUT
t0 = len(prompt_ids) // 2
other = prompt.clone()
other[0, t0] = (other[0, t0] + 1) % mcfg.vocab_size  # any other token
with torch.no_grad():
    logits_a, _ = model(prompt, targets=prompt)  # (1, T, V)
    logits_b, _ = model(other, targets=other)
assert torch.allclose(logits_a[0, :t0], logits_b[0, :t0], atol=1e-5)
assert not torch.allclose(logits_a[0, t0:], logits_b[0, t0:], atol=1e-5)
print("the trained GPT is causal: predictions before the changed token are unchanged")

# %% [markdown]
# ## What we built
#
# * Attention from scratch: queries, keys and values; scores $QK^\top/\sqrt{d}$; the causal mask
#   as $-\infty$ above the diagonal; a softmax whose rows sum to 1; a weighted sum of values.
# * Why $\sqrt{d}$: it keeps the scores at unit variance, so the softmax neither saturates nor
#   starves the gradient, whatever the head size.
# * Multi-head attention as one `c_attn` matmul and a reshape `(B, T, C) -> (B, nh, T, hs)`, shown
#   equal to separate heads, to the fused `F.scaled_dot_product_attention`, and to
#   `helpers.model.CausalSelfAttention`, the version the rest of the book uses.
# * Causality, tested: a future token never changes a past output, in one layer and in the whole
#   trained model.
# * A look inside the trained PlotGPT: heads that average their whole context, and a sharp head
#   that points at the landmarks of the document format, `Title` and `Plot`.
#
# **Next, chapter 3:** attention is where tokens exchange information; a GPT block adds an MLP
# where each position *thinks about* what it gathered, plus LayerNorm and residual connections
# that make a deep stack of blocks trainable. Stacking blocks on top of the embeddings gives the
# whole GPT.
