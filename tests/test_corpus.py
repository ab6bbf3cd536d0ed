import gzip
import io
import tarfile

import pytest

from conftest import SAMPLE, SHARED, write
from helpers import corpus
from helpers.corpus import CorpusError, clean, read_documents, split_counts


def test_sample_corpus_is_the_promised_shape():
    docs = list(read_documents(SAMPLE))
    assert len(docs) >= 200
    titles = set()
    for d in docs:
        title, plot = d.split("\n")
        assert title.startswith("Title: ") and plot.startswith("Plot: ")
        assert 80 <= len(plot.split()) - 1 <= 200, title
        titles.add(title)
    assert len(titles) == len(docs)


def test_clean_normalises_whitespace_and_drops_citations():
    raw = "\ufeffTitle:  The  Film\r\nPlot: He\tleaves.[1] She stays.[23][citation needed]  End\x00.\n\n\n\nMore"
    assert clean(raw) == "Title: The Film\nPlot: He leaves. She stays. End.\n\nMore"


@pytest.mark.parametrize("sep,text,expected", [
    ("===", "a b\n===\nc\n=== \nd\n", ["a b", "c", "d"]),
    ("blank", "a\nb\n\n\nc\n\nd", ["a\nb", "c", "d"]),
    ("%", "one\n%\ntwo\n%\n", ["one", "two"]),
    ("<|endoftext|>", "one<|endoftext|>two\nthree<|endoftext|>\nfour", ["one", "two\nthree", "four"]),
    ("@@", "x\n@@\ny", ["x", "y"]),
])
def test_txt_separators(tmp_path, sep, text, expected):
    assert list(read_documents(write(tmp_path / "c.txt", text), separator=sep)) == expected


def test_mixed_line_endings_and_bom(tmp_path):
    p = write(tmp_path / "c.txt", "\ufeffa\r\nb\r===\r\nc\n".encode("utf-8"))
    assert list(read_documents(p)) == ["a\nb", "c"]


def test_dir_reads_every_txt_sorted(tmp_path):
    write(tmp_path / "d" / "b.txt", "second")
    write(tmp_path / "d" / "a.txt", "first\n===\nfirst-b")
    write(tmp_path / "d" / "sub" / "c.txt", "third")
    write(tmp_path / "d" / "skip.md", "not me")
    assert list(read_documents(tmp_path / "d")) == ["first", "first-b", "second", "third"]


def test_csv_column_and_title(tmp_path):
    p = write(tmp_path / "wiki.csv", 'Release Year,Title,Plot\n1901,A Film,"He runs.[2]\nShe, too."\n1902,B,Nothing\n')
    assert list(read_documents(p)) == ["Title: A Film\nPlot: He runs.\nShe, too.", "Title: B\nPlot: Nothing"]
    assert list(read_documents(p, column="Title", title="")) == ["A Film", "B"]
    with pytest.raises(CorpusError, match="no column 'Story'.*Release Year, Title, Plot"):
        list(read_documents(p, column="Story"))


