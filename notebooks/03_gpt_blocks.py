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
# # Chapter 3: From attention to a whole GPT
#
# Chapter 2 built causal self-attention, the one place where tokens exchange information. Attention
# alone is not a language model. This chapter adds the other parts and puts them together into GPT-2:
#
# 1. **LayerNorm**, which keeps every token's vector at a fixed scale;
# 2. the **MLP**, which does computation on each token by itself;
# 3. **residual connections**, which make a deep stack trainable;
# 4. the **pre-LN block** that combines them, stacked `n_layer` times;
# 5. the **whole GPT**: token and position embeddings, the blocks, a final LayerNorm and an output
#    layer that shares its weights with the input embedding.
#
# We write each part by hand and check it against the tested version in `helpers/model.py`: same
# weights in, same numbers out. Then we count where the parameters are in each preset, check that an
# untrained model's loss is what theory predicts, and read the text the untrained model writes.
#
# A Transformer block has a simple structure that is easy to misread. Attention does the
# *communication* between tokens. The MLP does the *computation* on each token. The residual stream
# holds the information that both of them read from and add to.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %% [markdown]
# ## Set-up: the domain vocabulary and a small model shape
#
# We use the movie-plot corpus and the 16,384-token byte-level BPE from Chapter 1
# (`helpers.book.sample_data()` prepares it the first time and loads it after that). The model for the
# hand-built checks is deliberately tiny (2 layers, 4 heads, 64 dimensions). The code does not depend
# on the size, and a tiny model keeps every check fast. All of this chapter runs on the CPU.

# %%
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from helpers.book import sample_data
from helpers.config import DEFAULT_VOCAB_SIZE, PRESETS, ModelConfig, get_preset
from helpers.device import seed_everything
from helpers.dataset import get_batch
from helpers.model import GPT, MLP, Block

seed_everything(1337)
data = sample_data()
enc = data.tokenizer
V = data.vocab_size
cfg = ModelConfig(vocab_size=V, block_size=64, n_layer=2, n_head=4, n_embd=64, dropout=0.0)
print(f"domain BPE: {V:,} tokens; teaching model: {cfg}")

# %% [markdown]
# We also need an input. We take the opening of the first validation plot, encoded with the domain
# tokenizer and preceded by `<|endoftext|>`, in the same way as every document is stored in the memmaps:

# %%
val = data.tokens("val")
T = 24
idx = torch.from_numpy(val[:T].astype(np.int64))[None]  # (1, T): starts with <|endoftext|>
print(idx.shape)
print([enc.decode([i]) for i in idx[0].tolist()])

# %% [markdown]
# ## 1. LayerNorm
#
# The vector of each token is normalised *by itself*. We subtract the mean of its $C$ features and
# divide by their standard deviation. Then we apply a learned scale $\gamma$ and shift $\beta$ (one of
# each per feature), so the network can undo the normalisation where that helps:
#
# $$\mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
# \mu = \frac{1}{C}\sum_{i=1}^{C} x_i, \quad \sigma^2 = \frac{1}{C}\sum_{i=1}^{C} (x_i - \mu)^2 .$$
#
# Three details matter if the result is to match PyTorch exactly:
#
# - the statistics are over the **last** dimension only, so each token is normalised on its own (no
#   mixing across the batch or across positions, unlike BatchNorm);
# - the variance is the *biased* one (divide by $C$, not $C-1$);
# - $\epsilon = 10^{-5}$ sits inside the square root and guards against division by zero.

# %%
class MyLayerNorm(nn.Module):
    def __init__(self, C: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))  # gamma, (C,)
        self.bias = nn.Parameter(torch.zeros(C))  # beta, (C,)
        self.eps = eps

    def forward(self, x):  # (B, T, C)
        mu = x.mean(dim=-1, keepdim=True)  # (B, T, 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (B, T, 1)
        return self.weight * (x - mu) / torch.sqrt(var + self.eps) + self.bias  # (B, T, C)


# %% [markdown]
# To test this we give each token a different offset and scale, so that there is something to
# normalise:

# %%
B, C = 2, cfg.n_embd
x = torch.randn(B, T, C) * torch.rand(B, T, 1) * 5 + torch.randn(B, T, 1) * 3  # (B, T, C)
ln = MyLayerNorm(C)
with torch.no_grad():
    ln.weight.normal_(1.0, 0.1)  # a trained-looking gamma and beta, so they are tested too
    ln.bias.normal_(0.0, 0.1)
y_plain = F.layer_norm(x, (C,))  # gamma = 1, beta = 0
print("before: per-token mean", x[0, :4].mean(-1).numpy().round(2), " std", x[0, :4].std(-1, unbiased=False).numpy().round(2))
print("after:  per-token mean", y_plain[0, :4].mean(-1).numpy().round(2), " std", y_plain[0, :4].std(-1, unbiased=False).numpy().round(2))

