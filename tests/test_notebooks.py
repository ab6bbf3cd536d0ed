"""The book's notebooks: text/.ipynb pairs in sync, stored executed, and the book builds with -W.

nbval itself (every notebook re-executed in smoke mode, NBVAL_CHECK_OUTPUT cells compared) runs
on notebooks/*.ipynb in the same pytest session: see `make test`.
"""
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
CHAPTERS = ["01_data_and_tokenization", "02_attention", "03_gpt_blocks", "04_training",
            "05_finetuning_and_judging", "06_sampling_widgets"]


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_all_six_chapters_are_there():
    assert [p.stem for p in NOTEBOOKS] == CHAPTERS


@pytest.mark.parametrize("src", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync_and_stored_executed(src):
    """The .ipynb holds exactly the text file's cells (the text is the source of truth), executed."""
    ipynb = src.with_suffix(".ipynb")
    assert ipynb.exists(), f"missing {ipynb.name}: run `make notebooks`"
    from_text = jupytext.read(src)
    stored = nbformat.read(ipynb, as_version=4)
    assert _cells(stored) == _cells(from_text), f"{ipynb.name} is out of sync with {src.name}: run `make notebooks`"
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), f"{ipynb.name} is not stored executed"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    first = code[0].source
    assert "print_versions()" in first and "SMOKE" in first  # versions + device first, smoke switch


@pytest.mark.parametrize("src", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_pip_install_or_network_in_notebooks(src):
    text = src.read_text()
    assert "pip install" not in text and "%pip" not in text and "!pip" not in text


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    """jupyter-book build -W on the stored outputs (execution itself is what nbval checks)."""
    config = (ROOT / "_config.yml").read_text().replace("execute_notebooks: force", "execute_notebooks: \"off\"")
    cfg = tmp_path / "_config.yml"
    cfg.write_text(config)
    out = tmp_path / "out"
    r = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "--path-output", str(out),
                        "--config", str(cfg), "-W", "-n", "--all"], capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    for chapter in CHAPTERS:
        assert (html / "notebooks" / f"{chapter}.html").exists(), chapter
    training = (html / "notebooks" / "04_training.html").read_text()
    assert "<img" in training and "data:image/png" in training or "_images" in training
