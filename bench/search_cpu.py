"""The search behind the `cpu` preset: which shape, vocabulary, regularisation and dtype give the
lowest plots-bench v1 bits per byte in 10 minutes on 2 cores.

Three steps, each a subcommand:

  python bench/search_cpu.py prepare --out /tmp/pb          # the shared corpus at each vocab size
  python bench/search_cpu.py measure --out /tmp/pb          # tokens/s of every candidate, here
  python bench/search_cpu.py run A B ... --out /tmp/pb [--minutes 10 | --iters-from-measure]

`run --minutes 10` is the benchmark itself (wall clock on this machine). `--iters-from-measure`
turns each candidate's measured tokens/s on *this* machine into the number of steps it would
take in the budget, so trials can also run elsewhere (several at once, on a bigger CPU box,
each pinned to 2 cores) and still mean "10 minutes here". Results append to OUT/results.jsonl.
The corpus is read from ../shared/data and never copied into the repository.

What each round found is recorded once, in bench/LOG.md. Rounds 1-17 tried options that no preset
adopted and that have since left the library (helpers.config.RETIRED); a trial that turns one on
runs from the commit tagged search-cpu-r17 (`git worktree add ../r17 search-cpu-r17`), where this
file reproduces them exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers.throughput import measure_train_step  # noqa: E402
from helpers.config import RETIRED, RETIRED_AT, ModelConfig, TrainConfig, get_preset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "movies-plot-final.txt"

# name -> overrides of the cpu preset (vocab picks the prepared folder)
BASE = dict(vocab=4096, n_layer=4, n_embd=256, n_head=4, block_size=128, batch_size=16, dropout=0.1,
            lr=2e-3, warmup_iters=100, weight_decay=0.1, dtype="float32")
# Round 3's finding, the base of its later trials and of round 4: rotary positions, no dropout or
# biases, lr 3e-3 (at 4 x 256, and at the 4 x 192 that won)
R3 = dict(pos_emb="rope", dropout=0.0, bias=False, lr=3e-3)
R3_192 = dict(R3, n_embd=192, n_head=3)
R4 = dict(R3_192, weight_decay=1.0)  # round 4's winner, the cpu-fp32 preset
R5 = dict(R4, mlp="relu2", qk_norm=True, logit_softcap=15.0)  # round 5's first trial, the base of its later ones
R6 = dict(R4, mlp="relu2", optimizer="muon")  # round 5's winner (the cpu-fp32 preset) with Muon
R7 = dict(R4, mlp="relu2", vocab=2048)  # round 6's winner, the cpu-fp32 preset
R8 = dict(R7, n_layer=6, n_embd=256, n_head=4, dtype="bfloat16")  # the same ideas at the bf16 CPUs' shape
R9 = dict(R8, weight_decay=2.0, ema_decay=0.995)  # round 8's winner
R10 = dict(R9, weight_decay=4.0)  # round 9's winner, the cpu preset until round 12
R12 = dict(R10, lr=4e-3, weight_decay=3.0)  # round 12's winner, the cpu preset
CANDIDATES: dict[str, dict] = {
    "v4096-4x256-fp32": {},
    "v2048-4x256-fp32": dict(vocab=2048),
    "v1024-4x256-fp32": dict(vocab=1024),
    "v2048-4x256-bf16": dict(vocab=2048, dtype="bfloat16"),
    "v2048-6x384-bf16-d2": dict(vocab=2048, n_layer=6, n_embd=384, n_head=6, dropout=0.2, lr=1.5e-3,
                                dtype="bfloat16"),
    "v2048-4x256-T256-bf16": dict(vocab=2048, block_size=256, batch_size=8, dtype="bfloat16"),
    "v2048-6x256-bf16-d2": dict(vocab=2048, n_layer=6, dropout=0.2, dtype="bfloat16"),
    "v1024-6x256-bf16-d2": dict(vocab=1024, n_layer=6, dropout=0.2, dtype="bfloat16"),
    "v2048-4x384-bf16-d2": dict(vocab=2048, n_embd=384, n_head=6, dropout=0.2, lr=1.5e-3, dtype="bfloat16"),
    "v2048-8x256-bf16-d2": dict(vocab=2048, n_layer=8, dropout=0.2, lr=1.5e-3, dtype="bfloat16"),
    # Round 2, after the faster CPU kernels (explicit bf16 attention, cheap dropout masks): 1.41x
    # the tokens in the budget, and 4 x 256 at dropout 0.2 now memorises before time runs out.
    "r2-v4096-4x256-d0.2": dict(dropout=0.2, dtype="bfloat16"),
    "r2-v4096-6x256-d0.2": dict(n_layer=6, dropout=0.2, dtype="bfloat16"),
    "r2-v4096-4x256-d0.3": dict(dropout=0.3, dtype="bfloat16"),
    "r2-v4096-6x256-d0.3": dict(n_layer=6, dropout=0.3, dtype="bfloat16"),
    "r2-v4096-4x384-d0.3": dict(n_embd=384, n_head=6, dropout=0.3, lr=1.5e-3, dtype="bfloat16"),
    "r2-v4096-8x256-d0.2": dict(n_layer=8, dropout=0.2, dtype="bfloat16"),
    # Round 3, on a CPU without bf16 hardware (2 Zen 3 cores, AVX2): float32 only, ~2,900 tok/s for
    # 4 x 256, so 10 minutes hold ~1.5M tokens (5 passes) - compute-bound, not data-bound.
    "r3-6x256-d0.2": dict(n_layer=6, dropout=0.2),  # the cpu preset as it is
    "r3-4x256-d0.1-rope": dict(pos_emb="rope"),
    "r3-4x192-d0-rope-nobias-lr3e-3": dict(R3_192),
    "r3-4x256-d0-rope-nobias-lr3e-3": dict(R3),
    "r3-4x128-d0-rope-nobias-lr3e-3": dict(R3, n_embd=128, n_head=4),
    "r3-4x192-d0-rope-nobias-lr3e-3-B8": dict(R3_192, batch_size=8),
    # Round 4, the same Zen 3: the round-3 winner memorises (train loss 3.2 against val 4.5 nats at
    # the end), so regularise without slowing the step: weight decay, which costs nothing per step.
    "r4-4x192-wd0.5": dict(R3_192, weight_decay=0.5),
    "r4-4x192-wd1": dict(R3_192, weight_decay=1.0),
    "r4-4x192-wd2": dict(R3_192, weight_decay=2.0),
    "r4-4x192-wd0.6-lr5e-3": dict(R3_192, lr=5e-3, weight_decay=0.6),
    "r4-v2048-4x192-wd1": dict(R3_192, vocab=2048, weight_decay=1.0),
    "r4-4x192-wd1-minlr0": dict(R3_192, weight_decay=1.0, min_lr_ratio=0.0),
    # the control round 3 lacked: the preset with a learned position table instead of rotary positions
    "r4-4x192-wd1-learned": dict(R3_192, pos_emb="learned", weight_decay=1.0),
    # Round 5, the same Zen 3: ideas from the nanoGPT speedruns that cost (almost) nothing per step,
    # on round 4's winner (the cpu-fp32 preset): relu(x)^2 in the MLP, normalised queries and keys,
    # a soft cap on the logits. All three together first (R5), then with one or two taken out.
    "r5-relu2-qknorm-cap15": dict(R5),
    "r5-relu2-qknorm": dict(R4, mlp="relu2", qk_norm=True),
    "r5-relu2-cap15": dict(R4, mlp="relu2", logit_softcap=15.0),
    "r5-relu2": dict(R4, mlp="relu2"),  # the winner: the other two add nothing beyond the noise
    "r5-T256-B8": dict(R5, block_size=256, batch_size=8),  # more context for names, the same tokens a step
    "r5-lr6e-3": dict(R5, lr=6e-3),  # QK-norm is said to allow a higher lr
    "r5-relu2-5x192": dict(R4, mlp="relu2", n_layer=5),
    # Round 6, the same Zen 3: the 20-minute control showed the preset is not short of steps but of
    # what each token teaches it. Muon (helpers/muon.py), the speedruns' optimizer, on the blocks'
    # matrices, at the AdamW lr and weight decay (Moonshot's RMS matching makes them carry over).
    "r6-muon": dict(R6),
    "r6-muon-x2": dict(R6, muon_lr_scale=2.0),  # Keller Jordan's lrs are ~2.5x Moonshot's match here
    "r6-muon-x0.5": dict(R6, muon_lr_scale=0.5),
    "r6-muon-B32": dict(R6, batch_size=32),  # Newton-Schulz costs per step: half as much per token
    # and the vocabulary again: 2,048 tokens came out ahead (within the noise) in round 4
    "r6-relu2-v2048": dict(R4, mlp="relu2", vocab=2048),
    # Round 7, the same Zen 3, from round 6's winner (the cpu-fp32 preset): its validation curve is
    # still falling steeply at 10 minutes, so knobs that cost nothing per step
    "r7-v1024": dict(R7, vocab=1024),  # the vocabulary trend once more: a smaller output layer
    "r7-wd1.5": dict(R7, weight_decay=1.5),  # the squared ReLU and the smaller vocabulary moved the optimum?
    "r7-beta2-0.99": dict(R7, beta2=0.99),  # small batches: a longer memory for Adam's second moment
    # it still memorises (train loss 3.05 against val 3.86 nats at the end), so augment the data:
    # a token now and then arrives as the two tokens BPE merged it from (helpers/augment.py)
    "r7-split0.1": dict(R7, token_split=0.1),
    "r7-lr4e-3": dict(R7, lr=4e-3),  # the lr was last searched at round 3's GELU and 4,096 tokens
    "r7-lr2e-3": dict(R7, lr=2e-3),
    "r7-6heads": dict(R7, n_head=6),  # six heads of 32 instead of three of 64: the same FLOPs
    "r7-B24": dict(R7, batch_size=24),  # fewer, less noisy steps
    "r7-warmup50": dict(R7, warmup_iters=50),  # 100 warmup steps are 7 % of the budget
    # Round 8, on a CPU with bf16 hardware (2 Zen 5 cores, AVX-512 BF16): rounds 3-7's findings (rotary
    # positions, squared ReLU, no biases, weight decay 1.0, 2,048 tokens) had only been measured in
    # float32. In bf16 the budget holds 2-3x the tokens, so a bigger model can afford to learn them.
    "r8-fp32preset-bf16": dict(R7, dtype="bfloat16"),  # the cpu-fp32 preset, in bf16
    "r8-6x256": dict(R8),
    "r8-6x256-d0.1": dict(R8, dropout=0.1),
    # an average of the weights over the last ~200 steps is what is evaluated and kept (helpers/ema.py)
    "r8-6x256-ema": dict(R8, ema_decay=0.995),
    # the average won by 0.13 and then memorised after ~1,650 steps: regularise it, and give it a bigger model
    "r8-6x256-d0.1-ema": dict(R8, dropout=0.1, ema_decay=0.995),
    "r8-6x384-d0.2-ema": dict(R8, n_embd=384, n_head=6, dropout=0.2, lr=2e-3, ema_decay=0.995),
    "r8-8x256-d0.1-ema": dict(R8, n_layer=8, dropout=0.1, ema_decay=0.995),
    "r8-fp32preset-ema": dict(R7, ema_decay=0.995),  # and the cpu-fp32 preset, in float32, with the average
    "r8-6x256-wd2-ema": dict(R8, weight_decay=2.0, ema_decay=0.995),  # a free regulariser instead of dropout
    # Round 9, the same Zen 5, from round 8's winner (the cpu preset): its validation curve turns up after
    # ~2,350 of ~2,900 steps (1.828 -> 1.854 bpb), so it still memorises; more of the free regulariser
    "r9-wd3": dict(R9, weight_decay=3.0),
    "r9-wd4": dict(R9, weight_decay=4.0),
    "r9-ema0.998": dict(R9, ema_decay=0.998),  # a longer average: ~500 steps instead of ~200
    "r9-8x256-wd3": dict(R9, n_layer=8, weight_decay=3.0),  # more capacity, held back harder
    # Round 10, the same Zen 5, from round 9's winner (the cpu preset). 10 minutes are ~20 passes over
    # the 1.1 MB corpus: data-bound, so what each pass teaches matters more than the tokens a second
    "r10-wd6": dict(R10, weight_decay=6.0),  # wd 4's curve was still falling at the end
    # twice the context a prediction sees (character names recur), the same tokens a step; at 6 x 256
    # attention is a quarter of the FLOPs, so it costs little, and the scoring context doubles too
    "r10-T256-B8": dict(R10, block_size=256, batch_size=8),
    "r10-ema0.998": dict(R10, ema_decay=0.998),  # a longer average: ~500 steps instead of ~200
    "r10-8x256": dict(R10, n_layer=8),  # more capacity, now that it is held back harder
    "r10-lr2e-3-wd6": dict(R10, lr=2e-3, weight_decay=6.0),  # the same decay per step (lr x wd) as wd 4
    # at wd 4 most of the gain comes as the learning rate falls (1.864 -> 1.817 in the last 2 minutes):
    # let it fall all the way to 0 instead of to a tenth
    "r10-minlr0": dict(R10, min_lr_ratio=0.0),
    # wd 4 pulls every row of the tied embedding toward zero at every step, but a row is pushed back
    # only when its token occurs: the rare tokens' rows shrink most. Spare the table (embed_decay_scale 0)
    "r10-noembdecay": dict(R10, embed_decay_scale=0.0),
    # it lost by 0.06: the decay on the tied embedding (the output layer too) is what holds memorising
    # back. So the blocks at round 8's 2.0 and the table harder, at 6.0, and the table alone harder
    "r10-wd2-emb6": dict(R10, weight_decay=2.0, embed_decay_scale=3.0),
    "r10-wd4-emb8": dict(R10, embed_decay_scale=2.0),
    # 2 / 6 tied the preset's 4 / 4 and 4 / 8 learned too slowly: do the blocks need decay at all?
    "r10-wd1-emb4": dict(R10, weight_decay=1.0, embed_decay_scale=4.0),
    # it learned fastest, then memorised after 7.4 minutes: halfway between it and the preset
    "r10-wd2-emb4": dict(R10, weight_decay=2.0, embed_decay_scale=2.0),
    # Round 11, the same Zen 5, from the cpu preset. Round 7's token splitting lost in float32 at 5
    # passes over the corpus, where the budget was compute-bound; here it is ~18 passes and the
    # runs memorise, which is where an augmentation should pay: a lower rate first
    "r11-split0.05": dict(R10, token_split=0.05),
    "r11-split0.1": dict(R10, token_split=0.1),
    # random windows from one fixed stream always show plot X followed by plot Y: after 18 passes the
    # model can learn which title follows which ending. Continue a window that leaves its document in
    # a random one instead (helpers/augment.py, DocShuffler)
    "r11-docshuffle": dict(R10, doc_shuffle=True),
    # the learning rate was last searched in round 3 (float32, 4 x 192): a higher one with the same
    # decay per step (lr x wd), for a slower day's fewer steps
    "r11-lr4e-3-wd3": dict(R10, lr=4e-3, weight_decay=3.0),
    # dropout on every activation cost a quarter of the steps; AWD-LSTM's embedding dropout, on a
    # corpus the size of Penn Treebank's, drops whole token types from the input: one draw per
    # vocabulary entry a step, nearly free
    "r11-embdrop0.1": dict(R10, embed_dropout=0.1),
    # lr 4e-3 led the control at every point of an equal-steps A/B (by 0.003 at the end): further that way
    "r11-lr5e-3-wd2.4": dict(R10, lr=5e-3, weight_decay=2.4),
    # the same A/B with another seed (other initial weights, other windows): is the 0.003 the lr's?
    "r11-seed2": dict(R10, seed=2),
    "r11-lr4e-3-wd3-seed2": dict(R10, lr=4e-3, weight_decay=3.0, seed=2),
    # Round 12: lr 4e-3 at wd 3 won the A/B at seeds 1337 and 2 (by 0.003 and 0.014): a third seed
    # before it becomes the preset
    "r12-seed3": dict(R10, seed=3),
    "r12-lr4e-3-wd3-seed3": dict(R10, lr=4e-3, weight_decay=3.0, seed=3),
    # it won at the third seed too (1.840 against 1.860): the new preset, R12. Around it, at seed 3:
    # the same decay per step at a higher lr (it tied at seed 1337), more decay, a longer average
    "r12-lr5e-3-wd2.4-seed3": dict(R10, lr=5e-3, weight_decay=2.4, seed=3),
    "r12-wd4-seed3": dict(R10, lr=4e-3, weight_decay=4.0, seed=3),
    "r12-ema0.998-seed3": dict(R10, lr=4e-3, weight_decay=3.0, ema_decay=0.998, seed=3),
    # wd 4 at lr 4e-3 lost by 0.022: the other way, less decay per step than the preset's
    "r12-wd2.5-seed3": dict(R10, lr=4e-3, weight_decay=2.5, seed=3),
    # it won, 1.832 against 1.840: at the other two seeds, and further that way
    "r12-wd2.5": dict(R10, lr=4e-3, weight_decay=2.5),
    "r12-wd2.5-seed2": dict(R10, lr=4e-3, weight_decay=2.5, seed=2),
    "r12-wd2-seed3": dict(R10, lr=4e-3, weight_decay=2.0, seed=3),
    # Round 13, the same Zen 5, from the cpu preset (R12), against round 12's equal-steps control at
    # seed 1337 (1.8351 in 2,650 steps). Trials that change the cost of a step run the steps their
    # measured tokens/s buys in the control's time (`measure`, the same session).
    # The vocabulary was last compared at the bf16 shape in round 2 (GPT-2-shaped, 4,096 won):
    # since then the runs became data-bound, where a token that carries more text changes the trade
    "r13-v4096": dict(R12, vocab=4096),
    # half the batch, twice the steps for the same tokens: noisier steps, a regulariser of their own
    "r13-B8": dict(R12, batch_size=8),
    # a cheap idea from the speedruns: residual projections that start at zero, so every block starts
    # as the identity. (ResFormer's value residual was tried too, at commit 0387ca8: 1.8461 against
    # the control's 1.8351, and its option was removed again)
    "r13-zeroproj": dict(R12, zero_init_proj=True),
    # stochastic depth: a whole sequence skips a block's attention or MLP now and then. DeiT's
    # regulariser for data-limited vision transformers; one random number per sequence, so unlike
    # dropout (a quarter of the steps here) it costs nothing per step
    "r13-droppath0.1": dict(R12, drop_path=0.1),
    # the validation loss falls most as the lr comes down: warmup-stable-decay holds the peak (more
    # of the noise that regularises), then decays in a straight line to 0 over the last 30 %
    "r13-wsd0.3": dict(R12, cooldown=0.3, min_lr_ratio=0.0),
    # stochastic depth lost by 0.05 at the same steps: here what slows learning costs more than the
    # memorising it holds back. The other way, then: Muon (round 6: as much learned from 21 % fewer
    # tokens in float32), at the steps its measured cost leaves in the control's time
    "r13-muon": dict(R12, optimizer="muon"),
    # warmup-stable-decay lost by 0.09: at the peak lr the validation loss stalls (2.04 for 3 minutes)
    # and the gain comes as the lr falls. So the other way from the cosine: fall from the start, in a
    # straight line to 0 (cooldown 1.0; "straight to zero", Bergsma et al. 2025)
    "r13-linear": dict(R12, cooldown=1.0, min_lr_ratio=0.0),
    # it led by 0.002, inside the noise: at seed 2 of round 12's controls (it lost there by 0.003)
    "r13-linear-seed2": dict(R12, cooldown=1.0, min_lr_ratio=0.0, seed=2),
    # round 12's tie, weight decay 2.5, at a fourth seed with its control
    "r13-seed4": dict(R12, seed=4),
    "r13-wd2.5-seed4": dict(R12, weight_decay=2.5, seed=4),
    # Round 14: torch.compile, re-measured on this preset (torch 2.13, the current model): 1.3-1.4x the
    # eager tokens/s for ~47 s of compiling from a cold cache (`search_cpu.py compile`), where round 2's
    # GPT-2-shaped model had run slower compiled. Wall clock, cold cache, against the eager preset
    "r14-compile": dict(R12, compile=True),
    # today's eager control made 4,241 steps (a fast day) and scored 1.8210, the compiled run 4,665 and
    # 1.8223: both curves bottom out ~30 s before the end. More steps no longer buy bits; a faster engine
    # wants a bigger model (round 2's lesson), so two more layers, compiled
    "r14-8x256-compile": dict(R12, n_layer=8, compile=True),
    # or the same model held back harder, for the steps compiling buys
    "r14-wd4-compile": dict(R12, weight_decay=4.0, compile=True),
    # 8 x 256 compiled made 4,231 steps and scored 1.8230, a tie: every run today bottoms out at ~1.818
    # (the 10-batch estimate) about half a minute before the end. Steps are no longer short, so the
    # regulariser they once could not afford: dropout (round 8: a quarter of the eager steps), compiled
    "r14-d0.1-compile": dict(R12, dropout=0.1, compile=True),
    # dropout scored 1.8244 in 3,703 steps, its curve still falling: another tie. Compiling block by
    # block (helpers.device.maybe_compile) builds one graph for all six layers: 18 s from a cold cache
    # instead of 31 s, at the same step time. The compiled preset again, that way (the same settings
    # as r14-compile, whose run compiled the whole model)
    "r14-compile-regional": dict(R12, compile=True, seed=1337),
    # 5,081 steps and 1.8210, the eager control's figure: its curve bottoms out at 540 s and climbs after.
    # wd 4 (above, compiled) was still falling at the end and scored 1.8241: every run today ends between
    # 1.821 and 1.824. Depth tied; width, the other way to a bigger model, at the same lr x wd
    "r14-6x384-compile": dict(R12, n_embd=384, n_head=6, lr=3e-3, weight_decay=4.0, compile=True),
    # Round 15 (the same Xeon, the loss now compiled too). Train loss 2.5 nats against val 3.68 at the
    # end of the round-14 preset: it memorises, so regularisers and optimisers rather than steps.
    # round 12/13's lead at equal steps (ahead by 0.005-0.011 at three seeds), never run on the clock
    "r15-wd2.5": dict(R12, weight_decay=2.5, compile=True),
    # half the batch: twice the updates per pass over the corpus, and noisier ones
    "r15-b8": dict(R12, batch_size=8, compile=True),
    # a longer average, for a run of 5,000 steps rather than round 10's 3,000
    "r15-ema0.998": dict(R12, ema_decay=0.998, compile=True),
    # b8 8,228 steps and 1.8992; wd 2.5 5,364 and 1.8256 (its curve turned up at 490 s); EMA 0.998
    # 5,269 and 1.8097, its curve still falling at 600 s. A longer average still, and the 0.998 average
    # against its control at a second seed
    "r15-ema0.999": dict(R12, ema_decay=0.999, compile=True),
    "r15-ema0.998-seed2": dict(R12, ema_decay=0.998, compile=True, seed=2),
    "r15-seed2": dict(R12, compile=True, seed=2),
    # Round 16 (the same Xeon). The round-15 preset sees the corpus ~30 times in 10 minutes: the
    # classic remedy is dropout, which round 14 could not afford (3,703 steps). Compiled, its mask is
    # now a vectorised hash of the index (helpers.model.hashed_dropout_mask): 133 ms a step against
    # 154, without dropout 104
    "r16-d0.1": dict(R12, ema_decay=0.998, dropout=0.1, compile=True),
    # 4,436 steps and 1.8300 against round 15's 5,269 and 1.8097: ahead by ~0.005 at equal steps, not
    # by enough for the 16 % fewer steps (the hash is 1.4 ms per million elements fused into the graph,
    # not the micro-benchmark's 0.5). Batch 8 lost by 0.08: the other way, 24 sequences a step
    "r16-b24": dict(R12, ema_decay=0.998, batch_size=24, compile=True),
    # 4,020 steps (12.3M tokens, 14 % more than batch 16's: bigger matrices) and 1.8071, ahead of the
    # control at every evaluation until ~490 s; then its curve turns up (train loss 2.09 nats at the
    # end): its best checkpoint, not its last, scored. It memorises sooner, so held back harder
    "r16-b24-wd4": dict(R12, ema_decay=0.998, batch_size=24, weight_decay=4.0, compile=True),
    # 4,083 steps and 1.8063, its curve flat from 540 s on instead of turning up. Both at a second
    # seed (round 15's control there: EMA 0.998 at batch 16, 1.8204)
    "r16-b24-seed2": dict(R12, ema_decay=0.998, batch_size=24, compile=True, seed=2),
    "r16-b24-wd4-seed2": dict(R12, ema_decay=0.998, batch_size=24, weight_decay=4.0, compile=True, seed=2),
    # batch 24 alone 1.8233 (lost by 0.003), with weight decay 4 1.8151 (won by 0.005, as by 0.003 at
    # seed 1337): the cpu preset since round 16. Both at a third seed, after the bench
    "r16-b24-wd4-seed3": dict(R12, ema_decay=0.998, batch_size=24, weight_decay=4.0, compile=True, seed=3),
    "r16-control-seed3": dict(R12, ema_decay=0.998, compile=True, seed=3),
    # 1.8104 against 1.8189: batch 24 at weight decay 4 won at all three seeds (by 0.003, 0.005, 0.009)
    # Round 17 (the same Xeon, a faster compiled step): 32 sequences a step run at ~4 % more tokens/s
    # than 24; do they, held back as hard or harder, beat the preset (1.8060 in round 17's bench)?
    "r17-b32-wd4": dict(R12, ema_decay=0.998, batch_size=32, weight_decay=4.0, compile=True),
    "r17-b32-wd5": dict(R12, ema_decay=0.998, batch_size=32, weight_decay=5.0, compile=True),
    # Against the preset itself (r16-b24-wd4) in the same hour, 1.8041 in 3,970 steps: batch 32 at wd 4
    # 1.8058 (3,198 steps; its curve turned up at 8.5 minutes), at wd 5 1.8095. No change to the preset.
}


# what trials from before these settings existed used (the cpu preset's values until round 8)
DEFAULTS = {"pos_emb": "learned", "bias": True, "min_lr_ratio": 0.1, "mlp": "gelu", "beta2": 0.95,
            "ema_decay": 0.0, "compile": False, **RETIRED}


def settings(name: str) -> dict:
    s = {**BASE, **CANDIDATES[name]} if name in CANDIDATES else {**BASE, **json.loads(name)}
    return s


def configs(s: dict, vocab_size: int, **train_over) -> tuple[ModelConfig, TrainConfig]:
    # DEFAULTS first: a trial means what it meant when it ran, whatever the cpu preset has become since
    over = {**DEFAULTS, **{k: v for k, v in s.items() if k != "vocab"}}
    used = [k for k in RETIRED if over[k] != RETIRED[k]]
    if used:
        sys.exit(f"search_cpu: this trial turns on {', '.join(used)}, retired since (bench/LOG.md); run it from "
                 f"the commit tagged {RETIRED_AT}")
    over = {k: v for k, v in over.items() if k not in RETIRED}
    return get_preset("cpu", vocab_size=vocab_size, **over, **train_over)


def cmd_prepare(a) -> None:
    from helpers.prepare import prepare

    if not SHARED.exists():
        sys.exit(f"search_cpu: {SHARED} is missing (plots-bench needs ../shared/data)")
    for v in a.vocab:
        prepare(SHARED, Path(a.out) / f"v{v}", vocab_size=v, progress=False)


def cmd_measure(a) -> None:
    rates = {}
    for name in a.names or CANDIDATES:
        s = settings(name)
        m, t = configs(s, s["vocab"])
        r = measure_train_step(m, t, steps=a.steps, device="cpu")
        rates[name] = r["tokens_per_s"]
        print(f"{name:28s} {r['tokens_per_s']:8,.0f} tok/s  {r['params_M']:.2f}M params", flush=True)
    path = Path(a.out) / "rates.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **rates}, indent=1))


def cmd_run(a) -> None:
    from helpers.evaluate import full_loss
    from helpers.checkpoint import load
    from helpers.dataset import load_data
    from helpers.train import train

    rates = json.loads((Path(a.out) / "rates.json").read_text()) if a.iters_from_measure else {}
    for name in a.names:
        s = settings(name)
        data = load_data(Path(a.out) / f"v{s['vocab']}")
        tokens_per_step = s["batch_size"] * s["block_size"]
        if a.iters:  # the same steps for every trial: an A/B free of the machine's speed on the day
            iters = a.iters
            over = dict(max_iters=iters, max_minutes=0.0)
        elif a.iters_from_measure:
            # 3 % of the budget goes to the periodic evals, as it does in a wall-clock run
            iters = int(a.minutes * 60 * 0.97 * rates[name] / tokens_per_step)
            over = dict(max_iters=iters, max_minutes=0.0)
        else:
            iters = 10**9
            over = dict(max_iters=iters, max_minutes=a.minutes)
        est_iters = iters if a.iters or a.iters_from_measure else int(a.minutes * 60 * rates.get(name, 5000) / tokens_per_step)
        m, t = configs(s, data.vocab_size, eval_interval=max(est_iters // 8, 50), eval_iters=10, sample_tokens=0,
                       patience=0, **over)
        run_dir = Path(a.out) / "runs" / (f"{name}-{a.iters}" if a.iters else name)
        t0 = time.time()
        res = train(data, m, t, run_dir, overwrite=True, progress=False, device="cpu", log=lambda *_: None)
        wall = time.time() - t0
        best = load(run_dir / "best.safetensors")
        exact = full_loss(best.model, data, stride=best.config.block_size // 2)
        plain = full_loss(best.model, data)
        rec = {"name": name, "settings": s, "steps": res.step, "tokens_seen": res.step * tokens_per_step,
               "wall_s": round(wall, 1), "val_bpb": round(exact["bpb"], 4), "val_bpb_no_overlap": round(plain["bpb"], 4),
               "curve": [(h["elapsed_s"], h["val_bpb"]) for h in res.history if h.get("kind") == "eval"],
               "threads": torch.get_num_threads(),
               "mode": f"{a.iters} steps" if a.iters else "iters" if a.iters_from_measure else "minutes"}
        print(json.dumps(rec), flush=True)
        with open(Path(a.out) / "results.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")


def cmd_compile(a) -> None:
    """Does torch.compile pay for itself in the budget? Compile time against the tokens/s it buys."""
    s = settings(a.names[0] if a.names else "v2048-4x256-bf16")
    m, t = configs(s, s["vocab"])
    eager = measure_train_step(m, t, steps=a.steps, device="cpu")["tokens_per_s"]
    t0 = time.perf_counter()
    compiled = measure_train_step(m, replace(t, compile=True), steps=a.steps, warmup=3, device="cpu")
    total = time.perf_counter() - t0
    tokens_per_step = t.batch_size * t.grad_accum * m.block_size
    compile_s = total - (a.steps + 3) * tokens_per_step / compiled["tokens_per_s"]
    budget = a.minutes * 60
    gain = (budget - compile_s) * compiled["tokens_per_s"] / (budget * eager) - 1
    rec = {"eager_tok_s": round(eager), "compiled_tok_s": round(compiled["tokens_per_s"]),
           "compile_s": round(compile_s, 1), "tokens_in_budget_vs_eager": f"{gain:+.1%}"}
    print(json.dumps(rec))
    (Path(a.out) / "compile.json").write_text(json.dumps(rec, indent=1))


def cmd_report(a) -> None:
    """A markdown table of every trial so far, best first (bench/results/search-cpu.md)."""
    recs = [json.loads(x) for x in (Path(a.out) / "results.jsonl").read_text().splitlines() if x.strip()]
    keys = ["vocab", "n_layer", "n_embd", "block_size", "batch_size", "dropout", "lr", "weight_decay", "dtype",
            "pos_emb", "bias", "min_lr_ratio", "mlp", "qk_norm", "logit_softcap", "optimizer", "muon_lr_scale",
            "beta2", "token_split", "ema_decay", "embed_decay_scale", "doc_shuffle", "embed_dropout",
            "zero_init_proj", "drop_path", "cooldown", "compile"]
    lines = ["| trial | " + " | ".join(keys) + " | steps | tokens seen | val bpb | (no overlap) |",
             "|---" * (len(keys) + 5) + "|"]
    named = {json.dumps(settings(n), sort_keys=True): n for n in CANDIDATES}
    for r in sorted(recs, key=lambda r: r["val_bpb"]):
        s = r["settings"]
        r["name"] = named.get(json.dumps(s, sort_keys=True), r["name"])
        name = r["name"] if r["name"] in CANDIDATES else \
            f"v{s['vocab']}-{s['n_layer']}x{s['n_embd']}-{s['dtype'].replace('bfloat16', 'bf16').replace('float32', 'fp32')}" \
            f"-d{s['dropout']}"
        if r.get("mode", "").endswith(" steps"):  # a fixed-steps A/B run, not the wall-clock budget
            name += f" ({r['mode']})"
        lines.append(f"| {name} | " + " | ".join(str(s.get(k, DEFAULTS.get(k, ""))) for k in keys)
                     + f" | {r['steps']:,} | {r['tokens_seen']:,} | {r['val_bpb']:.4f} | {r['val_bpb_no_overlap']:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        Path(a.write).write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--vocab", type=int, nargs="+", default=[1024, 2048, 4096])
    p = sub.add_parser("measure")
    p.add_argument("names", nargs="*")
    p.add_argument("--steps", type=int, default=12)
    p = sub.add_parser("run")
    p.add_argument("names", nargs="+")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--iters-from-measure", action="store_true")
    p.add_argument("--iters", type=int, default=0, help="a fixed number of steps instead of --minutes")
    p = sub.add_parser("compile")
    p.add_argument("names", nargs="*")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--minutes", type=float, default=10.0)
    p = sub.add_parser("report")
    p.add_argument("--write", help="also write the table to this file")
    for p in sub.choices.values():
        p.add_argument("--out", required=True)
        p.add_argument("--threads", type=int, default=int(os.environ.get("PLOTGPT_THREADS", 2)))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    {"prepare": cmd_prepare, "measure": cmd_measure, "run": cmd_run, "compile": cmd_compile,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
