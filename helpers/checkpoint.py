"""Checkpoints that are safe to share: one safetensors file per checkpoint.

Tensors (weights, and for resumable checkpoints the optimizer moments and RNG states) are
stored by safetensors, which never unpickles anything; the model config, tokenizer and
training state travel as JSON in its metadata. A file that is not safetensors - a torch.save
pickle, say - is refused before a byte of it is interpreted, so its code can never run.
Writes are atomic (temp file, fsync, rename).
"""
from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tiktoken
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import tokenizer as tok
from .atomic import atomic_path
from .config import ModelConfig, RetiredOption, from_saved
from .model import GPT

FORMAT_VERSION = 1
MAX_HEADER = 64 << 20  # a larger safetensors header is not ours


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit."""


@dataclass
class Checkpoint:
    model: GPT
    tokenizer: tiktoken.Encoding
    info: dict  # step, metrics, train config, data fingerprint ...
    path: Path
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # optimizer / RNG tensors, if saved

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def raw_model(model: torch.nn.Module) -> GPT:
    """Unwrap torch.compile and DDP wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def save(path: str | Path, model: torch.nn.Module, tokenizer: tiktoken.Encoding, info: dict | None = None,
         state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write weights (+ optional training-state tensors) and JSON metadata, atomically."""
    model = raw_model(model)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()
               if k != "lm_head.weight"}  # tied to wte: stored once, re-tied on load
    for k, v in (state or {}).items():
        tensors[f"state.{k}"] = v.detach().contiguous().cpu()
    meta = {"format_version": FORMAT_VERSION, "model_config": asdict(model.config),
            "tokenizer": tok.to_dict(tokenizer), "tokenizer_fingerprint": tok.fingerprint(tokenizer),
            "info": info or {}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"plotgpt": json.dumps(meta)})
    return Path(path)


def _read_header(path: Path) -> dict:
    """Parse the safetensors header by hand first, so anything else is refused untouched."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with: plotgpt train")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head[:4] == b"PK\x03\x04":
            raise CheckpointError(f"{path} is a pickle / torch.save file; PlotGPT never unpickles checkpoints "
                                  "(that can run arbitrary code) - it loads only .safetensors files written by plotgpt")
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a PlotGPT checkpoint (file too short)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise CheckpointError(f"{path} is not a PlotGPT checkpoint (no valid safetensors header; truncated?)")
        try:
            header = json.loads(f.read(n))
            meta = json.loads(header["__metadata__"]["plotgpt"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{path} is not a PlotGPT checkpoint (safetensors without plotgpt metadata)") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format version {meta.get('format_version')!r}")
    # Every tensor must lie inside the file; safetensors checks too, this gives a clearer message.
    data_len = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            lo, hi = t["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name} has a malformed header entry") from None
        if not 0 <= lo <= hi <= data_len:
            raise CheckpointError(f"{path}: tensor {name} points outside the file (corrupt or truncated)")
    meta["_shapes"] = {k: v.get("shape") for k, v in header.items() if k != "__metadata__"}
    return meta


def read_info(path: str | Path) -> dict:
    """Metadata only (config, tokenizer, info), without loading any tensor."""
    return _read_header(Path(path))


def load(path: str | Path, device: str = "cpu", with_state: bool = False) -> Checkpoint:
    """Load a checkpoint file (or the best/newest one in a run folder)."""
    path = resolve(path)
    meta = _read_header(path)
    try:
        cfg = from_saved(ModelConfig, meta["model_config"], path)
    except RetiredOption as exc:
        raise CheckpointError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: model config rejected ({exc})") from None
    enc = tok.from_dict(meta["tokenizer"])
    if enc.n_vocab > cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer has {enc.n_vocab} ids but the model only {cfg.vocab_size}")
    # Check every shape against the config on the meta device: nothing is allocated for a lying header.
    with torch.device("meta"):
        expected = {f"model.{k}": list(v.shape) for k, v in GPT(cfg).state_dict().items() if k != "lm_head.weight"}
    shapes = meta.pop("_shapes")
    for name, shape in expected.items():
        if shapes.get(name) != shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {shapes.get(name)}, the config says {shape}")
    model = GPT(cfg)
    weights, state = {}, {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in f.keys():
                if name.startswith("model."):
                    weights[name[6:]] = f.get_tensor(name)
                elif with_state and name.startswith("state."):
                    state[name[6:]] = f.get_tensor(name)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path} is corrupt ({type(exc).__name__}: {exc})") from None
    weights["lm_head.weight"] = weights["transformer.wte.weight"]
    model.load_state_dict(weights)
    model.to(device)
    return Checkpoint(model, enc, meta.get("info", {}), path, state)


def step_files(run_dir: Path) -> list[Path]:
    """Periodic checkpoints in a run folder, oldest first."""
    return sorted(Path(run_dir).glob("step-*.safetensors"))


def resolve(path: str | Path) -> Path:
    """A file stays itself; a run folder gives best.safetensors, else its newest step file."""
    path = Path(path)
    if path.is_dir():
        if (path / "best.safetensors").is_file():
            return path / "best.safetensors"
        steps = step_files(path)
        if not steps:
            raise CheckpointError(f"{path} holds no checkpoint (.safetensors); train one with: plotgpt train --out {path}")
        return steps[-1]
    return path