# %% [markdown]
# Every token comes out with mean 0 and standard deviation 1, whatever scale it came in with. Now the
# check: the library's block uses `nn.LayerNorm` for its `ln_1` and `ln_2`. We load our $\gamma$ and
# $\beta$ into it and compare (the parameter names `weight` and `bias` are the same, so
# `load_state_dict` does the copy):

# %%
# NBVAL_CHECK_OUTPUT
theirs = Block(cfg).ln_1
theirs.load_state_dict(ln.state_dict())
with torch.no_grad():
    mine = ln(x)
    assert torch.allclose(mine, F.layer_norm(x, (C,), ln.weight, ln.bias, eps=1e-5), atol=1e-5)
    assert torch.allclose(mine, theirs(x), atol=1e-5)
print("matches torch.nn.functional.layer_norm")
print("matches helpers.model.Block.ln_1")

# %% [markdown]
# **Why normalise at all?** The stack adds many sub-layer outputs together, so the scale of a token's
# vector drifts from layer to layer and differs between tokens. A linear layer that has to work on
# vectors of every scale learns slowly. LayerNorm gives each sub-layer an input of a known scale, and
# that is what lets the fixed initialisation of the next section work at every depth.

# %% [markdown]
# ## 2. The MLP: computation on each token
#
# Attention mixes information *across* positions. The MLP then processes each position separately,
# with the same weights at every position. It widens the vector four times, applies a
# non-linearity and projects back:
#
# $$\mathrm{MLP}(x) = W_2\, \mathrm{GELU}(W_1 x + b_1) + b_2, \qquad W_1 \in \mathbb{R}^{4C \times C},\;
# W_2 \in \mathbb{R}^{C \times 4C}.$$
#
# The factor 4 comes from the original Transformer and GPT-2. The MLP holds two thirds of a block's
# parameters ($8C^2$ of $12C^2$): much of what the model "knows" is stored here.
#
# GPT-2 uses the **GELU** non-linearity, $x\,\Phi(x)$ with $\Phi$ the standard normal CDF, in its
# tanh approximation:
#
# $$\mathrm{GELU}(x) \approx \tfrac12 x \left(1 + \tanh\!\left[\sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)\right]\right).$$
#
# GELU is a smooth ReLU. Its gradient is not exactly zero for negative inputs, so a unit that is
# switched off can still learn to switch back on.

# %%
def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


xs = torch.linspace(-4, 4, 401)
exact = F.gelu(xs)  # x * Phi(x), with the error function
print(f"tanh approximation vs exact GELU: max |difference| = {(gelu_tanh(xs) - exact).abs().max():.1e}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(xs, F.relu(xs), label="ReLU", color="tab:gray", ls="--")
ax.plot(xs, gelu_tanh(xs), label="GELU (tanh approximation, GPT-2)", color="tab:blue", lw=2)
ax.set_xlabel("input x")
ax.set_ylabel("output")
ax.set_title("GELU: a smooth ReLU that lets a little negative signal through")
ax.grid(alpha=0.3)
ax.legend()
plt.show()


# %% [markdown]
# The MLP by hand, with the same parameter names as the library (`c_fc`, `c_proj`), so that the
# library's weights load straight into it:

# %%
class MyMLP(nn.Module):
    def __init__(self, cfg: ModelConfig, act=gelu_tanh):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)  # C -> 4C
        self.act = act  # the non-linearity: GELU, or the squared ReLU below
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)  # 4C -> C

    def forward(self, x):  # (B, T, C)
        h = self.c_fc(x)  # (B, T, 4C)
        h = self.act(h)  # (B, T, 4C)
        return self.c_proj(h)  # (B, T, C)


# %%
# NBVAL_CHECK_OUTPUT
assert torch.allclose(gelu_tanh(xs), F.gelu(xs, approximate="tanh"), atol=1e-6)
print("gelu_tanh matches torch's GELU(approximate='tanh')")
theirs = MLP(cfg).eval()
mine = MyMLP(cfg)
mine.load_state_dict(theirs.state_dict())  # copy c_fc and c_proj
with torch.no_grad():
    assert torch.allclose(mine(x), theirs(x), atol=1e-5)
print("matches helpers.model.MLP")

