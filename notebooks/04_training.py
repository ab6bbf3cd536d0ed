# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 4: Training
#
# We have data (chapter 1) and a model (chapters 2 and 3). Training is the loop that turns the
# random model into one that writes plots: sample a batch of windows, compute the loss, take a
# gradient step, repeat. The loop itself is about thirty lines, and section 8 writes them out;
# what makes it work well on a small computer is in the details this chapter takes one at a time:
#
# 1. **AdamW** and which parameters get weight decay;
# 2. the **learning-rate schedule**: linear warmup, then cosine decay;
# 3. **gradient accumulation**: a big batch on a small machine;
# 4. **mixed precision** (AMP): which dtype where, and why fp16 needs a GradScaler;
# 5. **gradient clipping**;
# 6. **Muon**, an optimizer for the weight matrices;
# 7. an **average of the weights**, to evaluate and keep;
# 8. **the loop** itself, by hand, checked weight for weight against `helpers.train.train`;
#
# and then the full run, with a live loss plot and a sample at every evaluation.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %%
import math

import matplotlib.pyplot as plt
import torch

from helpers import book, paths
from helpers.config import ModelConfig, TrainConfig, get_preset
from helpers.config import resolve_preset
from helpers.device import detect_device, pick_dtype, seed_everything
from helpers.dataset import get_batch
from helpers.model import GPT
from helpers.optim import configure_optimizer, lr_at
from helpers.train import train

seed_everything(0)
data = book.sample_data()
print(f"{data.meta['splits']['train']['tokens']:,} training tokens, vocabulary {data.vocab_size:,}")

# %% [markdown]
# ## 1. AdamW and its decay groups
#
# Adam keeps, for every parameter, running averages of the gradient ($m$) and of its square
# ($v$), and steps by $m / \sqrt{v}$: each parameter gets its own step size. The betas set how
# long those averages remember; GPT-2 style training uses $\beta_1 = 0.9$, $\beta_2 = 0.95$
# (a shorter memory for $v$ than the default 0.999, which is steadier when the loss is noisy).
#
# **Weight decay** shrinks weights toward zero at every step ($w \leftarrow w - \eta\lambda w$),
# a pull toward simpler functions. *AdamW* applies it directly to the weights, not through the
# gradient, so it is not rescaled by $\sqrt{v}$. It makes sense for the matrices that mix
# features (and the token embedding); for biases and LayerNorm gains it only hurts, so those get
# none. The rule is simple: decay every parameter with two or more dimensions.
#
# How strong? GPT-2 used $\lambda = 0.1$. A small model that makes many passes over a small
# corpus starts to memorise it, and there a much stronger pull pays: on plots-bench a decay of 1.0
# took the `cpu-fp32` preset from 1.978 to 1.958 bits per byte (round 4 in `bench/LOG.md`). What
# the presets use today, read from `helpers.config`:

# %%
# NBVAL_CHECK_OUTPUT
from helpers.config import PRESETS

for name in ("cpu", "cpu-fp32", "gpu-124m"):
    print(f"{name:9s} weight decay {PRESETS[name].train.weight_decay:g}")

# %%
model = GPT(ModelConfig(vocab_size=data.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=64))
decay = [(n, tuple(p.shape)) for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [(n, tuple(p.shape)) for n, p in model.named_parameters() if p.dim() < 2]
print("weight decay 0.1 :", ", ".join(n for n, _ in decay[:5]), "...", f"({len(decay)} tensors)")
print("no weight decay  :", ", ".join(n for n, _ in no_decay[:5]), "...", f"({len(no_decay)} tensors)")

# %%
# NBVAL_CHECK_OUTPUT
opt = configure_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
ids = lambda ps: {id(p) for p in ps}  # noqa: E731
mine = [p for p in model.parameters() if p.dim() >= 2]
assert ids(opt.param_groups[0]["params"]) == ids(mine) and opt.param_groups[0]["weight_decay"] == 0.1
assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.defaults["betas"] == (0.9, 0.95)
print("matches helpers.optim.configure_optimizer")

# %% [markdown]
# ## 2. Warmup, then cosine decay
#
# At the start the weights are random and the gradients large and unreliable: a full-size step
# can throw the model somewhere it never recovers from. So the learning rate **warms up**
# linearly over the first steps. Afterwards it **decays** along half a cosine to a floor (here
# 10 % of the peak): big steps while far from a good solution, small ones to settle into it.
#
# Written out by hand, then checked against `helpers.optim.lr_at`, the version the training
# loop uses:

# %%
def my_lr(step, peak=1e-3, warmup=100, max_iters=1000, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)  # linear warmup (never exactly zero)
    progress = min((step - warmup) / (max_iters - warmup), 1.0)  # 0 -> 1 along the decay
    return peak * floor + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - peak * floor)


