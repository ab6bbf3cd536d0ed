"""Corpus readers, cleaning and the document-level train/val split. Taught in notebook 01.

Every reader yields one cleaned document (a str) at a time, so a large corpus streams:
- txt:   one file, documents separated by a line holding only SEP (default `===`);
         SEP `blank` splits on blank lines, `%` reads fortune files, `<|endoftext|>` splits
         wherever that marker occurs, even inside a line;
- dir:   every *.txt file under a folder (sorted), each split as above;
- csv:   one document per row from a named column (default `Plot`, e.g. the Wikipedia Movie
         Plots CSV); a `Title` column, when present, is kept as a `Title:` line;
- jsonl: one document per line from a named field (default `text`);
- cmu:   the CMU Movie Summary Corpus (`MovieSummaries.tar.gz` or `plot_summaries.txt`, lines
         `id<TAB>summary`); titles come from `movie.metadata.tsv` when it is there.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

FORMATS = ("txt", "dir", "csv", "jsonl", "cmu")
DEFAULT_SEPARATOR = "==="
EOT_MARKER = "<|endoftext|>"
# Streaming bounds: a line is read at most CHUNK_BYTES at a time, and a document that grows past
# MAX_DOC_CHARS (a wrong --separator, or a 1 GB file on one line) is cut at whitespace into pieces,
# so memory stays bounded whatever the input. Records of csv/jsonl/cmu must fit MAX_RECORD_BYTES.
CHUNK_BYTES = 1 << 20
MAX_DOC_CHARS = 1_000_000
MAX_RECORD_BYTES = 64 << 20
# Wikipedia-style citation markers: [1], [23], [a], [citation needed], [note 3]
_CITATION = re.compile(r"\[(?:\d{1,4}|[a-z]|citation needed|note \d+|clarification needed)\]", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CorpusError(ValueError):
    """The input cannot be read as a corpus; the message says what to do."""


def clean(text: str) -> str:
    """Normalise whitespace, drop citation markers and control bytes; keep line structure."""
    text = text.replace("\ufeff", "")
    text = _CONTROL.sub("", text)
    text = _CITATION.sub("", text)
    lines, blank = [], False
    for line in text.splitlines():
        line = " ".join(line.split())  # collapses runs of spaces, tabs and non-breaking spaces
        if line:
            lines.append(line)
            blank = False
        elif lines and not blank:  # keep at most one blank line between paragraphs
            lines.append("")
            blank = True
    return "\n".join(lines).strip()


def detect_format(path: str | Path) -> str:
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "dir"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith((".tar.gz", ".tgz")) or name == "plot_summaries.txt":
        return "cmu"
    return "txt"


def read_documents(path: str | Path, fmt: str | None = None, *, separator: str = DEFAULT_SEPARATOR,
                   column: str = "Plot", field: str = "text", title: str | None = None,
                   max_doc_chars: int = MAX_DOC_CHARS, on_cut=None) -> Iterator[str]:
    """Yield the cleaned, non-empty documents of a corpus, streaming: memory stays bounded.

    A txt document longer than `max_doc_chars` is cut at whitespace into pieces of at most that
    size (each then trains as its own document); `on_cut()` is called once per cut.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path} does not exist")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise CorpusError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "dir":
        if not path.is_dir():
            raise CorpusError(f"{path} is not a folder (format dir reads every .txt file in a folder)")
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise CorpusError(f"{path} holds no .txt files")
        raw: Iterable[str] = (d for f in files for d in _txt_docs(f, separator, max_doc_chars, on_cut))
    elif path.is_dir():
        raise CorpusError(f"{path} is a folder; use --format dir")
    elif fmt == "txt":
        raw = _txt_docs(path, separator, max_doc_chars, on_cut)
    elif fmt == "csv":
        raw = _csv_docs(path, column, title if title is not None else "Title")
    elif fmt == "jsonl":
        raw = _jsonl_docs(path, field, title)
    else:
        raw = _cmu_docs(path)
    for doc in raw:
        doc = clean(doc)
        if doc:
            yield doc


