"""Atomic file writes: write a temp file in the same folder, fsync, then rename over the target.

A reader (or a resumed run) sees the old file or the new one, never half of one, even if the
process is killed mid-write or the disk fills up.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path


_SLOW_WRITE_S = float(os.environ.get("PLOTGPT_TEST_SLOW_WRITE_S", "0") or 0)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path beside `path`; on success fsync it and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if _SLOW_WRITE_S:  # fault-injection tests widen the window in which a kill hits a half-done save
            time.sleep(_SLOW_WRITE_S)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def disk_errors(what: str, kept: str):
    """Re-raise a failed write (a full disk, a vanished folder) as one line that says what could not
    be written and what is still intact - true of everything written through atomic_path."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"could not write {what}: {exc.strerror or exc}; {kept}") from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FolderBusy(RuntimeError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "training"):
    """Hold an exclusive lock on `folder` (a `.lock` file inside it) while the block runs.

    Two trainings pointed at one run folder would overwrite each other's checkpoints and logs;
    the second one is refused at once with the first one's pid. The lock is an OS file lock
    (flock), so a killed process never leaves a stale lock behind. Also removes temp files
    left by a process killed mid-write (they are never read: see atomic_path).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    f = open(path, "a+", encoding="utf-8")
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; run without the guard rather than not at all
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise FolderBusy(f"{folder} is in use by another {what} ({holder}); wait for it to finish, "
                                 "or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        for stale in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        yield
    finally:
        f.close()  # releases the lock
        if created and [p.name for p in folder.iterdir()] == [".lock"]:  # a refused run leaves no folder behind
            with contextlib.suppress(OSError):
                path.unlink()
                folder.rmdir()
