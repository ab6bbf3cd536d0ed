"""Model and training configuration: two dataclasses and the named presets.

Taught in notebook 03 (GPT blocks: the parameter table of the presets) and notebook 04 (training).
A preset is plain data; the CLI and the notebooks override any field by keyword:

    model_cfg, train_cfg = get_preset("cpu", n_layer=6, lr=1e-3)

How each preset was found, round by round, is recorded once, in bench/LOG.md.
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
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2
    pos_emb: str = "learned"  # learned: GPT-2's position table | rope: rotary, as in GPT-NeoX and LLaMA
    mlp: str = "gelu"  # gelu: GPT-2's | relu2: relu(x)^2, as in Primer and the modded-nanoGPT speedrun

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
        if not isinstance(self.bias, bool):
            raise ValueError(f"model config: bias={self.bias!r} must be true or false")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model config: dropout={self.dropout} must be in [0, 1)")


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
    warmup_iters: int = 100
    weight_decay: float = 0.1  # on matrices only (embeddings included), never on biases/LayerNorm
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
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
        if self.lr <= 0:
            raise ValueError("train config: lr must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train config: ema_decay={self.ema_decay} must be in [0, 1): 0 turns it off, "
                             "0.99-0.999 average over the last 100-1000 steps")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"train config: dtype={self.dtype!r}; choose auto, float32, bfloat16 or float16")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab_size: int = 4096  # the domain BPE size the preset was tuned with (and its plots-bench run uses)


# One sentence of why per preset; the rounds that chose each value are in bench/LOG.md.
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke", "CI and tests: a toy model that trains in seconds",
        ModelConfig(block_size=64, n_layer=2, n_head=2, n_embd=64),
        TrainConfig(batch_size=8, max_iters=40, lr=3e-3, warmup_iters=5, eval_interval=20,
                    eval_iters=4, sample_tokens=24, dtype="float32"),
    ),
    "cpu": Preset(
        "cpu", "laptop CPU with bf16 hardware: the best plots-bench model for 10 minutes on 2 cores (bench/search_cpu.py)",
        # The shape that is still learning at 10 minutes in bf16; weight decay and an average of the
        # weights instead of dropout, which would cost a quarter of the steps (rounds 8-16).
        ModelConfig(block_size=128, n_layer=6, n_head=4, n_embd=256, dropout=0.0, bias=False, pos_emb="rope",
                    mlp="relu2"),
        TrainConfig(batch_size=24, max_iters=3000, lr=4e-3, weight_decay=4.0, warmup_iters=100, eval_interval=250,
                    eval_iters=10, sample_tokens=60, patience=6, ema_decay=0.998, compile=True),
        vocab_size=2048,
    ),
    "cpu-fp32": Preset(
        "cpu-fp32", "what `cpu` means on a CPU without bf16 hardware: smaller and faster, weight decay 1.0",
        # In float32 the budget holds a few passes over the corpus: a narrow model with fast steps wins,
        # held back from memorising by weight decay and an average of the weights (rounds 3-8).
        ModelConfig(block_size=128, n_layer=4, n_head=3, n_embd=192, dropout=0.0, bias=False, pos_emb="rope",
                    mlp="relu2"),
        TrainConfig(batch_size=16, max_iters=3000, lr=3e-3, weight_decay=1.0, warmup_iters=100, eval_interval=250,
                    eval_iters=10, sample_tokens=60, patience=6, dtype="float32", ema_decay=0.995),
        vocab_size=2048,
    ),
    "gpu-124m": Preset(
        "gpu-124m", "the reference's GPT-2 small: 12 x 768, block 256, on one GPU",
        # The reference system's model and nanoGPT's GPT-2 recipe (lr 6e-4, 0.5M-token steps scaled down).
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

# Options the search tried that no preset adopted, retired in issue 27 (bench/LOG.md), with the value
# that meant "off". A saved config that holds one at that value still loads; any other value is refused.
RETIRED = {"embed_dropout": 0.0, "drop_path": 0.0, "zero_init_proj": False, "qk_norm": False, "logit_softcap": 0.0,
           "cooldown": 0.0, "embed_decay_scale": 1.0, "muon_lr_scale": 1.0, "optimizer": "adamw",
           "token_split": 0.0, "doc_shuffle": False}
RETIRED_AT = "search-cpu-r17"  # the git tag of the last commit that has them


class RetiredOption(ValueError):
    """A saved config that used an option PlotGPT no longer has."""


def from_saved(cls, saved: dict, source) -> ModelConfig | TrainConfig:
    """A config from a checkpoint's JSON: retired options left at "off" are dropped; one that was on
    is refused in one line (its model would not be the one that was trained)."""
    used = {k: v for k, v in saved.items() if k in RETIRED and v != RETIRED[k]}
    if used:
        name, value = next(iter(used.items()))
        raise RetiredOption(f"{source} was trained with {name}={value!r}, an option PlotGPT has retired (bench/LOG.md); "
                         f"load it with the release tagged {RETIRED_AT}")
    return cls(**{k: v for k, v in saved.items() if k not in RETIRED})


def shape_changes(old: ModelConfig, new: ModelConfig) -> list[str]:
    """How `new` differs from `old` in ways `old`'s weights cannot follow: every field but dropout (and
    the vocabulary, which follows the tokenizer)."""
    return [f"{f.name} {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}" for f in fields(ModelConfig)
            if f.name not in ("dropout", "vocab_size") and getattr(old, f.name) != getattr(new, f.name)]


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


def resolve_preset(name: str, device: str = "cpu", dtype: str = "auto") -> str:
    """The preset to train for `name` here: `cpu` means `cpu-fp32` on a CPU that would train in
    float32 (no bf16 hardware, or --dtype float32).

    Why two: bf16 hardware gives the same CPU 2.5x the tokens in a time budget (bench/LOG.md), and
    with more tokens a bigger, more regularised model wins; in float32 a smaller, faster one does.
    Every other name is returned as it is.
    """
    import torch

    from .device import pick_dtype

    if name == "cpu" and device == "cpu" and pick_dtype(device, dtype) == torch.float32:
        return "cpu-fp32"
    return name
