"""Write an index folder's files so that a reader never sees half an index (qa/build.py decides what to write).

Data files are named by content hash and written before the manifest, which is replaced
atomically (`os.replace`). A crash mid-build leaves the old manifest pointing at old, complete
files; a reader never sees half an index. Files of the previous generation are kept so a reader
that has just read the old manifest can still open them; older ones are removed.

Files and folders get the modes the process's umask gives any new file (0644 and 0755 under
the usual 022), not tempfile's private 0600/0700: an index built by one user (CI, an admin)
is served by another. A umask of 077 keeps it private.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .embedding import export_record
from .index import LOCK, MANIFEST, sha256_file, sha256_tree

# The only names a build writes; nothing else in the folder is ever deleted.
_DATA_FILE = re.compile(
    r"(?:documents|chunks|vectors|sentences|plain)\.[0-9a-f]{12}\.(?:jsonl|faiss|npy)|(?:encoder|lexicon)\.[0-9a-f]{12}"
)
_TEMP_FILE = re.compile(r"\.(?:documents|chunks|vectors|sentences|plain|encoder|lexicon|manifest\.json)\..*\.tmp")


def _temporary_name(folder: Path, stem: str) -> Path:
    """A fresh name for a temporary file or folder of a build (see _TEMP_FILE)."""
    return folder / f".{stem}.{secrets.token_hex(6)}.tmp"


def temporary_file(folder: Path, stem: str) -> Path:
    """An empty temporary file, created with mode 0666 minus the umask (tempfile.mkstemp makes it 0600)."""
    path = _temporary_name(folder, stem)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return path


@contextmanager
def _new_file(folder: Path, stem: str) -> Iterator[Path]:
    """A temporary file of a build, removed if the block fails."""
    tmp = temporary_file(folder, stem)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _new_folder(folder: Path, stem: str) -> Iterator[Path]:
    """A temporary folder of a build (mode 0777 minus the umask, as for any new folder), removed if the block fails."""
    tmp = _temporary_name(folder, stem)
    tmp.mkdir(0o777)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _into_place(tmp: Path, target: Path) -> None:
    """Rename a written folder to target; a damaged copy under that name goes first (a rebuild repairs it)."""
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.replace(tmp, target)


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, fsync, then rename into place."""
    with _new_file(path.parent, path.name) as tmp:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)


def put(folder: Path, stem: str, suffix: str, write) -> dict:
    """Write a data file under a content-hash name; returns its manifest entry."""
    with _new_file(folder, stem) as tmp:
        write(tmp)
        return put_file(folder, stem, suffix, tmp)


def put_file(folder: Path, stem: str, suffix: str, tmp: Path) -> dict:
    """Rename a written temporary file to its content-hash name (after fsync); its manifest entry."""
    digest = sha256_file(tmp)
    name = f"{stem}.{digest[:12]}{suffix}"
    _fsync(tmp)
    os.replace(tmp, folder / name)
    return {"name": name, "sha256": digest}


def write_jsonl(rows):
    """A writer for put: one JSON object a line."""
    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    return write


def put_dir(folder: Path, stem: str, write) -> dict:
    """Write a data folder under a content-hash name (kept if it exists already); its manifest entry."""
    with _new_folder(folder, stem) as tmp:
        write(tmp)
        digest = sha256_tree(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        target = folder / f"{stem}.{digest[:12]}"
        if target.is_dir() and sha256_tree(target) == digest:
            shutil.rmtree(tmp)  # the same content is there already
        else:
            _into_place(tmp, target)
    return {"name": target.name, "sha256": digest}


def link_encoder(folder: Path, export: Path) -> dict:
    """The model cache's ONNX export as the index's query encoder: hard links (a copy across file
    systems), so an index copied to a server carries it. Its hash is the one recorded at export."""
    record = export_record(export)
    target = folder / f"encoder.{record['sha256'][:12]}"
    entry = {"name": target.name, "sha256": record["sha256"]}
    if target.is_dir() and sorted(p.name for p in target.iterdir()) == sorted(record["files"]) and all(
        os.path.samefile(target / name, export / name) or sha256_file(target / name) == digest
        for name, digest in record["files"].items()
    ):
        return entry
    with _new_folder(folder, "encoder") as tmp:
        for name in record["files"]:
            try:
                os.link(export / name, tmp / name)
            except OSError:  # another file system
                shutil.copyfile(export / name, tmp / name)
        _into_place(tmp, target)
    return entry


@contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """One build at a time per index folder: a second build waits for the first.

    Without it, a build that finishes first would collect the data files of one that has written
    them but not yet its manifest, and the second manifest would point at deleted files.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (a single build at a time is then up to the user)
        yield
        return
    with open(folder / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def collect_garbage(folder: Path, keep: list[dict]) -> None:
    """Remove data files of older generations and stale temporary files; nothing else is touched."""
    wanted = {MANIFEST} | {e["name"] for m in keep for e in m.get("files", {}).values()}
    for path in folder.iterdir():
        if path.name in wanted:
            continue
        if _TEMP_FILE.fullmatch(path.name):
            if time.time() - path.stat().st_mtime < 3600:
                continue  # a temporary file of a build that may still be running
        elif not _DATA_FILE.fullmatch(path.name):
            continue  # not ours: an index folder may be shared with a README, .gitignore…
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
