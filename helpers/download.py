"""Downloads with a progress bar, a temp file renamed only when complete, and size / sha256 checks.

`plotgpt download cmu-plots` fetches the CMU Movie Summary Corpus (Bamman, O'Connor and Smith,
2013; CC BY-SA), the reference project's main dataset: 42,306 Wikipedia plot summaries.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm.auto import tqdm

from . import paths
from .atomic import atomic_path


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    filename: str
    description: str
    sha256: str | None = None  # pinned where known; otherwise recorded on first download
    min_bytes: int = 0


DATASETS = {
    "cmu-plots": Dataset(
        "cmu-plots", "http://www.cs.cmu.edu/~ark/personas/data/MovieSummaries.tar.gz", "MovieSummaries.tar.gz",
        "CMU Movie Summary Corpus: 42,306 plot summaries from Wikipedia (CC BY-SA 3.0), ~46 MB",
        min_bytes=10_000_000),
}


class DownloadError(RuntimeError):
    """A download that failed, was cut short, or does not match its checksum."""


def download(url: str, dest: str | Path, *, sha256: str | None = None, min_bytes: int = 0,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch url to dest. The file appears at dest only once complete and verified."""
    dest = Path(dest)
    try:
        resp = requests.get(url, stream=True, timeout=timeout)
    except requests.exceptions.ConnectionError:
        raise DownloadError(f"cannot reach {url} (offline?); connect to the internet and retry, or download it "
                            f"elsewhere and put it at {dest}") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(f"cannot download {url}: {type(exc).__name__}") from None
    with resp:
        if resp.status_code != 200:
            raise DownloadError(f"{url} answered HTTP {resp.status_code}; check the URL (--url) and retry")
        total = int(resp.headers.get("Content-Length") or 0) or None
        h, n = hashlib.sha256(), 0
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            try:
                for chunk in resp.iter_content(chunk_size=1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
            except requests.exceptions.RequestException:
                raise DownloadError(f"the download of {url} broke off after {n:,} bytes; run the command again") from None
            finally:
                bar.close()
            if total is not None and n != total:
                raise DownloadError(f"the download of {url} is incomplete ({n:,} of {total:,} bytes); run it again")
            if n < min_bytes:
                raise DownloadError(f"{url} sent only {n:,} bytes, expected at least {min_bytes:,}; is the URL right?")
            digest = h.hexdigest()
            if sha256 and digest != sha256.lower():
                raise DownloadError(f"sha256 mismatch for {url}: got {digest}, expected {sha256}; the file was not kept")
            f.flush()
            os.fsync(f.fileno())
    (dest.parent / (dest.name + ".sha256")).write_text(f"{digest}  {dest.name}\n")
    return dest


def fetch_dataset(name: str, out_dir: str | Path, url: str | None = None, sha256: str | None = None,
                  progress: bool = True, force: bool = False) -> Path:
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    dest = Path(out_dir) / ds.filename
    recorded = dest.parent / (dest.name + ".sha256")
    if dest.exists() and not force:
        if recorded.exists() and recorded.read_text().split()[0] == paths.sha256_file(dest):
            return dest  # already here and unchanged since it was verified
    return download(url or ds.url, dest, sha256=sha256 or ds.sha256, min_bytes=ds.min_bytes if not url else 0,
                    progress=progress)
