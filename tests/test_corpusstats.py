"""plotgpt stats: the figures that tell a varied corpus from a templated one."""
import subprocess
import sys

import pytest

from conftest import SAMPLE, SHARED
from helpers import corpusstats as S
from helpers.corpus import read_documents

SECOND = SAMPLE.parent / "ghost-stories.txt"


def _doc(title, plot):
    return f"Title: {title}\nPlot: {plot}"


def test_templated_documents_share_their_8grams_and_openings():
    stock = "must confront the ghosts of his past before it is too late"
    docs = [_doc(f"Film {i}", f"In the city a {w} named Ada {stock} and then the end comes for {w}")
            for i, w in enumerate(["baker", "pilot", "nurse", "judge"])]
    docs.append(_doc("Film 0", "A single fresh plot about a lighthouse keeper who paints gulls every winter morning"))
    s = S.stats(docs)
    assert s["documents"] == 5 and s["titles"] == 5 and s["distinct_titles"] == 4
    assert s["openings"][0] == ("in the city", 0.8)
    # each templated plot has 19 8-grams, 6 of them touch its own word W: 4 x 13 of 4 x 19 + 7 are shared
    assert abs(s["shared_ngram_share"] - 52 / 83) < 1e-12
    assert S.stats(docs[-1:])["shared_ngram_share"] == 0.0
    assert s["words_per_doc"]["min"] == 14 and s["words_per_doc"]["max"] == 26


def test_ngrams_found_in_another_corpus():
    other = S.corpus_ngrams([_doc("X", "one two three four five six seven eight nine")])
    s = S.stats([_doc("Y", "zero one two three four five six seven eight"), _doc("Z", "ten eleven")], against=other)
    assert s["ngrams_in_other"] == 0.5  # of its two 8-grams, "one ... eight" is in the other corpus


def test_the_cli_prints_a_column_per_corpus(tmp_path):
    out = subprocess.run([sys.executable, "-m", "helpers", "stats", str(SECOND), "--against", str(SAMPLE)],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "| | ghost-stories.txt | plots.txt |"
    assert "| distinct titles |" in out and "8-grams found in the other corpus" in out
    bad = subprocess.run([sys.executable, "-m", "helpers", "stats", str(tmp_path / "none.txt")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("path", [SAMPLE, SECOND], ids=["plots", "ghost-stories"])
def test_the_embedded_corpora_are_varied_not_templated(path):
    s = S.stats(list(read_documents(path)))
    assert s["bytes"] >= (1_000_000 if path == SAMPLE else 140_000)
    assert s["distinct_titles"] == s["titles"] == s["documents"]
    assert s["shared_ngram_share"] <= 0.02
    assert s["openings"][0][1] <= 0.30
    lengths = [len(S.split_title(d)[1].split()) for d in read_documents(path)]
    assert 120 <= min(lengths) and max(lengths) <= 200  # words between spaces, as the plots were written


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/movies-plot-final.txt")
def test_the_embedded_corpus_takes_no_text_from_the_shared_plots():
    other = S.corpus_ngrams(list(read_documents(SHARED)))
    assert S.stats(list(read_documents(SAMPLE)), against=other)["ngrams_in_other"] < 0.005