# %% [markdown]
# ### A later non-linearity: the squared ReLU
#
# Both CPU presets replace GELU with $\mathrm{ReLU}(x)^2 = \max(0, x)^2$ (So et al. 2021,
# "Primer", found it by searching over architectures; the nanoGPT speedruns use it too). It is
# zero for negative inputs like ReLU, but grows quadratically, so a unit that fires strongly
# fires *much* more strongly, and it is cheaper to compute than GELU's tanh. In round 5 of the
# search behind the `cpu-fp32` preset (the book's Performance page) it took plots-bench from 1.958 to
# 1.926 bits per byte, the largest gain of any single change in the round. The library computes it with a hand-written
# backward pass (`helpers.model.ReLU2`); here is the one-line teaching version, checked against it:

# %%
# NBVAL_CHECK_OUTPUT
def relu2(x):
    return F.relu(x) ** 2


cfg_relu2 = replace(cfg, mlp="relu2")
theirs_relu2 = MLP(cfg_relu2).eval()
mine_relu2 = MyMLP(cfg_relu2, act=relu2)
mine_relu2.load_state_dict(theirs_relu2.state_dict())
with torch.no_grad():
    assert torch.allclose(mine_relu2(x), theirs_relu2(x), atol=1e-5)
print("MyMLP with relu(x)^2 matches helpers.model.MLP(mlp='relu2')")

# %% [markdown]
# ## 3. The pre-LN block
#
# A block combines the two sub-layers. Each one reads a *normalised copy* of the residual stream $x$
# and **adds** its result back to it:
#
# $$x \leftarrow x + \mathrm{Attn}(\mathrm{LN}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x)).$$
#
# The attention below is Chapter 2's, in compact form, with the explicit causal mask and softmax.

