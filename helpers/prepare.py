"""corpus -> tokenizer -> memmaps: the `plotgpt prepare` step. Taught in notebook 01."""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from . import corpus, paths
from . import tokenizer as tok
from .atomic import atomic_path, atomic_write_text, disk_errors
from .config import DEFAULT_VOCAB_SIZE
from .dataset import META_VERSION, TokenWriter, load_data


def default_out(source: Path) -> Path:
    name = source.name.split(".")[0] if source.is_file() else source.name
    if source.name in ("plots.txt",) and source.parent.name == "sample":
        name = "sample"
    return paths.data_root() / (name or "corpus")


def _batch(docs, max_docs: int = 256, max_chars: int = 4_000_000) -> list[str]:
    """The next documents to encode together: many short ones, or a few long ones (bounded memory)."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if len(batch) >= max_docs or size >= max_chars:
            break
    return batch


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a uniquely named file: several processes (torchrun ranks) may check one folder at once
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise corpus.CorpusError(f"cannot write to {folder} ({exc.strerror or exc}); choose another --out") from None


def prepare(source: str | Path, out: str | Path | None = None, *, fmt: str | None = None,
            separator: str = corpus.DEFAULT_SEPARATOR, column: str = "Plot", field: str = "text",
            title: str | None = None, tokenizer: str = "bpe", vocab_size: int = DEFAULT_VOCAB_SIZE,
            val_fraction: float = 0.1, encoding=None, progress: bool = True, log=print) -> Path:
    """Read a corpus, build the tokenizer on its train split and write the memmaps.

    `encoding` reuses an existing tokenizer (for fine-tuning on a second corpus) instead of
    building one. Nothing in `out` changes until everything is encoded: the .bin files are written to temp
    files and renamed at the end, meta.json last, so a failure keeps the previous data intact.
    """
    source = Path(source)
    out = Path(out) if out else default_out(source)
    if tokenizer not in ("bpe", "gpt2"):
        raise corpus.CorpusError(f"unknown tokenizer {tokenizer!r}; choose bpe or gpt2")
    if tokenizer == "bpe":
        tok.check_vocab_size(vocab_size)
    if source.is_file() and source.stat().st_size == 0:
        raise corpus.CorpusError(f"{source} is empty")
    check_writable(out)

    def docs(on_cut=None):
        return corpus.read_documents(source, fmt, separator=separator, column=column, field=field, title=title,
                                     on_cut=on_cut)

    n_docs, n_chars = _count(docs, source, separator, progress, log)
    n_train, n_val = corpus.split_counts(n_docs, val_fraction)
    log(f"read {n_docs:,} documents from {source}: {n_train:,} train, {n_val:,} val (split by document, in file order)")

    enc = _tokenizer(encoding, tokenizer, vocab_size, itertools.islice(docs(), n_train), n_chars, log)

    stats = _encode(docs(), enc, n_train, n_docs, out, progress)
    tok.save(enc, out / "tokenizer.json")
    meta = {
        "format_version": META_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(source.resolve()), "source_sha256": paths.sha256_file(source),
        "format": fmt or corpus.detect_format(source), "separator": separator,
        "tokenizer": {"kind": "gpt2" if enc.name == "gpt2" else "bpe", "name": enc.name,
                      "fingerprint": tok.fingerprint(enc)},
        "vocab_size": enc.n_vocab, "eot_id": enc.eot_token, "dtype": "uint16", "val_fraction": val_fraction,
        "splits": stats,
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
    load_data(out)  # read back what we wrote: sizes, tokenizer and meta must agree
    return out


def _count(docs, source: Path, separator: str, progress: bool, log) -> tuple[int, int]:
    """A first pass: how many documents and characters (the split and the BPE cap need them)."""
    cuts, n_docs, n_chars = [], 0, 0
    for doc in tqdm(docs(on_cut=lambda: cuts.append(1)), desc="reading", unit="doc", delay=2, disable=not progress):
        n_docs += 1
        n_chars += len(doc)
    if n_docs == 0:
        raise corpus.CorpusError(f"{source} holds no text")
    if cuts:
        log(f"note: {len(cuts):,} cuts made in documents longer than {corpus.MAX_DOC_CHARS:,} characters (each piece "
            f"trains as its own document); if that is wrong, check the separator (now {separator!r})")
    return n_docs, n_chars


def _tokenizer(encoding, kind: str, vocab_size: int, train_docs, n_chars: int, log):
    """The given tokenizer, GPT-2's, or a domain BPE trained on the train split."""
    if encoding is not None:
        log(f"using the given tokenizer {encoding.name} ({encoding.n_vocab:,} ids)")
        return encoding
    if kind == "gpt2":
        return tok.gpt2()
    cap = f" (at most its first {tok.TRAIN_MAX_CHARS:,} characters)" if n_chars > tok.TRAIN_MAX_CHARS else ""
    log(f"training a {vocab_size:,}-token byte-level BPE on the train split{cap} (rustbpe)...")
    return tok.train_bpe(train_docs, vocab_size)


def _encode(docs, enc, n_train: int, n_docs: int, out: Path, progress: bool) -> dict:
    """Encode every document into train.bin / val.bin (temp files renamed at the end); the splits' stats."""
    stats = {s: {"documents": 0, "tokens": 0, "bytes": 0, "characters": 0} for s in ("train", "val")}
    eot = enc.eot_token
    with disk_errors(f"the memmaps in {out}", "any data prepared there before is intact - free some space and "
                     "run prepare again"), contextlib.ExitStack() as stack:
        tmp = {s: stack.enter_context(atomic_path(out / f"{s}.bin")) for s in ("train", "val")}
        files = {s: stack.enter_context(open(tmp[s], "wb")) for s in ("train", "val")}
        writers = {s: TokenWriter(files[s], enc.n_vocab) for s in ("train", "val")}
        bar = tqdm(total=n_docs, desc="encoding", unit="doc", disable=not progress)
        index = 0
        while batch := _batch(docs):
            for doc, ids in zip(batch, enc.encode_ordinary_batch(batch)):
                split = "train" if index < n_train else "val"
                writers[split].write([eot, *ids])  # each document opens with <|endoftext|>
                st = stats[split]
                st["documents"] += 1
                st["tokens"] += len(ids) + 1
                st["bytes"] += len(doc.encode("utf-8"))
                st["characters"] += len(doc)
                index += 1
            bar.update(len(batch))
        bar.close()
        for f in files.values():
            f.flush()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out / "meta.json")  # a folder without meta.json is "not prepared" until we finish
    return stats