def _check_not_binary(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8192)
    if head and (head.count(b"\x00") > len(head) // 10 or head.startswith((b"\x89PNG", b"PK\x03\x04", b"\x1f\x8b", b"%PDF"))):
        raise CorpusError(f"{path} looks like a binary file, not text; give a UTF-8 text, CSV or JSONL file")


def _pieces(path: Path) -> Iterator[str]:
    """The text of a UTF-8 file in pieces of at most CHUNK_BYTES, line endings made \\n, BOM dropped.

    Every \\n ends a line; a piece that does not end in \\n continues on the next piece (the last
    piece of the file always ends in \\n). Decoding is incremental, so a character split between
    two pieces is joined, and an encoding error names its line.
    """
    _check_not_binary(path)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()  # -sig: drops a BOM at the start only
    held = ""  # a trailing \r, held until we know whether \n follows
    n, ended = 1, True
    with open(path, "rb") as f:
        while raw := f.readline(CHUNK_BYTES):
            try:
                text = held + decoder.decode(raw)
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start] if exc.start < len(exc.object) else 0
                raise CorpusError(f"{path} is not valid UTF-8 (line {n}, byte 0x{bad:02x}); convert it "
                                  "first, e.g. iconv -f latin1 -t utf-8") from None
            held = ""
            if text.endswith("\r"):
                text, held = text[:-1], "\r"
            if "\r" in text:  # Windows (\r\n) and old Mac (\r) endings
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                n += text.count("\n")
                ended = text.endswith("\n")
                yield text
    try:
        tail = ("\n" if held else "") + decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CorpusError(f"{path} is not valid UTF-8 (it ends inside a character, line {n}); convert it "
                          "first, e.g. iconv -f latin1 -t utf-8") from None
    if tail or not ended:
        yield tail if tail.endswith("\n") else tail + "\n"


def cut_at_whitespace(text: str, limit: int) -> Iterator[str]:
    """`text` in pieces of at most `limit` characters, each cut before its last space or newline
    (a hard cut only where the last half of a piece holds none). Joined, they are `text` again."""
    while len(text) > limit:
        cut = max(text.rfind(" ", 0, limit), text.rfind("\n", 0, limit))
        cut = cut if cut > limit // 2 else limit
        yield text[:cut]
        text = text[cut:]
    yield text