def test_jsonl_field(tmp_path):
    p = write(tmp_path / "x.jsonl", '{"text": "one", "t": "T1"}\n\n{"text": "two"}\n')
    assert list(read_documents(p)) == ["one", "two"]
    assert list(read_documents(p, title="t")) == ["Title: T1\nPlot: one", "two"]
    with pytest.raises(CorpusError, match="no field 'body'"):
        list(read_documents(p, field="body"))
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{oops\n')
    with pytest.raises(CorpusError, match="line 2 is not valid JSON"):
        list(read_documents(bad))


def _cmu_archive(path, summaries: dict[str, str], titles: dict[str, str]):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in [("MovieSummaries/plot_summaries.txt", "".join(f"{k}\t{v}\n" for k, v in summaries.items())),
                           ("MovieSummaries/movie.metadata.tsv",
                            "".join(f"{k}\t/m/x\t{v}\t1999\n" for k, v in titles.items()))]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cmu_archive_and_plain_file(tmp_path):
    arc = _cmu_archive(tmp_path / "MovieSummaries.tar.gz", {"1": "A plot.[3]", "2": "Another plot."}, {"1": "Film One"})
    assert list(read_documents(arc)) == ["Title: Film One\nPlot: A plot.", "Another plot."]
    plain = write(tmp_path / "plain" / "plot_summaries.txt", "7\tSeven.\n8\tEight.\n")
    assert list(read_documents(plain)) == ["Seven.", "Eight."]
    with pytest.raises(CorpusError, match="not `id<TAB>summary`"):
        list(read_documents(write(tmp_path / "p2" / "plot_summaries.txt", "no tab here\n")))
    broken = write(tmp_path / "broken.tar.gz", gzip.compress(b"not a tar"))
    with pytest.raises(CorpusError, match="not a readable .tar.gz"):
        list(read_documents(broken))


def test_binary_and_non_utf8_are_refused(tmp_path):
    with pytest.raises(CorpusError, match="binary"):
        list(read_documents(write(tmp_path / "x.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)))
    with pytest.raises(CorpusError, match="not valid UTF-8 .*line 2"):
        list(read_documents(write(tmp_path / "y.txt", "fine\ncaf\xe9\n".encode("latin-1"))))


def test_detect_format(tmp_path):
    assert corpus.detect_format(tmp_path) == "dir"
    assert [corpus.detect_format(n) for n in ("a.csv", "a.jsonl", "MovieSummaries.tar.gz", "a.txt")] == \
        ["csv", "jsonl", "cmu", "txt"]


def test_split_is_by_document_in_file_order():
    assert split_counts(1649, 0.1) == (1484, 165)  # plots-bench v1
    assert split_counts(220, 0.1) == (198, 22)
    assert split_counts(2, 0.1) == (1, 1)
    with pytest.raises(CorpusError, match="at least 2"):
        split_counts(1, 0.1)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present (only on project machines)")
def test_shared_corpus_reads_as_documented():
    docs = list(read_documents(SHARED))
    assert len(docs) == 1649
    assert all(d.startswith("Title: ") for d in docs)


def _awkward_text(seed: int) -> str:
    """Multi-byte characters, every line ending, separators and end-of-text markers, mixed at random."""
    import random
    rng = random.Random(seed)
    bits = ["café", " naïve", "—", "“quoted”", " 😀", "a", " b", "\r\n", "\n", "\r", "\n===\n", "<|endoftext|>",
            "\n\n", "\x00", "  ", "\t", "<|endo", "==="]
    return "\ufeff" + "".join(rng.choice(bits) for _ in range(400))


@pytest.mark.parametrize("sep", ["===", "blank", "<|endoftext|>"])
def test_streaming_in_tiny_chunks_reads_exactly_what_one_read_does(tmp_path, monkeypatch, sep):
    """Chunk boundaries fall inside characters, \\r\\n pairs and markers; the documents must not change."""
    for seed in range(12):
        p = write(tmp_path / f"c{seed}.txt", _awkward_text(seed).encode("utf-8"))
        whole = list(read_documents(p, separator=sep))
        assert "".join(corpus._pieces(p)).count("\n") > 5
        for chunk in (1, 2, 3, 5, 7):
            monkeypatch.setattr(corpus, "CHUNK_BYTES", chunk)
            assert list(read_documents(p, separator=sep)) == whole, (seed, chunk)
            assert "\r" not in "".join(corpus._pieces(p)) and "\ufeff" not in "".join(corpus._pieces(p))
        monkeypatch.undo()


def test_a_runaway_document_is_cut_at_whitespace_into_bounded_pieces(tmp_path, monkeypatch):
    words = [f"w{i}é" for i in range(5000)]
    p = write(tmp_path / "one-line.txt", " ".join(words).encode("utf-8"))  # one line, no separator
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 64)
    cuts = []
    docs = list(read_documents(p, max_doc_chars=1000, on_cut=lambda: cuts.append(1)))
    assert len(docs) > 30 and len(cuts) == len(docs) - 1
    assert max(map(len, docs)) <= 1000
    assert " ".join(docs).split() == words  # cut only between words, nothing lost


def test_a_huge_record_in_a_line_format_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_RECORD_BYTES", 100)
    p = write(tmp_path / "big.jsonl", '{"text": "ok"}\n{"text": "' + "x" * 500 + '"}\n')
    with pytest.raises(CorpusError, match="line 2 is longer than 100 characters"):
        list(read_documents(p))