# %%
class MyAttention(nn.Module):
    """Chapter 2's causal self-attention, compact."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x):  # (B, T, C)
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))  # 3 x (B, nh, T, hs)
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device))  # (T, T)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # rows sum to 1
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # heads side by side: (B, T, C)
        return self.c_proj(y)  # (B, T, C)


class MyBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = MyLayerNorm(cfg.n_embd)
        self.attn = MyAttention(cfg)
        self.ln_2 = MyLayerNorm(cfg.n_embd)
        self.mlp = MyMLP(cfg)

    def forward(self, x):  # (B, T, C)
        x = x + self.attn(self.ln_1(x))  # communicate: read the stream, add to it
        x = x + self.mlp(self.ln_2(x))  # compute: read the stream, add to it
        return x  # (B, T, C)


# %% [markdown]
# The library's `Block` has the same structure and the same parameter names. It adds dropout (off in
# eval mode) and lets `cfg.bias` switch the biases off. We copy its weights into ours and compare:

# %%
# NBVAL_CHECK_OUTPUT
theirs = Block(cfg).eval()
with torch.no_grad():  # a non-trivial gamma/beta everywhere, so the LayerNorms are really tested
    for name, p in theirs.named_parameters():
        if name.startswith("ln_"):
            p.add_(0.1 * torch.randn_like(p))
mine = MyBlock(cfg)
mine.load_state_dict(theirs.state_dict())
with torch.no_grad():
    out_mine, out_theirs = mine(x), theirs(x)
assert out_mine.shape == x.shape
assert torch.allclose(out_mine, out_theirs, atol=1e-5)
print("block output shape == input shape:", tuple(out_mine.shape) == tuple(x.shape))
print("matches helpers.model.Block")

# %% [markdown]
# A block maps `(B, T, C)` to `(B, T, C)`, so blocks stack. GPT-2 small stacks 12 of them. Two design
# choices in these two lines need explaining: the `x +` (the residual) and the position of the
# LayerNorm (before the sub-layer, "pre-LN").
#
# ### Why residual connections: a gradient highway
#
# Backpropagation multiplies Jacobians layer by layer. In a plain stack $x_{l+1} = f_l(x_l)$, the
# gradient that reaches layer 1 is a product of $L$ matrices. If each one shrinks vectors a little,
# the product shrinks them *exponentially*, and the early layers stop learning. With a residual
# $x_{l+1} = x_l + f_l(x_l)$ every factor becomes $I + \partial f_l / \partial x_l$:
#
# $$\frac{\partial \mathcal{L}}{\partial x_l} = \frac{\partial \mathcal{L}}{\partial x_{L}}
# \prod_{k=l}^{L-1}\left(I + \frac{\partial f_k}{\partial x_k}\right),$$
#
# and expanding the product gives a term $\partial\mathcal{L}/\partial x_L$ unchanged: the identity
# paths carry the gradient from the loss to every layer undiminished. We measure this on a toy
# deep stack, where each layer is `tanh(Linear(x))` with PyTorch's default initialisation. The loss is a
# fixed linear read-out of the last layer, so both stacks start backpropagation from the same gradient.
# We then record how large the gradient still is when it reaches each layer's input, with and without
# the `x +`:

# %%
def grad_reaching_each_layer(depth: int, residual: bool, width: int = 64, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    readout = torch.randn(width) / math.sqrt(width)  # (width,): the same "loss" for both stacks
    x = torch.randn(32, width, requires_grad=True)  # a batch of 32 inputs
    inputs = []
    for layer in layers:
        x.retain_grad()  # keep dL/dx for this intermediate tensor
        inputs.append(x)
        x = x + torch.tanh(layer(x)) if residual else torch.tanh(layer(x))
    loss = (x @ readout).mean()  # a scalar of the output
    loss.backward()
    return [x_in.grad.norm().item() for x_in in inputs]


depth = 16 if SMOKE else 32
plain = grad_reaching_each_layer(depth, residual=False)
resid = grad_reaching_each_layer(depth, residual=True)
layer_ids = np.arange(1, depth + 1)

fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogy(layer_ids, plain, "o-", label="plain: x = f(x)", color="tab:red")
ax.semilogy(layer_ids, resid, "o-", label="residual: x = x + f(x)", color="tab:green")
ax.set_xlabel("layer (1 = nearest the input)")
ax.set_ylabel("norm of dL/d(layer input), log scale")
ax.set_title(f"A {depth}-layer tanh stack at initialisation: the residual keeps the gradient alive")
ax.grid(alpha=0.3, which="both")
ax.legend()
plt.show()
print(f"gradient at layer 1 / at layer {depth}: plain {plain[0] / plain[-1]:.1e}, residual {resid[0] / resid[-1]:.1e}")

# %% [markdown]
# Without the residual, the gradient that reaches the first layers is orders of magnitude smaller than
# at the last ones. A layer's weight gradient is proportional to the gradient arriving at its output,
# so those layers would hardly move during training. With the residual, every layer gets a usable
# gradient. Here it even grows a little on the way down, because the branch terms
# $\partial f/\partial x$ add to the identity. Small residual branches keep that growth in check, which
# is one reason for the initialisation below. The residual is what made 100-layer ResNets trainable,
# and it does the same for Transformers. It also suggests a useful picture: the **residual stream** is
# a shared memory that starts as the token embedding, and each sub-layer *reads* from it (through its
# LayerNorm) and *writes* an update to it.
#
# ### Why pre-LN
#
# The original Transformer (2017) put the LayerNorm *after* the addition ("post-LN"):
# $x \leftarrow \mathrm{LN}(x + f(x))$. Then every path from the loss to the early layers goes through
# $2L$ LayerNorms, and the identity highway above no longer exists. Post-LN Transformers need a careful
# learning-rate warm-up, and they become unstable as they get deeper (Xiong et al., 2020, *On Layer
# Normalization in the Transformer Architecture*). GPT-2 moved the LayerNorm to the *input* of each
# sub-layer ("pre-LN"), as in `MyBlock` above. The stream itself is never normalised, so the
# gradient highway stays clean. The cost is that the stream can grow in scale, so pre-LN needs two
# things post-LN does not: a **final LayerNorm** before the output layer (`ln_f` below), and some care
# at initialisation (the next subsection).
#
# ### Why the residual projections start smaller: $1/\sqrt{2L}$
#
# Each block adds *two* updates to the stream (one from attention, one from the MLP). Each of them
# ends in a projection called `c_proj`. At initialisation these updates are roughly independent, and
# the variances of independent terms add. After $L$ blocks the stream's variance therefore grows like
# $2L$ times that of one update, and its standard deviation like $\sqrt{2L}$. GPT-2 initialises the
# `c_proj` weights with standard deviation $0.02/\sqrt{2L}$ instead of $0.02$, which cancels that
# growth. `helpers.model.GPT.__init__` does this in its last lines. To see the effect, we build models
# of growing depth at initialisation, once with the library's init and once with the scaling removed.
# Then we follow the standard deviation of the stream through the blocks for a batch of real tokens:

# %%
def stream_std(n_layer: int, scale_init: bool, n_embd: int = 128) -> list[float]:
    """Std of the residual stream after the embeddings and after every block, at initialisation."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=V, block_size=64, n_layer=n_layer, n_head=4, n_embd=n_embd)).eval()
    tr = model.transformer
    with torch.no_grad():
        if not scale_init:
            for name, p in model.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.normal_(0.0, 0.02)  # plain 0.02, no 1/sqrt(2L)
        idx4 = torch.from_numpy(val[: 4 * 64].astype(np.int64)).view(4, 64)  # (4, 64) real tokens
        x = tr.wte(idx4) + tr.wpe(torch.arange(64))  # (4, 64, C)
        stds = [x.std().item()]
        for block in tr.h:
            x = block(x)
            stds.append(x.std().item())
    return stds


