"""What a corpus looks like before a model sees it (plotgpt stats). Taught in notebook 01.

A synthetic corpus can look fine document by document and still be templated: every plot opening
the same way, the same stock phrases in hundreds of documents. These figures catch that, and
compare a corpus with another (real plots, say) side by side:

- documents, bytes, words per document (of the plot, without its `Title:` line);
- distinct titles: a title used twice is a duplicate, or a corpus stitched together twice;
- openings: the commonest first three words of a plot and their share (real plots: a quarter of
  the shared corpus opens "The film opens");
- shared 8-grams: the share of a document's word 8-grams that also occur in another document.
  Real plots share about 1 %; templated text much more;
- distinct words per 100,000 words (the mean over consecutive windows of that many): the
  vocabulary's breadth at a fixed length, since type counts grow with corpus size;
- against another corpus: the share of this corpus's 8-grams found in that one (text copied from
  it, or both copied from one source).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .corpus import read_documents

_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
WINDOW = 100_000  # words per window for the distinct-word count


def split_title(doc: str) -> tuple[str | None, str]:
    """(title, plot text) of a `Title: ...` / `Plot: ...` document; (None, doc) otherwise."""
    title, body = None, doc
    first, _, rest = doc.partition("\n")
    if first.startswith("Title:"):
        title, body = first[len("Title:"):].strip(), rest
    body = body.strip()
    return title, body[len("Plot:"):].strip() if body.startswith("Plot:") else body


def words(text: str) -> list[str]:
    """Lowercased words, punctuation dropped: what the n-gram figures compare."""
    return _WORDS.findall(text.lower().replace("\u2019", "'"))


def ngrams(ws: list[str], n: int = 8) -> set[tuple[str, ...]]:
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}


def stats(docs: list[str], *, n: int = 8, top: int = 5, against: set | None = None) -> dict:
    """The figures of the module docstring for a list of documents."""
    titled = [split_title(d) for d in docs]
    titles = [t.lower() for t, _ in titled if t]
    bodies = [words(b) for _, b in titled]
    lengths = sorted(len(b) for b in bodies)
    openings = Counter(" ".join(b[:3]) for b in bodies if len(b) >= 3)
    per_doc = [ngrams(b, n) for b in bodies]
    df = Counter(g for grams in per_doc for g in grams)  # in how many documents each 8-gram occurs
    total = sum(len(g) for g in per_doc)
    all_words = [w for d in docs for w in words(d)]
    windows = [all_words[i:i + WINDOW] for i in range(0, max(len(all_words) - WINDOW + 1, 1), WINDOW)]
    out = {
        "documents": len(docs),
        "bytes": sum(len(d.encode("utf-8")) for d in docs),
        "words": len(all_words),
        "words_per_doc": {"mean": sum(lengths) / max(len(lengths), 1), "min": lengths[0] if lengths else 0,
                          "median": lengths[len(lengths) // 2] if lengths else 0, "max": lengths[-1] if lengths else 0},
        "titles": len(titles), "distinct_titles": len(set(titles)),
        "openings": [(o, c / len(docs)) for o, c in openings.most_common(top)],
        "shared_ngram_share": sum(df[g] > 1 for grams in per_doc for g in grams) / max(total, 1),
        "distinct_words_per_100k": sum(len(set(w)) for w in windows) / len(windows),
        "window_words": min(WINDOW, len(all_words)),
    }
    if against is not None:
        mine = set().union(*per_doc)
        out["ngrams_in_other"] = len(mine & against) / max(len(mine), 1)
    return out


def corpus_ngrams(docs: list[str], n: int = 8) -> set:
    return set().union(*(ngrams(words(split_title(d)[1]), n) for d in docs))


def table(named: dict[str, dict]) -> str:
    """A markdown table, one column per corpus."""
    def pct(x):
        return f"{x:.2%}"

    rows = [("documents", lambda s: f"{s['documents']:,}"), ("bytes", lambda s: f"{s['bytes']:,}"),
            ("words per plot: mean (min-max)",
             lambda s: f"{s['words_per_doc']['mean']:.0f} ({s['words_per_doc']['min']}-{s['words_per_doc']['max']})"),
            ("distinct titles", lambda s: f"{s['distinct_titles']:,} of {s['titles']:,}"),
            ("commonest opening", lambda s: f"\"{s['openings'][0][0]}\" {pct(s['openings'][0][1])}" if s["openings"]
             else "-"),
            ("second opening", lambda s: f"\"{s['openings'][1][0]}\" {pct(s['openings'][1][1])}"
             if len(s["openings"]) > 1 else "-"),
            ("8-grams shared between documents", lambda s: pct(s["shared_ngram_share"])),
            ("distinct words per 100,000", lambda s: f"{s['distinct_words_per_100k']:,.0f}"
             + ("" if s["window_words"] == WINDOW else f" (in {s['window_words']:,} words)"))]
    if any("ngrams_in_other" in s for s in named.values()):
        rows.append(("8-grams found in the other corpus", lambda s: pct(s["ngrams_in_other"])
                     if "ngrams_in_other" in s else "-"))
    lines = ["| | " + " | ".join(named) + " |", "|---|" + "---:|" * len(named)]
    lines += [f"| {label} | " + " | ".join(f(s) for s in named.values()) + " |" for label, f in rows]
    return "\n".join(lines)


def describe(paths: list[Path], *, against: Path | None = None, **read_kwargs) -> tuple[str, dict]:
    """Statistics of each corpus, read once; with `against`, that corpus is the last column and the
    others get the share of their 8-grams found in it. Returns (markdown table, figures)."""
    corpora = {Path(p).name: list(read_documents(p, **read_kwargs)) for p in [*paths, *([against] if against else [])]}
    other = Path(against).name if against else None
    grams = corpus_ngrams(corpora[other]) if other else None
    named = {name: stats(docs, against=grams if other and name != other else None) for name, docs in corpora.items()}
    return table(named), named