sched = TrainConfig(lr=1e-3, warmup_iters=100, max_iters=1000, min_lr_ratio=0.1)
steps = list(range(1200))
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(steps, [my_lr(s) for s in steps], lw=3, alpha=0.4, label="by hand")
ax.plot(steps, [lr_at(s, sched) for s in steps], "--", label="helpers.optim.lr_at")
ax.axvline(100, color="grey", lw=0.8)
ax.text(105, 9e-4, "end of warmup", fontsize=8)
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("Linear warmup, cosine decay to 10 % of the peak")
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
assert all(math.isclose(my_lr(s), lr_at(s, sched)) for s in steps)
print("matches helpers.optim.lr_at")

# %% [markdown]
# On a laptop we often train for a fixed *time*, not a fixed number of steps. `lr_at` takes a
# `time_progress` argument for that: with `--max-minutes`, the cosine is as far along as the
# steps or the clock, whichever is further, so the learning rate reaches its floor when the time
# is up instead of being cut off mid-decay.
#
# ## 3. Gradient accumulation
#
# Bigger batches give less noisy gradients, but a batch of activations has to fit in memory.
# Accumulation gets the big batch's gradient from several small ones: run `k` micro-batches,
# each loss divided by `k`, and let `.backward()` *add* their gradients before one optimizer
# step. Because the loss is a mean over tokens, the sum of `k` micro-batch means divided by `k`
# is exactly the mean over the big batch: the same gradient, up to float rounding.

# %%
seed_everything(1)
tiny = GPT(ModelConfig(vocab_size=data.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32))
x, y = get_batch(data.tokens("train"), 8, 32, torch.Generator().manual_seed(0))

tiny.zero_grad()
_, loss = tiny(x, y)  # one batch of 8
loss.backward()
big = [p.grad.clone() for p in tiny.parameters()]

tiny.zero_grad()
for xm, ym in zip(x.chunk(4), y.chunk(4)):  # four micro-batches of 2
    _, loss = tiny(xm, ym)
    (loss / 4).backward()  # gradients add up across backward() calls
accum = [p.grad.clone() for p in tiny.parameters()]
print(f"largest difference between the two gradients: {max((a - b).abs().max().item() for a, b in zip(big, accum)):.2e}")

# %%
# NBVAL_CHECK_OUTPUT
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big, accum))
print("4 micro-batches of 2 give the gradient of one batch of 8")

# %% [markdown]
# `helpers.train.train` does the same with `grad_accum` (`--grad-accum` on the command line):
# the `gpu-124m` preset runs 8 micro-batches of 16 × 256 tokens for each step, so the
# reference's model fits an 8 GB card and still sees 32,768 tokens per update. A test in
# `tests/test_train.py` checks that a whole run with accumulation ends at the same weights.
# Since the split changes nothing the optimizer sees, a bigger card runs the same step in fewer,
# bigger micro-batches, which is faster: on a GPU the loop picks the split from the card's free
# memory (`helpers/memory.py`, `--micro-batch` to choose it yourself; the Performance page has
# the numbers).
#
# ## 4. Mixed precision
#
# Matrix multiplications are most of the work, and they run much faster in 16-bit formats on
# hardware that supports them. *Automatic mixed precision* (`torch.autocast`) runs the matmuls in
# 16 bits and keeps the numerically sensitive parts (softmax, losses, reductions, the weights and
# optimizer state themselves) in float32.
#
# | format | exponent bits | mantissa bits | largest value | smallest normal |
# |---|---|---|---|---|
# | float32 | 8 | 23 | 3.4e38 | 1.2e-38 |
# | bfloat16 | 8 | 7 | 3.4e38 | 1.2e-38 |
# | float16 | 5 | 10 | 65,504 | 6.1e-5 |
#
# **bfloat16** has float32's range with less precision: gradients neither overflow nor vanish,
# so it needs no special care. **float16** is more precise but its range is tiny: small
# gradients *underflow* to zero. The **GradScaler** multiplies the loss by a large factor before
# `backward()` (so the gradients are large enough to be represented), divides them back before
# the optimizer step, and skips the step and lowers the factor when it sees an inf. Hence the rule
# in `helpers.device.pick_dtype`: bf16 on GPUs that have it, fp16 + GradScaler on older GPUs;
# on a CPU, bf16 where the processor computes it in hardware (AVX512-BF16, AMX, Arm BF16: about
# twice the tokens/s of float32 for the `cpu` preset, at the same quality per minute - see the
# Performance page), float32 elsewhere.