def _split_lines(text: str) -> list[str]:
    """`text` split after every \\n (only \\n: str.splitlines would also split on \\x85, \\u2028...)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _lines(path: Path) -> Iterator[str]:
    """Whole lines ending in \\n, for formats whose records are lines (csv, jsonl, cmu)."""
    buf: list[str] = []
    size, n = 0, 1
    for piece in _pieces(path):
        for part in _split_lines(piece):
            buf.append(part)
            size += len(part)
            if size > MAX_RECORD_BYTES:
                raise CorpusError(f"{path} line {n} is longer than {MAX_RECORD_BYTES:,} characters; one record "
                                  "that large is not supported - is this the right --format?")
            if part.endswith("\n"):
                yield "".join(buf)
                buf, size, n = [], 0, n + 1


class _Buffer:
    """The document being assembled from pieces of text."""

    def __init__(self):
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def flush(self) -> str:
        doc = "".join(self.parts)
        self.parts, self.size = [], 0
        return doc


def _txt_docs(path: Path, separator: str, max_chars: int = MAX_DOC_CHARS, on_cut=None) -> Iterator[str]:
    blank_mode = separator.strip().lower() in ("", "blank")
    inline = separator == EOT_MARKER
    sep = separator.strip()
    buf = _Buffer()
    line, long_line = "", False  # the line being assembled from pieces; whether it is past 4 kB
    carry = ""  # inline mode: the end of a piece that may be the start of a split marker

    for piece in _pieces(path):
        if inline:
            piece, carry = carry + piece, ""
            if not piece.endswith("\n"):
                k = next((k for k in range(len(sep) - 1, 0, -1) if piece.endswith(sep[:k])), 0)
                if k:
                    piece, carry = piece[:-k], piece[-k:]
            parts = piece.split(sep)
            for part in parts[:-1]:
                buf.add(part)
                yield buf.flush()
            buf.add(parts[-1])
        else:
            for part in _split_lines(piece):
                if long_line:  # the rest of a line already known to be text
                    buf.add(part)
                    long_line = not part.endswith("\n")
                    continue
                line += part
                if not line.endswith("\n"):
                    if len(line) > 4096:  # too long to be a separator line, unless it is mostly spaces
                        if line.strip() in ("", sep):  # clean() drops the spaces anyway
                            line = line.strip() + " "
                        else:
                            buf.add(line)
                            line, long_line = "", True
                    continue
                stripped = line.strip()
                if (blank_mode and not stripped) or (not blank_mode and stripped == sep):
                    if buf.parts:
                        yield buf.flush()
                else:
                    buf.add(line)
                line = ""
        if buf.size > max_chars:  # a runaway document: cut it at whitespace into bounded pieces
            *done, rest = cut_at_whitespace(buf.flush(), max_chars)
            for doc in done:
                if on_cut is not None:
                    on_cut()
                yield doc
            buf.add(rest)
    buf.add(carry)
    if any(buf.parts):
        yield buf.flush()


def _csv_docs(path: Path, column: str, title_column: str | None) -> Iterator[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(_lines(path))
    header = reader.fieldnames or []
    if column not in header:
        raise CorpusError(f"{path} has no column {column!r}; its columns are: {', '.join(header) or '(none)'}; "
                          "pick one with --column")
    use_title = bool(title_column) and title_column in header and title_column != column
    try:
        for row in reader:
            text = row.get(column) or ""
            if use_title and row.get(title_column):
                text = f"Title: {row[title_column]}\nPlot: {text}"
            yield text
    except csv.Error as exc:
        raise CorpusError(f"{path} is not valid CSV (line {reader.line_num}): {exc}") from None


def _jsonl_docs(path: Path, field: str, title_field: str | None) -> Iterator[str]:
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path} line {n} is not valid JSON: {exc.msg}") from None
        if not isinstance(rec, dict) or field not in rec:
            keys = ", ".join(rec) if isinstance(rec, dict) else type(rec).__name__
            raise CorpusError(f"{path} line {n} has no field {field!r} (it has: {keys}); pick one with --field")
        text = str(rec[field])
        if title_field and rec.get(title_field):
            text = f"Title: {rec[title_field]}\nPlot: {text}"
        yield text


def _cmu_docs(path: Path) -> Iterator[str]:
    """plot_summaries.txt lines `wikipedia_id<TAB>summary`, titled from movie.metadata.tsv."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        try:
            tar = tarfile.open(path, "r:gz")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CorpusError(f"{path} is not a readable .tar.gz archive ({exc}); download it again") from None
        with tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "plot_summaries.txt" not in members:
                raise CorpusError(f"{path} holds no plot_summaries.txt; is it the CMU MovieSummaries archive?")
            titles = {}
            if "movie.metadata.tsv" in members:
                titles = _cmu_titles(io.TextIOWrapper(tar.extractfile(members["movie.metadata.tsv"]), encoding="utf-8"))
            lines = io.TextIOWrapper(tar.extractfile(members["plot_summaries.txt"]), encoding="utf-8")
            yield from _cmu_lines(lines, titles, path)
    else:
        meta = path.with_name("movie.metadata.tsv")
        titles = {}
        if meta.exists():
            with open(meta, encoding="utf-8") as f:
                titles = _cmu_titles(f)
        yield from _cmu_lines(_lines(path), titles, path)


def _cmu_titles(lines: Iterable[str]) -> dict[str, str]:
    titles = {}
    for line in lines:
        cols = line.rstrip("\n").split("\t")
        if len(cols) > 2:
            titles[cols[0]] = cols[2]
    return titles


def _cmu_lines(lines: Iterable[str], titles: dict[str, str], path: Path) -> Iterator[str]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        wiki_id, tab, summary = line.partition("\t")
        if not tab:
            raise CorpusError(f"{path} line {n} is not `id<TAB>summary`; is this the CMU plot_summaries.txt?")
        title = titles.get(wiki_id.strip())
        yield f"Title: {title}\nPlot: {summary}" if title else summary


def split_counts(n_docs: int, val_fraction: float) -> tuple[int, int]:
    """(n_train, n_val): the first documents train, the last `val_fraction` validate.

    Deterministic and by whole documents, in file order: for the 1,649-plot corpus and 0.1 this
    is 1,484 / 165, the plots-bench v1 split. At least one document goes to each side.
    """
    if n_docs < 2:
        raise CorpusError(f"the corpus has {n_docs} document(s); at least 2 are needed for a train/val split "
                          "(is the --separator right?)")
    if not 0.0 < val_fraction < 1.0:
        raise CorpusError(f"val fraction {val_fraction} must be between 0 and 1")
    n_train = min(max(int(n_docs * (1.0 - val_fraction) + 1e-9), 1), n_docs - 1)
    return n_train, n_docs - n_train
