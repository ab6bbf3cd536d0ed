"""Where artifacts live: prepared data under data/, runs under checkpoints/.

Both sit under one root: PLOTGPT_ROOT when set; else this checkout, when working inside it (the
CLI from the repo root, the notebooks from notebooks/); else the current directory. So
`plotgpt prepare X && plotgpt train && plotgpt generate` chains with no paths typed.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_ROOT = "PLOTGPT_ROOT"
PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = PROJECT / "data" / "sample" / "plots.txt"  # the embedded CC0 corpus
SECOND_CORPUS = PROJECT / "data" / "sample" / "ghost-stories.txt"  # for fine-tuning (notebook 05)


def root() -> Path:
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    cwd = Path.cwd().resolve()
    if (PROJECT / "pyproject.toml").exists() and (cwd == PROJECT or PROJECT in cwd.parents):
        return PROJECT
    return cwd


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


def sha256_file(path: Path) -> str:
    """The sha256 of a file (of its sorted .txt files' hashes, for a folder), read 1 MB at a time."""
    path = Path(path)
    if path.is_dir():
        return hashlib.sha256(b"".join(bytes.fromhex(sha256_file(f)) for f in sorted(path.rglob("*.txt")))).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