# %%
g = torch.tensor([1e-3, 1e-5, 1e-7, 1e-9])
print("a gradient in float32 :", g.tolist())
print("        in float16    :", g.half().float().tolist(), " <- the small ones underflow to 0")
print("        in bfloat16   :", g.bfloat16().float().tolist(), " <- kept, with ~3 significant digits")
print("scaled by 2**16 in float16, then unscaled:", ((g * 2**16).half().float() / 2**16).tolist())

# %%
device = detect_device()
print(f"this machine: device {device}, training dtype {pick_dtype(device)}")

# %% [markdown]
# ## 5. Gradient clipping
#
# Now and then a batch produces a huge gradient (a rare token, an unlucky window), and one big
# step can undo hours of training. Clipping rescales the whole gradient vector whenever its
# norm exceeds 1.0, keeping its direction: $g \leftarrow g \cdot \min(1, 1/\lVert g\rVert)$.

# %%
def clip_by_hand(params, max_norm=1.0):
    # one norm over all parameters, from each tensor's norm (summing half a million float32 squares
    # directly loses digits: torch's way agrees with it only to about 2e-5 on a 16,384-row table)
    total = torch.sqrt(sum(p.grad.norm() ** 2 for p in params))
    scale = min(1.0, max_norm / (total.item() + 1e-6))
    for p in params:
        p.grad.mul_(scale)
    return total


tiny.zero_grad()
_, loss = tiny(x, y)
(loss * 100).backward()  # an exaggerated gradient
params = list(tiny.parameters())
saved = [p.grad.clone() for p in params]
norm_mine = clip_by_hand(params)
mine_clipped = [p.grad.clone() for p in params]
for p, s in zip(params, saved):
    p.grad.copy_(s)
norm_torch = torch.nn.utils.clip_grad_norm_(params, 1.0)
print(f"gradient norm before clipping: {norm_mine.item():.1f}; after: "
      f"{torch.sqrt(sum((p.grad ** 2).sum() for p in params)).item():.3f}")

# %%
# NBVAL_CHECK_OUTPUT
assert torch.isclose(norm_mine, norm_torch) and all(torch.allclose(a, p.grad, atol=1e-6)
                                                      for a, p in zip(mine_clipped, params))
print("matches torch.nn.utils.clip_grad_norm_")

# %% [markdown]
# ## 6. Muon: the same step in every direction
#
# Adam gives every *number* its own step size. But most of a GPT's parameters are matrices, and
# a matrix's gradient is typically dominated by a few directions: its singular values span
# orders of magnitude, so a step along it mostly reinforces what the matrix already does.
# **Muon** (Keller Jordan, 2024; the optimizer of the nanoGPT speedruns) keeps a momentum average
# $M$ of the gradient like Adam's $m$, but steps along the nearest *semi-orthogonal* matrix to
# it: with $M = U S V^\top$ (its SVD), the step is $U V^\top$, every singular value set to 1.
#
# An SVD per matrix per step would be slow. A few **Newton-Schulz** iterations get there with
# matrix products only: scale $X$ so its singular values are at most 1, then repeat
# $X \leftarrow aX + (bA + cA^2)X$ with $A = XX^\top$, a polynomial that pushes every singular
# value toward 1. The coefficients below are tuned to do it in five steps, roughly (into
# 0.7-1.2, which trains as well as exactly 1):