depths = [1, 2, 4, 8] if SMOKE else [1, 2, 4, 8, 16, 32]
runs = {(L, scale): stream_std(L, scale) for L in depths for scale in (False, True)}
L_max = depths[-1]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(runs[L_max, False], "o-", color="tab:red", label="c_proj std 0.02")
ax1.plot(runs[L_max, True], "o-", color="tab:green", label=f"c_proj std 0.02/sqrt(2L)")
ax1.set_xlabel("blocks applied (0 = embeddings only)")
ax1.set_ylabel("std of the residual stream")
ax1.set_title(f"Inside one {L_max}-layer model")
ax2.plot(depths, [runs[L, False][-1] for L in depths], "o-", color="tab:red", label="c_proj std 0.02")
ax2.plot(depths, [runs[L, True][-1] for L in depths], "o-", color="tab:green", label="c_proj std 0.02/sqrt(2L)")
ax2.set_xscale("log", base=2)
ax2.set_xticks(depths, [str(L) for L in depths])
ax2.set_xlabel("number of layers L")
ax2.set_ylabel("std of the stream after the last block")
ax2.set_title("At the output, for models of every depth")
for ax in (ax1, ax2):
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("Residual stream scale at initialisation")
plt.tight_layout()
plt.show()

# %% [markdown]
# Without the scaling, the stream grows with depth, roughly as $\sqrt{\text{blocks}}$. A 32-layer model
# therefore starts out in a different regime from a 4-layer one. With the scaling, the $2L$ updates
# together add about as much as a single unscaled one, and the output scale is nearly the same
# whatever $L$ is. The LayerNorms hide the stream's scale from the sub-layers, but not from the
# gradients. Also, in a large stream each new update changes it relatively little, and that slows
# learning in the later blocks.

# %% [markdown]
# ## 4. The whole GPT
#
# Now the full model. Given token ids `idx` of shape `(B, T)`:
#
# 1. **token embedding** `wte`: a lookup table $V \times C$; row $i$ is the vector of token $i$;
# 2. **position embedding** `wpe`: a second table of shape $T_{max} \times C$, learned, one vector
#    per position. Attention by itself does not depend on the order of the tokens; this table is
#    how the model knows which token came first;
# 3. the sum goes through the `n_layer` **blocks**;
# 4. a **final LayerNorm** `ln_f` (the stream has not been normalised since the embedding);
# 5. the **language-model head** `lm_head`: a linear map $C \to V$ that gives one logit per vocabulary
#    entry. Its weight *is* `wte.weight`: the same matrix is used to read tokens in and to write
#    them out (weight tying, explained after the check).
#
# The logits at position $t$ are the model's prediction of token $t+1$. The loss is the cross-entropy
# against the input shifted by one.

# %%
class MyGPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),  # (V, C)
            wpe=nn.Embedding(cfg.block_size, cfg.n_embd),  # (T_max, C)
            h=nn.ModuleList([MyBlock(cfg) for _ in range(cfg.n_layer)]),
            ln_f=MyLayerNorm(cfg.n_embd),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)  # C -> V
        self.lm_head.weight = self.transformer.wte.weight  # tied: one (V, C) matrix

    def forward(self, idx, targets=None):  # idx: (B, T) token ids
        B, T = idx.shape
        tok = self.transformer.wte(idx)  # (B, T, C)
        pos = self.transformer.wpe(torch.arange(T, device=idx.device))  # (T, C), broadcast over B
        x = tok + pos  # (B, T, C): the residual stream begins
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss


# %% [markdown]
# We check it on the real sentence: the input is `idx[:, :-1]`, the targets are `idx[:, 1:]` (the
# next token at every position). The library's `GPT` returns the full `(B, T, V)` logits when it is
# given targets. Without targets it returns only the last position, which is all that generation
# needs.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
theirs = GPT(cfg).eval()
mine = MyGPT(cfg).eval()
mine.load_state_dict(theirs.state_dict())  # wte, wpe, all blocks, ln_f (lm_head is the same tensor)
inp, tgt = idx[:, :-1], idx[:, 1:]  # (1, T-1) each
with torch.no_grad():
    logits_mine, loss_mine = mine(inp, tgt)
    logits_theirs, loss_theirs = theirs(inp, tgt)
    last_theirs, _ = theirs(inp)  # inference mode: last position only
assert logits_mine.shape == (1, T - 1, V)
assert torch.allclose(logits_mine, logits_theirs, atol=1e-5)
assert torch.allclose(loss_mine, loss_theirs, atol=1e-5)
assert torch.allclose(logits_mine[:, -1:], last_theirs, atol=1e-5)
print("logits shape (B, T, V) with V = vocab size:", logits_mine.shape[-1] == V)
print("logits and loss match helpers.model.GPT")
print("lm_head and wte are one tensor:", theirs.lm_head.weight is theirs.transformer.wte.weight)

