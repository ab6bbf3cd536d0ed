"""Where artifacts live: prepared data under data/, runs under checkpoints/.

Both sit under one root, the current directory unless PLOTGPT_ROOT points elsewhere, so
`plotgpt prepare X && plotgpt train && plotgpt generate` chains with no paths typed.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_ROOT = "PLOTGPT_ROOT"


def root() -> Path:
    return Path(os.environ.get(ENV_ROOT) or Path.cwd())


def data_root() -> Path:
    return root() / "data" / "prepared"


def checkpoints_root() -> Path:
    return root() / "checkpoints"


def newest_prepared() -> Path | None:
    """The most recently prepared data folder (one holding a meta.json), or None."""
    metas = sorted(data_root().glob("*/meta.json"), key=lambda p: p.stat().st_mtime)
    return metas[-1].parent if metas else None


def newest_run() -> Path | None:
    """The most recently written run folder under checkpoints/, or None."""
    runs = [p for p in checkpoints_root().glob("*") if p.is_dir() and any(p.glob("*.safetensors"))]
    if not runs:
        return None
    return max(runs, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.safetensors")))