# %%
def my_orthogonalize(g, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g  # work on the short side: A = X X^T is then the small matrix
    x = x / x.norm()  # the Frobenius norm bounds the largest singular value
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return x.T if tall else x


tiny.zero_grad()
_, loss = tiny(x, y)
loss.backward()
grad = tiny.transformer.h[0].mlp.c_fc.weight.grad  # a (128, 32) matrix
before = torch.linalg.svdvals(grad)
after = torch.linalg.svdvals(my_orthogonalize(grad))
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy(before / before.max(), "o-", label="gradient (scaled to a largest value of 1)")
ax.semilogy(after, "s-", label="after 5 Newton-Schulz steps")
ax.set_xlabel("singular value, largest first")
ax.set_title("Muon's step: every direction the same size")
ax.legend()
plt.show()
present = before > 1e-4 * before.max()  # directions the gradient has at all
print(f"gradient: rank {int(present.sum())} of {len(before)}, largest / smallest nonzero singular value "
      f"{before.max() / before[present].min():.0f}; after: {after[present].min():.2f} to {after.max():.2f}")

# %%
# NBVAL_CHECK_OUTPUT
# torch.optim.Muon's own step, with no momentum, decay or learning-rate scaling, is -orthogonalize(grad):
w = torch.zeros_like(grad, requires_grad=True)
w.grad = grad.clone()
torch.optim.Muon([w], lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0, adjust_lr_fn="original").step()
theirs = -w.detach() / max(1.0, grad.shape[0] / grad.shape[1]) ** 0.5  # "original" scales tall matrices up
assert torch.allclose(my_orthogonalize(grad), theirs, atol=0.03)  # torch iterates in bfloat16, we in float32
assert after[present].min() > 0.5 and after.max() < 1.3 and after[~present].max() < 1e-3
print("matches torch.optim.Muon's orthogonalised step (to bfloat16 precision)")

# %% [markdown]
# One direction is missing altogether: the LayerNorm before this layer centres its input, so the
# gradient has rank 31, not 32. Orthogonalising does not invent directions; that one stays at
# zero (the last point of the plot).
#
# Muon applies this to the attention and MLP matrices inside the blocks; the token embedding
# (which is also the output layer) and the LayerNorm gains stay on AdamW. Does it pay on a small
# computer? On plots-bench (round 6 in `bench/LOG.md`) Muon reached the same quality as AdamW from
# 21 % fewer tokens, but on 2 CPU cores its Newton-Schulz products cost 18 % of the tokens per
# second, and the two ended tied (1.925 against 1.926 bits per byte); on the `cpu` preset's wider
# matrices it halved the tokens per second (round 13). So PlotGPT trains with AdamW only, and
# Muon left the library; where matrix products are cheap next to the rest of the step, on a GPU,
# its extra learning per token is free, and `torch.optim.Muon` is there to try.

# %% [markdown]
# ## 7. An average of the weights
#
# Late in a run the weights no longer walk downhill: each step overshoots a little, and they
# jitter around the bottom of the valley. The cosine decay shrinks those steps, but on a small
# corpus the model has started to memorise by the time the learning rate is small. A cheaper
# way to the bottom is to keep, beside the weights being trained, an **exponential moving
# average** of them, $\bar w \leftarrow d\,\bar w + (1 - d)\,w$ after every step, and to
# evaluate and save $\bar w$. With $d = 0.995$ it averages roughly the last $1/(1-d) = 200$
# steps. Training is untouched; only what we keep changes.
#
# A toy first: noisy gradient steps on a long, narrow bowl, $L(w) = (w_1^2 + 10\,w_2^2)/2$.

# %%
def bowl(w):
    return 0.5 * (w[0] ** 2 + 10 * w[1] ** 2)


torch.manual_seed(0)
w = torch.tensor([3.0, 1.0])
avg = w.clone()
walk, walk_avg = [w.clone()], [avg.clone()]
for t in range(300):
    grad = torch.tensor([1.0, 10.0]) * w + 2.0 * torch.randn(2)  # the true gradient plus noise
    w = w - 0.12 * grad
    d = min(0.95, (1 + t) / (10 + t))  # a short memory at first, so the start is forgotten quickly
    avg = d * avg + (1 - d) * w
    walk.append(w.clone())
    walk_avg.append(avg.clone())
walk, walk_avg = torch.stack(walk), torch.stack(walk_avg)
late = slice(100, None)  # once both have arrived
loss_w = torch.stack([bowl(v) for v in walk[late]]).mean()
loss_avg = torch.stack([bowl(v) for v in walk_avg[late]]).mean()
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(walk[:, 0], walk[:, 1], ".-", lw=0.5, ms=3, alpha=0.5, label=f"the weights (mean loss {loss_w:.2f})")
ax.plot(walk_avg[:, 0], walk_avg[:, 1], "-", lw=2, label=f"their moving average (mean loss {loss_avg:.2f})")
ax.plot(0, 0, "k*", ms=12)
ax.set_title("Noisy steps jitter around the minimum (*); their average sits near it")
ax.legend(fontsize=8)
plt.show()

# %%
assert loss_avg < 0.5 * loss_w
print("over the last 200 steps the average's loss is less than half the weights' own")

# %% [markdown]
# In the library the average is `helpers.ema.EMA`; `--ema-decay 0.995` (or `ema_decay` in a
# `TrainConfig`) turns it on. Written by hand beside it for a few real AdamW steps of the tiny
# model, the two must agree:

# %%
def my_ema_update(averaged, params, n, decay):
    d = min(decay, (1 + n) / (10 + n))  # the same short memory at the start
    with torch.no_grad():
        for a, p in zip(averaged, params):
            a.mul_(d).add_(p, alpha=1 - d)


from helpers.ema import EMA

opt = configure_optimizer(tiny, TrainConfig(lr=3e-3), "cpu")
tiny.zero_grad(set_to_none=True)
lib = EMA(tiny, 0.995)
mine = [p.detach().clone() for p in tiny.parameters()]
for n in range(20):
    _, loss = tiny(x, y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    my_ema_update(mine, tiny.parameters(), n, 0.995)
    lib.update(tiny)

# %%
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine, lib.model.parameters()))
print("matches helpers.ema.EMA")