# %% [markdown]
# `helpers.model.GPT` is the version the rest of the book uses. It is the same computation with three
# additions: dropout (after the embeddings and in each sub-layer, off in eval mode), the fused
# attention kernel from Chapter 2 where it is the faster one, and generation (`generate`, `generate_stream`, Chapter 6).
#
# ### Why weight tying
#
# The input embedding maps token $\to$ vector. The output layer scores a vector against every
# token, using the dot product $x \cdot w_i$ for each row $w_i$. Both need a vector per token that
# says what the token means, so it makes sense to use a single table for both (Press & Wolf, 2017;
# GPT-2 does this). There are two gains:
#
# - **Parameters**: a $V \times C$ matrix is saved. For GPT-2 small that is $50{,}304 \times 768
#   \approx 38.6$M parameters, almost a quarter of an untied model.
# - **Learning signal**: the input table only gets gradient for the tokens that occur in a batch. The
#   output layer gets gradient for *every* row at every step, because the softmax pushes down
#   all the wrong tokens. When the table is tied, rare tokens also learn from that signal.
#
# The count below is what tying saves in our teaching model:

# %%
tied = theirs.num_params()
print(f"teaching model: {tied:,} parameters tied; untied would be {tied + V * cfg.n_embd:,} "
      f"(+{V * cfg.n_embd / tied:.0%})")

# %% [markdown]
# ### Soft-capped logits
#
# Nothing stops a logit from growing without bound. On a small corpus that is how a model
# memorises: it grows ever more certain of the training text's next tokens, and it pays for that
# certainty on text it has not seen. A **soft cap** (Gemma 2; the nanoGPT speedruns) squashes every
# logit smoothly into $(-c, c)$:
#
# $$\mathrm{logit} \leftarrow c \tanh(\mathrm{logit} / c).$$
#
# Small logits pass almost unchanged ($\tanh u \approx u$ near 0); large ones flatten out near
# $\pm c$. With $c = 15$ the most likely token can be at most $e^{30}$ times as likely as the
# least likely, far more than any real prediction needs. On plots-bench it added nothing
# measurable to the squared ReLU (1.930 against 1.926 bits per byte, within the noise; round 5 in
# `bench/LOG.md`), so the library's model no longer has it. By hand, on logits made large on
# purpose:

# %%
# NBVAL_CHECK_OUTPUT
cap = 15.0
big = logits_theirs * 40.0  # an overconfident model's logits
capped = cap * torch.tanh(big / cap)
assert big.abs().max() > cap and capped.abs().max() < cap  # every logit squashed into (-15, 15)
small = big.abs() < 1.0
assert ((capped - big)[small].abs() < 0.01).all()  # and a small one passes almost unchanged
print(f"largest logit {big.abs().max():.1f} -> {capped.abs().max():.1f}; logits under 1 move by less than 0.01")

# %% [markdown]
# ## 5. Where the parameters are: the presets
#
# A block has $12C^2 + 13C$ parameters: attention $3C^2 + 3C$ (`c_attn`) $+\, C^2 + C$ (`c_proj`),
# the MLP $4C^2 + 4C$ (`c_fc`) $+\, 4C^2 + C$ (`c_proj`), and two LayerNorms with $2C$ each. Add the
# embeddings and the final LayerNorm:
#
# $$N = \underbrace{V C + T_{max} C}_{\text{embeddings}} + \underbrace{L\,(12C^2 + 13C) + 2C}_{\text{non-embedding}}.$$
#
# (The CPU presets differ twice. They have no $T_{max} C$ position table: they use *rotary*
# positions, which turn each head's queries and keys by an angle that grows with the position, so
# attention scores depend on how far apart two tokens are; they cost no parameters. And they have
# no biases, so a block has $12C^2 + 2C$ parameters and the final LayerNorm $C$.)
#
# We count the four presets of `helpers.config.PRESETS` (the shapes that `plotgpt train --preset`
# uses) with two vocabularies: our 16,384-token domain BPE, and GPT-2's 50,257 tokens padded to
# 50,304 (a multiple of 64, for faster matrix multiplies), which the reference project used. A
# 124M-parameter model costs half a gigabyte of float32 just to exist, so we build it on PyTorch's
# **meta device**. There the tensors have shapes but no storage, and `num_params()` can count them for
# free.

