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
# # Chapter 6: Sampling with widgets
#
# A trained model gives, for any text so far, a probability for every possible next token.
# *Sampling* is how we turn that distribution into text, one token at a time — and the knobs
# that shape it (temperature, top-k, top-p) change the writing more than most people expect.
# This chapter looks at the distribution itself, then gives you a panel to play with.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.book import SMOKE
from helpers.device import print_versions

print_versions()
print("smoke mode (CI): small sizes" if SMOKE else "full size")

# %%
import matplotlib.pyplot as plt
import torch

from helpers import book, checkpoint, sample
from helpers.plots import next_token_bars
from helpers.sample import SampleSettings

ck = checkpoint.load(book.chapter_checkpoint())
print(f"model: {ck.path} ({ck.model.num_params() / 1e6:.1f}M parameters, trained {ck.info.get('step', '?')} steps)")

# %% [markdown]
# ## The next-token distribution
#
# Here are the ten most likely next tokens after the start of a plot. **Temperature** $T$
# divides the logits before the softmax, $p_i \propto e^{z_i / T}$: below 1 it sharpens the
# distribution toward the favourite, above 1 it flattens it toward the long tail.

# %%
context = "Title: The Last Lighthouse\nPlot: A"
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=False)
for ax, t in zip(axes, (0.5, 1.0, 1.5)):
    next_token_bars(ax, sample.next_token_probs(ck, context, k=10, temperature=t))
    ax.set_title(f"temperature {t}")
fig.suptitle(f"next token after {context!r}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Three ways to pick
#
# - **Greedy** (`do_sample=False`) always takes the most likely token. It is deterministic, and
#   it loops: once a phrase is the most likely continuation of itself, it repeats forever —
#   exactly the "the vampire … the vampire" of the reference project.
# - **Top-k** samples only among the $k$ most likely tokens, cutting off the tail of unlikely
#   ones that derail a text.
# - **Top-p** (nucleus) samples among the smallest set of tokens whose probabilities add up to
#   $p$: a narrow set where the model is sure, a wide one where many continuations are fine.
#
# Each is one argument of `helpers.sample.generate`, the one function the CLI, this panel and
# the tests all call.

# %%
# NBVAL_IGNORE_OUTPUT
n = 40 if SMOKE else 120
for label, s in [("greedy", SampleSettings(n, do_sample=False)),
                 ("temperature 0.8, top-k 50", SampleSettings(n, temperature=0.8, top_k=50, seed=1)),
                 ("temperature 1.0, top-p 0.9", SampleSettings(n, temperature=1.0, top_k=None, top_p=0.9, seed=1))]:
    print(f"--- {label} ---\n{sample.generate(ck, 'Title:', 1, s)[0]}\n")

# %% [markdown]
# Streaming: `helpers.sample.stream` yields the text piece by piece as tokens are produced, so a
# user watches a plot being written instead of waiting for it (the panel below uses it). It
# gives exactly the text `generate` returns for the same settings:

# %%
# NBVAL_CHECK_OUTPUT
s = SampleSettings(30, seed=3)
streamed = "Title:" + "".join(sample.stream(ck, "Title:", s))
assert streamed == sample.generate(ck, "Title:", 1, s)[0]
print("stream() and generate() agree")

# %% [markdown]
# ## The panel
#
# Type a beginning, set the knobs, press **Generate**: the text streams in, and the chart shows
# the next-token probabilities after the last thing written. The checkpoint picker lists every
# `best.safetensors` under `checkpoints/`, newest first, so after chapter 5 it opens on the
# fine-tuned ghost-story model (`book-ghost`); chapter 4's base model is in the list too.
#
# In the static book the widgets cannot run (there is no Python behind a web page), so the cell
# also calls the same function once with the default settings, and what you see below the
# panel is its real output: the ghost-story model's, since the picker opens on it.

# %%
# NBVAL_IGNORE_OUTPUT
from IPython.display import display

from helpers.widgets import SamplingPanel

panel = SamplingPanel(prompt="Title: The Midnight Ferry\nPlot:")
display(panel.widget)
panel.max_new_tokens.value = 40 if SMOKE else 150
print(panel.generate())  # the same call the Generate button makes, with the defaults

# %% [markdown]
# ## What we built
#
# The next-token distribution and how temperature reshapes it; greedy, top-k and top-p
# sampling; streaming generation; and a panel over the same tested function. From the command
# line: `plotgpt generate --prompt "Title: The Midnight Ferry" --temperature 0.8 --top-k 50`.
#
# That is the whole pipeline: a corpus, a tokenizer, a model, a training run, a judgement of
# the results, and a way to write with it. To do it for your own domain, see *Your own domain*
# in this book.
