"""Shared fixtures: the embedded sample corpus prepared once, and one tiny trained run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "plots.txt"
SHARED = ROOT.parent / "shared" / "data" / "movies-plot-final.txt"


@pytest.fixture(autouse=True)
def _isolated_root(tmp_path, monkeypatch):
    """Every test writes its artifacts under its own PLOTGPT_ROOT, never into the repo."""
    monkeypatch.setenv("PLOTGPT_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """The sample corpus with a small domain BPE (fast to train on)."""
    from helpers.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "sample"
    prepare(SAMPLE, out, vocab_size=512, progress=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def tiny_run(prepared, tmp_path_factory):
    """A smoke-preset model trained for a few dozen steps; returns its run folder."""
    from helpers.config import get_preset
    from helpers.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    model_cfg, train_cfg = get_preset("smoke", max_iters=30, eval_interval=15)
    train(prepared, model_cfg, train_cfg, out, progress=False, log=lambda *_: None)
    return out


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cli_env(tmp_path):
    """Environment for running `python -m helpers` in a subprocess."""
    env = dict(os.environ, PLOTGPT_ROOT=str(tmp_path / "root"), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env