# %% [markdown]
# During training the loop evaluates the average, keeps the best average as `best.safetensors`,
# and stores the trained weights beside it in each resumable checkpoint, so `--resume` carries on
# exactly. On plots-bench (round 8 in `bench/LOG.md`) the average was the biggest single
# gain of any search round: the `cpu` preset's shape scored 1.853 bits per byte with it against
# 1.986 without, and the `cpu-fp32` preset 1.864 against 1.932. At a learning rate high enough
# to learn fast, the trained weights are noisy; the average takes the noise out without waiting
# for the learning rate to fall, and by then a small corpus has been memorised. Both CPU presets
# use it: `cpu-fp32` with $d = 0.995$, and `cpu`, which makes about 4,000 steps in 10 minutes on a
# fast CPU, with $d = 0.998$ (about the last 500 steps; round 15 in `bench/LOG.md`).

# %% [markdown]
# ## 8. The loop, by hand
#
# Everything above, in the order a training step uses it: draw a batch of random windows, set
# the learning rate for this step, forward, backward, clip, step, forget the gradients. This is
# the core of `helpers.train.train`; what the library adds around it (evaluations, checkpoints,
# the exact resume, the averaged weights, several processes) changes nothing in these numbers.
# To show it, we train a small model for a dozen steps by hand, then the library from the same
# seed, and compare every weight.

# %%
# NBVAL_CHECK_OUTPUT
from dataclasses import replace

from helpers import checkpoint

loop_model_cfg = ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=64)
loop_cfg = TrainConfig(batch_size=8, max_iters=12, lr=3e-3, warmup_iters=4, eval_interval=1000, eval_iters=1,
                       sample_tokens=0, dtype="float32", seed=7)