# %%
def count(name: str, vocab: int) -> dict:
    m, _ = get_preset(name, vocab_size=vocab)
    with torch.device("meta"):  # shapes only, no memory, no time
        gpt = GPT(m)
    total, non_emb = gpt.num_params(), gpt.num_params(non_embedding=True)
    return dict(preset=name, cfg=m, vocab=vocab, total=total, non_emb=non_emb, emb=total - non_emb)


rows = [count(name, vocab) for name in PRESETS for vocab in (DEFAULT_VOCAB_SIZE, 50304)]


def formula(m: ModelConfig) -> int:
    C, L = m.n_embd, m.n_layer
    positions = m.block_size * C if m.pos_emb == "learned" else 0  # rotary positions (the cpu presets) have no table
    if not m.bias:  # no biases (the cpu presets): per block only the two LayerNorm gains, C each
        return m.vocab_size * C + positions + L * (12 * C * C + 2 * C) + C
    return m.vocab_size * C + positions + L * (12 * C * C + 13 * C) + 2 * C


# %%
# NBVAL_CHECK_OUTPUT
assert all(r["total"] == formula(r["cfg"]) for r in rows)
print("12 C^2 + 13 C per block: the formula matches GPT.num_params() for every preset and vocabulary")
assert round(next(r for r in rows if r["preset"] == "gpu-124m" and r["vocab"] == 50304)["total"] / 1e6) == 124
print("gpu-124m with GPT-2's vocabulary has 124M parameters, as GPT-2 small")

# %%
from IPython.display import Markdown, display

table = ["| preset | layers x width | context | vocab | total | non-embedding | embedding share | untied would be |",
         "|---|---|---|---:|---:|---:|---:|---:|"]
for r in rows:
    m = r["cfg"]
    table.append(f"| {r['preset']} | {m.n_layer} x {m.n_embd} | {m.block_size} | {r['vocab']:,} | {r['total'] / 1e6:.2f}M "
                 f"| {r['non_emb'] / 1e6:.2f}M | {r['emb'] / r['total']:.0%} | {(r['total'] + r['vocab'] * m.n_embd) / 1e6:.2f}M |")
display(Markdown("\n".join(table)))

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
labels = [f"{r['preset']}\nvocab {r['vocab']:,}" for r in rows]
emb_share = [100 * r["emb"] / r["total"] for r in rows]
body_share = [100 - s for s in emb_share]
pos = np.arange(len(rows))
ax.barh(pos, emb_share, color="tab:orange", label="embeddings (wte + wpe)")
ax.barh(pos, body_share, left=emb_share, color="tab:blue", label="blocks + ln_f (non-embedding)")
for p, r in zip(pos, rows):
    ax.text(101, p, f"{r['total'] / 1e6:.1f}M", va="center")
ax.text(101, -0.75, "total", va="center", fontweight="bold")
ax.set_yticks(pos, labels)
ax.invert_yaxis()
ax.set_xlim(0, 115)
ax.set_xlabel("share of all parameters (%)")
ax.set_title("Where the parameters are: small models with big vocabularies are mostly lookup table")
ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.16), ncol=2, fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# For small models, **the vocabulary decides how the parameters are spent**. The embedding costs $VC$
# and grows linearly with the width, while the blocks grow as $12LC^2$. So the narrower the model,
# the larger the embedding's share. The laptop `cpu` preset with GPT-2's vocabulary would be 73 %
# lookup table, and most of its rows would be tokens that hardly ever appear in movie plots. With
# the domain BPE the table is 47 % of the same model, so a little over half of it does computation
# (the narrower `cpu-fp32` is 64 % table even so). At GPT-2 small's size the blocks dominate either
# way: the embedding is 13 % of it with the domain BPE, 31 % with GPT-2's. That is why the
# reference project could afford GPT-2's tokenizer, and why a laptop-sized model should use a
# domain vocabulary well below GPT-2's 50,257 (Chapter 1 measured the other side of this
# trade-off: the number of bytes per token). Scaling-law papers count only the non-embedding
# parameters for this reason: it is the part that does the computation.

# %% [markdown]
# ## 6. The loss at initialisation is $\ln V$
#
# An untrained model should know nothing. Then its best guess is the uniform distribution over the
# $V$ tokens, $p = 1/V$, and the cross-entropy is
#
# $$\mathcal{L}_0 = -\ln \tfrac{1}{V} = \ln V = \ln 16384 \approx 9.70 \text{ nats}.$$
#
# GPT-2's initialisation gets close to this. All weights have standard deviation 0.02, so the logits
# start small and nearly equal (for logits that are independent $\mathcal{N}(0, s^2)$ the expected
# loss is about $\ln V + s^2/2$). The check matters in practice. An initial loss far *above*
# $\ln V$ means that the model starts out confidently wrong, and the first part of training is spent
# undoing the bad initialisation instead of learning. We measure it on real validation batches with
# the model shape used in training (`cpu` preset; `smoke` in CI):

