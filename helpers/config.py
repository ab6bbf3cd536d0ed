"""Model and training configuration: two dataclasses and the named presets.

Taught in notebook 03 (GPT blocks: the parameter table of the presets) and notebook 04 (training).
A preset is plain data; the CLI and the notebooks override any field by keyword:

    model_cfg, train_cfg = get_preset("cpu", n_layer=6, lr=1e-3)
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True)
class ModelConfig:
    """GPT-2 shaped transformer (as in minGPT / nanoGPT)."""

    vocab_size: int = 4096  # filled in from the prepared data's tokenizer
    block_size: int = 256  # context length in tokens
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    embed_dropout: float = 0.0  # drop whole token types from the input per step (AWD-LSTM's embedding dropout)
    drop_path: float = 0.0  # stochastic depth: skip a block's branch for a whole sequence with this chance
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2
    pos_emb: str = "learned"  # learned: GPT-2's position table | rope: rotary, as in GPT-NeoX and LLaMA
    mlp: str = "gelu"  # gelu: GPT-2's | relu2: relu(x)^2, as in Primer and the modded-nanoGPT speedrun
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before the dot product
    logit_softcap: float = 0.0  # > 0: logits = cap * tanh(logits / cap) (Gemma 2); 0 = off
    zero_init_proj: bool = False  # the residual projections start at zero (modded-nanoGPT): each block starts as the identity

    def __post_init__(self) -> None:
        # Bounds that keep a crafted config from asking for absurd memory before anything is allocated.
        limits = {"vocab_size": (2, 65_536), "block_size": (1, 65_536), "n_layer": (1, 256),
                  "n_head": (1, 256), "n_embd": (1, 16_384)}
        for name, (lo, hi) in limits.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"model config: {name}={v!r} is outside the sane range [{lo}, {hi}]")
        if self.n_embd % self.n_head:
            raise ValueError(f"model config: n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.pos_emb not in ("learned", "rope"):
            raise ValueError(f"model config: pos_emb={self.pos_emb!r}; choose learned or rope")
        if self.pos_emb == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"model config: rope needs an even head size, not {self.n_embd // self.n_head}")
        if self.mlp not in ("gelu", "relu2"):
            raise ValueError(f"model config: mlp={self.mlp!r}; choose gelu or relu2")
        for name in ("qk_norm", "zero_init_proj"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"model config: {name}={getattr(self, name)!r} must be true or false")
        if isinstance(self.logit_softcap, bool) or not (isinstance(self.logit_softcap, (int, float))
                                                        and 0.0 <= self.logit_softcap <= 1e4):
            raise ValueError(f"model config: logit_softcap={self.logit_softcap!r} must be 0 (off) or a positive cap")
        for name in ("dropout", "embed_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model config: {name}={getattr(self, name)} must be in [0, 1)")


# max_iters for a run that only its time budget stops (`--max-minutes` without `--max-iters`)
UNTIL_BUDGET = 10**9


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs besides the model shape."""

    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    micro_batch: int = 0  # sequences per forward/backward pass: 0 = auto (on a GPU, as many of the step's as fit; helpers/memory.py)
    max_iters: int = 2000  # optimizer steps
    max_minutes: float = 0.0  # budget of training time, evaluations and checkpoints not counted; 0 = no limit
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor = lr * min_lr_ratio
    cooldown: float = 0.0  # > 0: warmup-stable-decay instead of cosine: lr held, then linear to the floor over this last share
    warmup_iters: int = 100
    weight_decay: float = 0.1  # on matrices only (embeddings included), never on biases/LayerNorm
    embed_decay_scale: float = 1.0  # the embedding tables' (and tied output layer's) decay = weight_decay x this
    beta1: float = 0.9
    beta2: float = 0.95
    optimizer: str = "adamw"  # adamw | muon (Muon for the blocks' matrices, AdamW for the rest)
    muon_lr_scale: float = 1.0  # Muon's step = lr x this x Moonshot's RMS match (its decay stays lr x wd)
    grad_clip: float = 1.0  # 0 disables clipping
    token_split: float = 0.0  # augmentation: chance a training token comes as its two BPE parents (helpers/augment.py)
    doc_shuffle: bool = False  # augmentation: a window leaving its document goes on in a random one (helpers/augment.py)
    ema_decay: float = 0.0  # > 0: evaluate and save an average of the weights, e.g. 0.995 (helpers/ema.py); 0 = off
    eval_interval: int = 200  # steps between evaluations (and checkpoints)
    eval_iters: int = 20  # batches per split when estimating the loss
    sample_tokens: int = 80  # length of the demo generation printed at each eval; 0 = none
    keep_last: int = 3  # periodic checkpoints to keep (best is kept apart)
    patience: int = 0  # evals without val improvement before stopping early; 0 = never
    seed: int = 1337
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    compile: bool = False  # torch.compile the model (block by block on a CPU); eager, with a note, where it cannot work

    @property
    def step_sequences(self) -> int:
        """Sequences per optimizer step (per rank), however they are split into passes."""
        return self.batch_size * self.grad_accum

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "eval_interval", "eval_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"train config: {name} must be at least 1")
        if self.micro_batch < 0 or (self.micro_batch and self.step_sequences % self.micro_batch):
            raise ValueError(f"train config: micro_batch={self.micro_batch} must divide the step's "
                             f"{self.step_sequences} sequences (batch_size x grad_accum); 0 = auto")
        if self.max_iters < 0 or self.warmup_iters < 0 or self.max_minutes < 0:
            raise ValueError("train config: max_iters, warmup_iters and max_minutes must not be negative")
        if not 0.0 <= self.cooldown <= 1.0:
            raise ValueError(f"train config: cooldown={self.cooldown} must be in [0, 1]: the last share of the run "
                             "spent decaying the lr (0 = the cosine schedule)")
        if self.lr <= 0 or self.muon_lr_scale <= 0:
            raise ValueError("train config: lr and muon_lr_scale must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train config: ema_decay={self.ema_decay} must be in [0, 1): 0 turns it off, "
                             "0.99-0.999 average over the last 100-1000 steps")
        if self.embed_decay_scale < 0:
            raise ValueError(f"train config: embed_decay_scale={self.embed_decay_scale} must not be negative "
                             "(1 = the same decay as the other matrices, 0 = none)")
        if not 0.0 <= self.token_split < 1.0:
            raise ValueError(f"train config: token_split={self.token_split} must be in [0, 1)")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"train config: optimizer={self.optimizer!r}; choose adamw or muon")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"train config: dtype={self.dtype!r}; choose auto, float32, bfloat16 or float16")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab_size: int = 4096  # the domain BPE size the preset was tuned with (and its plots-bench run uses)


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke", "CI and tests: a toy model that trains in seconds",
        ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=64),
        TrainConfig(batch_size=8, max_iters=40, lr=3e-3, warmup_iters=5, eval_interval=20,
                    eval_iters=4, sample_tokens=24, dtype="float32"),
    ),
    "cpu": Preset(
        "cpu", "laptop CPU with bf16 hardware: the best plots-bench model for 10 minutes on 2 cores (bench/search_cpu.py)",
        # Searched on plots-bench v1 (the Performance page): at 10 minutes on 2 cores a bigger model
        # is still learning when time runs out, a smaller or less regularised one memorises. bf16
        # autocast where the CPU has it (dtype auto) gives 2-3x the tokens/s of fp32.
        # Round 8 (2 Zen 5 cores): the cpu-fp32 preset's findings (rotary positions, squared ReLU, no
        # biases, weight decay 1.0, 2,048 tokens) at this 6 x 256 shape, then regularisers: 1.986 bits
        # per byte with none, 1.877 with dropout 0.1, 1.853 with an average of the weights (ema_decay,
        # helpers/ema.py), 1.845 with both, and 1.832 with the average and weight decay 2.0 instead
        # of dropout, which costs nothing per step (dropout cost a quarter of the steps here).
        # Round 9 (the same Zen 5): the 2.0 run still turned up after ~2,350 steps; weight decay 3.0
        # reached 1.825 and 4.0 1.823 (the 2.0 control 1.831 in the same session), its curve still
        # falling at 10 minutes. Round 10: nothing beat it (wd 6, 8 layers, block 256, EMA 0.998, a floor
        # of 0); the decay that matters is the tied embedding's (1.886 without it, embed_decay_scale).
        # Round 11: doc_shuffle, embed_dropout and token_split 0.05 lost or tied; lr 4e-3 at wd 3 led at two seeds.
        # Round 12: lr 4e-3 at wd 3 (the same lr x wd as 3e-3 x 4) won equal-steps A/Bs at three
        # seeds, by 0.003, 0.014 and 0.020; lr 5e-3 x wd 2.4 and wd 4 at lr 4e-3 lost at seed 3.
        # Round 13: nothing beat it (a 4,096 vocabulary, zero-initialised projections, stochastic
        # depth, warmup-stable-decay, a straight line to 0 instead of the cosine, a value residual).
        # 8 layers tied (1.849) and are slower; the round-2 preset (GELU, learned positions,
        # dropout 0.2, 4,096 tokens) had scored 1.974.
        # Round 14 (2 cores of an Intel Xeon with AMX-BF16): torch.compile, block by block
        # (helpers.device.maybe_compile), pays: 1.33x the tokens/s for ~18 s of compiling (5,081
        # steps in 10 minutes against 4,241 eager, the same hour; not yet measured on the Zen 5).
        # On that fast machine both scored 1.821 (their curves bottom out before the end), and 8 layers,
        # dropout 0.1 or weight decay 4 tied (1.823-1.824), 6 x 384 lost; on a slower one the steps count.
        # Round 15 (the same Xeon, the loss compiled too): a longer average of the weights, EMA 0.998
        # (a ~500-step horizon for a ~5,000-step run), scored 1.810 against 1.821 at seed 1337 and
        # 1.820 against 1.826 at seed 2; 0.999 scored 1.814. Weight decay 2.5 (1.826) and batch 8 lost.
        # Round 16 (the same Xeon): 24 sequences a step (8 % more tokens/s: bigger matrices) memorise
        # sooner, so weight decay 4.0 with them: 1.806 against 1.810 at seed 1337, 1.815 against 1.820
        # at seed 2, 1.810 against 1.819 at seed 3; batch 24 alone tied (1.807, 1.823), dropout 0.1 lost.
        ModelConfig(block_size=128, n_layer=6, n_head=4, n_embd=256, dropout=0.0, bias=False, pos_emb="rope",
                    mlp="relu2"),
        TrainConfig(batch_size=24, max_iters=3000, lr=4e-3, weight_decay=4.0, warmup_iters=100, eval_interval=250,
                    eval_iters=10, sample_tokens=60, patience=6, ema_decay=0.998, compile=True),
        vocab_size=2048,
    ),
    "cpu-fp32": Preset(
        "cpu-fp32", "what `cpu` means on a CPU without bf16 hardware: smaller and faster, weight decay 1.0",
        # Searched on plots-bench v1 on 2 Zen 3 cores (AVX2, no bf16; round 3 on the Performance page).
        # In float32 the budget holds 1-2M tokens, a few passes over the corpus: training is
        # compute-bound, not data-bound, so a narrow model without dropout or biases (faster steps)
        # beats the bf16 CPUs' shape, and rotary positions learn faster than a position table.
        # Round 4: it still memorises (train loss 3.2 against val 4.5 nats by the end), and weight
        # decay 1.0 - ten times the usual, at no cost per step - took 1.978 to 1.958 bits per byte.
        # Round 5: the squared-ReLU MLP (9 % more steps in the budget, and more learned per token)
        # took it to 1.926; QK-norm and a logit soft-cap on top added nothing beyond the noise.
        # Round 6: Muon (--optimizer muon) learned as much from 21 % fewer tokens but cost 18 % of the
        # tokens/s here, a tie (1.925 against 1.926), so the preset stays on AdamW. A 2,048-token
        # vocabulary, ahead within the noise in round 4, was ahead again: 1.913 (11 % more steps).
        # Round 7: nothing beat it (1.906 as the control): token splitting 1.944, 1,024 tokens 1.913,
        # weight decay 1.5 1.909, beta2 0.99 1.912, lr 4e-3 1.921, lr 2e-3 1.905 (a tie), batch 24 1.912.
        # Round 8 (on a Zen 5, forced to float32, side by side): an average of the weights (ema_decay,
        # helpers/ema.py) took it from 1.932 to 1.864 bits per byte.
        ModelConfig(block_size=128, n_layer=4, n_head=3, n_embd=192, dropout=0.0, bias=False, pos_emb="rope",
                    mlp="relu2"),
        TrainConfig(batch_size=16, max_iters=3000, lr=3e-3, weight_decay=1.0, warmup_iters=100, eval_interval=250,
                    eval_iters=10, sample_tokens=60, patience=6, dtype="float32", ema_decay=0.995),
        vocab_size=2048,
    ),
    "gpu-124m": Preset(
        "gpu-124m", "the reference's GPT-2 small: 12 x 768, block 256, on one GPU",
        ModelConfig(block_size=256, n_layer=12, n_head=12, n_embd=768, dropout=0.1),
        TrainConfig(batch_size=16, grad_accum=8, max_iters=20000, lr=6e-4, warmup_iters=500,
                    eval_interval=500, eval_iters=50, sample_tokens=120, patience=8, compile=True),
    ),
}

# The vocabulary `plotgpt prepare`, `make run` and the book default to, on every machine. The presets keep
# the size plots-bench's bits per byte favoured; what a reader sees favours a big vocabulary, which leaves
# a small model fewer word pieces to glue into words that do not exist (bench/LOG.md, 2026-12-04).
DEFAULT_VOCAB_SIZE = 16384

MODEL_FIELDS = frozenset(f.name for f in fields(ModelConfig))
TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))


def get_preset(name: str, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """Return (model config, train config) for a preset, with keyword overrides applied.

    Overrides whose value is None are ignored, so CLI flags that were not given change nothing.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - MODEL_FIELDS - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    model = replace(preset.model, **{k: v for k, v in overrides.items() if k in MODEL_FIELDS})
    train = replace(preset.train, **{k: v for k, v in overrides.items() if k in TRAIN_FIELDS})
    return model, train
