"""Set-up the book's chapters share: the smoke switch, the prepared sample data, and the model
trained in notebook 04 (trained quickly here if a later chapter runs first).

PLOTGPT_SMOKE=1 makes every chapter small enough for CI (minutes for all six); unset, the
chapters run at full size, as the book and a reader get them.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from . import paths

SMOKE = os.environ.get("PLOTGPT_SMOKE", "") not in ("", "0")
CHAPTER_RUN = "book"  # checkpoints/book/: the model notebook 04 trains and 05/06 use


def sample_data(vocab_size: int | None = None, source: Path = paths.SAMPLE_CORPUS, name: str = "sample", **kwargs):
    """Prepare `source` into data/prepared/<name> unless it is there already, and load it
    (with the vocabulary `plotgpt prepare` defaults to, unless `vocab_size` says otherwise)."""
    from .config import DEFAULT_VOCAB_SIZE
    from .dataset import DataError, load_data
    from .paths import sha256_file
    from .prepare import prepare
    from .tokenizer import fingerprint

    vocab_size = vocab_size or DEFAULT_VOCAB_SIZE

    out = paths.data_root() / name
    with contextlib.suppress(DataError):  # missing or damaged: prepared again below
        data = load_data(out)
        if "encoding" in kwargs:  # reuse only data made with that very tokenizer
            same = data.fingerprint == fingerprint(kwargs["encoding"])
        else:
            same = data.vocab_size == vocab_size
        if data.meta.get("source_sha256") == sha256_file(source) and same:
            return data
    prepare(source, out, vocab_size=vocab_size, progress=False, log=lambda *_: None, **kwargs)
    return load_data(out)


def chapter_checkpoint() -> Path:
    """The best checkpoint of notebook 04's run, training a small stand-in if it is missing."""
    run = paths.checkpoints_root() / CHAPTER_RUN
    best = run / "best.safetensors"
    if best.exists():
        return best
    from .config import get_preset, resolve_preset
    from .device import detect_device
    from .train import train

    print(f"no {best} yet (notebook 04 trains it); training a small stand-in for a minute...")
    preset = "smoke" if SMOKE else resolve_preset("cpu", detect_device())
    model_cfg, cfg = get_preset(preset, max_iters=60 if SMOKE else 400, eval_interval=200, sample_tokens=0)
    train(sample_data(), model_cfg, cfg, run, overwrite=True, progress=False, log=lambda *_: None)
    return best