def my_train(data, model_cfg, cfg):
    seed_everything(cfg.seed)
    vocab = -(-data.vocab_size // 64) * 64  # the embedding table rounded up to a multiple of 64 (faster matmuls)
    model = GPT(replace(model_cfg, vocab_size=vocab))
    optimizer = configure_optimizer(model, cfg, "cpu")
    batches = torch.Generator().manual_seed(cfg.seed)  # the batch stream, apart from dropout's randomness
    tokens = data.tokens("train")
    for step in range(cfg.max_iters):
        x, y = get_batch(tokens, cfg.batch_size, model_cfg.block_size, batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)  # warmup, then cosine
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model


mine = my_train(data, loop_model_cfg, loop_cfg)
result = train(data, loop_model_cfg, loop_cfg, paths.checkpoints_root() / "book-loop", overwrite=True, device="cpu",
               progress=False, log=lambda *_: None)
theirs = checkpoint.load(result.last_checkpoint).model
assert result.step == loop_cfg.max_iters
assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
print(f"{loop_cfg.max_iters} steps by hand == helpers.train.train, bit for bit")

# %% [markdown]
# ## The full run
#
# `helpers.train.train` is section 8's loop (`train_step` and `loop` in `helpers/train.py`) with what
# a real run needs around it: an evaluation every `eval_interval` steps
# (mean loss over a few batches of each split, and **bits per byte** on validation, a number
# that does not depend on the tokenizer), a demo generation, checkpoints (`step-*.safetensors`
# with everything needed to resume, `best.safetensors` with the best weights), early stopping,
# a warning when the model starts to memorise, and a clean stop on Ctrl-C. Interrupting this
# cell (the ■ button) stops the run at the next step and leaves a resumable checkpoint.
#
# The preset follows the hardware: `gpu-124m` (the reference's 124M model) on a GPU, `cpu` on a
# laptop, and a toy size under CI. On a CPU without bf16 hardware, `cpu` means `cpu-fp32`
# (`helpers.config.resolve_preset`): float32 gives such a CPU fewer tokens per minute, and a
# smaller model learns more from them. Both evaluate and keep the average of their
# weights (section 7). The plot below updates in place at every evaluation. With
# `patience=3` the run stops by itself once validation loss has not improved for three
# evaluations in a row.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.plots import LiveLossPlot

if SMOKE:
    preset, overrides = "smoke", dict(max_iters=60, eval_interval=20)
elif device == "cuda":
    preset, overrides = "gpu-124m", dict(max_minutes=60)
else:  # a fixed number of steps (not minutes) keeps the book's run reproducible; it stops before
    # this model starts to memorise the sample corpus (bench/LOG.md, 2026-12-04)
    preset, overrides = resolve_preset("cpu", device), dict(max_iters=800, eval_interval=100, patience=3)
model_cfg, train_cfg = get_preset(preset, **overrides)
run_dir = paths.checkpoints_root() / book.CHAPTER_RUN
print(f"preset {preset}: {model_cfg.n_layer} layers x {model_cfg.n_embd}, block {model_cfg.block_size}, "
      f"batch {train_cfg.batch_size} x {train_cfg.grad_accum}; writing to {run_dir}")
live = LiveLossPlot(title=f"preset {preset} on the sample corpus")
result = train(data, model_cfg, train_cfg, run_dir, overwrite=True, callback=live, progress=False)

# %% [markdown]
# Reading the curves: the training loss (blue) keeps falling; the validation loss (orange) is
# what matters. In this run both fell at every evaluation, and each evaluation was a new best,
# down to a validation loss of 5.515 (1.840 bits per byte) at step 800. But the two curves part.
# The gap between them grew from 0.26 at step 100 to 1.36 at step 800, and over the last 100
# steps validation loss fell by 0.002 while training loss fell by 0.135. The sample has about
# 241,000 training tokens, and 800 steps of 3,072 tokens are about ten passes over them: the
# model already predicts the plots it has seen far better than new ones. Set to 1,500 steps, the
# same run went on to *memorise* them: its validation loss rose from about step 950 on (measured
# outside this notebook), the log warned so, and `patience` stopped it at step 1,200. That is why
# `best.safetensors` keeps the weights from the best validation loss, not the last ones (in this
# run the best was the last, at step 800).
# A bigger corpus (chapter 1 shows how to prepare your own, the README how to download the CMU
# corpus) moves that point much further out.

# %%
evals = [h for h in result.history if h["kind"] == "eval"]
best = min(evals, key=lambda h: h["val_loss"])
print(f"stopped after {result.step} steps ({result.stop_reason}); "
      f"best val loss {best['val_loss']:.3f} = {best['val_bpb']:.3f} bits per byte at step {best['step']}")
print("\nthe last demo sample:\n" + evals[-1].get("sample", ""))

# %% [markdown]
# ## What we built
#
# AdamW with decay on matrices only, a warmup + cosine schedule, gradient accumulation that is
# exactly a bigger batch, mixed precision with the right dtype per device, clipping, Muon's
# orthogonalised step and an average of the weights — each checked against the version in
# `helpers/` or in torch — the loop by hand, equal weight for weight to `helpers.train.train`,
# and a real run that saved `checkpoints/book/best.safetensors`. From the command
# line much the same run is `plotgpt train --preset cpu --max-minutes 4` (what `make run` does).
#
# Next, chapter 5 continues training this model on a second corpus, and measures how good its
# plots are: how repetitive, and how much they copy.