# %%
seed_everything(1337)
m_cfg, t_cfg = get_preset("smoke" if SMOKE else "cpu", vocab_size=V)
model = GPT(m_cfg).eval()
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    losses = [model(*get_batch(val, 8, m_cfg.block_size, gen))[1].item() for _ in range(4 if SMOKE else 10)]
loss0 = float(np.mean(losses))
print(f"{m_cfg.n_layer} x {m_cfg.n_embd} model, {model.num_params():,} parameters")
print(f"loss at initialisation: {loss0:.3f} nats; ln(V) = ln({V}) = {math.log(V):.3f}; "
      f"excess {loss0 - math.log(V):+.3f}")

# %%
# NBVAL_CHECK_OUTPUT
assert abs(loss0 - math.log(V)) < 0.15, (loss0, math.log(V))
print("loss at initialisation is within 0.15 nats of ln(vocab size): the model starts out knowing nothing")

# %% [markdown]
# The number $\ln V$ is also a useful reference when reading a loss curve. The reference project's val
# loss of 4.03 with GPT-2's vocabulary is $e^{-4.03} \approx 1/56$ per token, the same as picking
# uniformly among about 56 tokens instead of 50,257. (Losses with different tokenizers cannot be
# compared directly, because a token covers a different amount of text. Chapter 5 uses bits per byte
# to compare them.)
#
# ## 7. Text from the untrained model
#
# Finally, we let the untrained model write. Every document in the corpus begins with
# `<|endoftext|>` followed by `Title:`, so we give it that as a prompt and sample one token at a time
# (generation is the subject of Chapter 6):

# %%
prompt = [enc.eot_token, *enc.encode_ordinary("Title:")]
out = model.generate(torch.tensor([prompt]), 30 if SMOKE else 60, temperature=1.0, seed=7, n_valid=enc.n_vocab)
print(enc.decode(out[0, 1:].tolist()))

with torch.no_grad():
    probs = model(torch.tensor([prompt]))[0][0, -1].softmax(-1)  # (V,)
print(f"\nnext-token probabilities: max {probs.max():.5f}, min {probs.min():.5f}, uniform would be 1/V = {1 / V:.5f}")

# %% [markdown]
# This is gibberish, and it should be. The distribution over the next token is nearly flat (every
# token gets between 0.00002 and 0.00022, around 1/V = 0.00006), so the model draws tokens about
# uniformly from the domain vocabulary. (A token can hold part of a multi-byte UTF-8 character;
# drawn without the rest of it, it prints as `�`. This sample has none.) The pieces look vaguely
# like movie plots (names such as Halldór and Eleanor, whole words such as "revolver" and
# "herbalist", fragments run together such as "passagehemat") only because the BPE was trained on
# movie plots. The *order* is random: the blocks are wired correctly, but nothing has been learned
# yet. Chapter 4 trains this model and the text becomes readable. Compare its samples to this one.
#
# ## What we built, and what comes next
#
# - **LayerNorm** by hand (per-token mean and biased variance over the last dimension, $\epsilon$
#   inside the root, learned $\gamma, \beta$), equal to `nn.LayerNorm`.
# - The **MLP** (Linear $C \to 4C$, GELU with the tanh approximation, Linear $4C \to C$), equal to
#   `helpers.model.MLP`.
# - The **pre-LN block** $x + \mathrm{Attn}(\mathrm{LN}(x))$, $x + \mathrm{MLP}(\mathrm{LN}(x))$, equal
#   to `helpers.model.Block`.
# - The **whole GPT** (token and position embeddings, blocks, final LayerNorm, tied output layer),
#   equal to `helpers.model.GPT`, logits and loss.
# - Why: residuals carry the gradient through depth, pre-LN keeps that path clean, $1/\sqrt{2L}$ keeps
#   the stream's scale independent of depth, and tying saves a $V \times C$ matrix, which is most of a
#   small model when the vocabulary is large.
# - Checks that should pass before any training run: the parameter count ($12C^2 + 13C$ per block),
#   the initial loss ($\approx \ln V$), and flat, meaningless samples.
#
# `helpers.model.GPT` (with `helpers.config.PRESETS` for its shapes) is the model that the rest of the
# book and the `plotgpt` CLI train. **Chapter 4** trains it: batches from the memmaps, AdamW with weight decay
# on the matrices only, a warm-up and cosine learning-rate schedule, gradient clipping, mixed
# precision, checkpoints, and a live loss curve that starts at about $\ln V \approx 9.7$.
