"""Corpora of a chosen size, assembled from the prose already on this machine.

Sources: Debian's package documentation (/usr/share/doc: READMEs, NEWS, changelogs,
copyright files, gzipped or not), the common licences, the .md/.rst/.txt files that
ship inside Python packages, and the docstrings of the Python standard library and
every installed package (one Markdown document per module, a section per function or
class). Paragraphs are deduplicated across all of it (the GPL is in hundreds of
copyright files; it is kept once), and paragraphs that are mostly not letters
(tables, hashes, code listings) are dropped, so a corpus is varied text, not copies.

The pool of documents is written once into a folder and reused; a corpus of n chunks
is the shortest prefix of a fixed shuffle of the pool that chunks into >= n chunks,
so the smaller corpora are subsets of the larger.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import inspect
import json
import random
import re
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

MAX_DOC_CHARS = 40_000
MIN_DOC_CHARS = 400
MIN_PARAGRAPH_CHARS = 60
POOL_VERSION = 1

_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")
_DOC_NAMES = re.compile(r"^(readme|news|changelog|changes|history|copyright|authors|thanks|todo|faq)", re.I)
_TEXT_SUFFIXES = {".md", ".rst", ".txt"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _read(path: Path) -> str | None:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if b"\x00" in data[:4096]:
            return None
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def _doc_files() -> Iterator[tuple[str, Path]]:
    for path in sorted(Path("/usr/share/common-licenses").glob("*")):
        if path.is_file():
            yield f"licenses/{path.name}", path
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        name = path.name.removesuffix(".gz")
        if path.is_file() and not path.is_symlink() and (_DOC_NAMES.match(name) or Path(name).suffix in _TEXT_SUFFIXES):
            yield "debian/" + path.relative_to("/usr/share/doc").as_posix(), path


def _python_roots() -> list[Path]:
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"]),
             Path(sysconfig.get_paths()["platlib"])}
    return sorted(r for r in roots if r.is_dir())


def _package_text_files() -> Iterator[tuple[str, Path]]:
    for root in _python_roots():
        for path in sorted(root.rglob("*")):
            if path.suffix in _TEXT_SUFFIXES and path.is_file() and path.name not in (
                "entry_points.txt", "top_level.txt", "RECORD", "requires.txt", "SOURCES.txt",
                "dependency_links.txt", "namespace_packages.txt",
            ) and "test" not in path.parts:
                yield f"python/{root.name}/{path.relative_to(root).as_posix()}", path


def _docstring_documents() -> Iterator[tuple[str, str]]:
    """(name, Markdown) per Python module: its docstring, then one section per documented class/function."""
    for root in _python_roots():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if any(p in ("test", "tests", "idlelib", "lib2to3") for p in rel.parts):
                continue
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError, OSError, RecursionError):
                continue
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            parts = []
            doc = ast.get_docstring(tree, clean=True)
            if doc:
                parts.append(doc)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    doc = ast.get_docstring(node, clean=True)
                    if doc and len(doc) >= 120:
                        parts.append(f"## {node.name}\n\n{inspect.cleandoc(doc)}")
            if parts:
                yield f"docstrings/{module}", f"# {module}\n\n" + "\n\n".join(parts)


def _letters(text: str) -> float:
    return sum(c.isalpha() or c.isspace() for c in text) / max(1, len(text))


def _clean(text: str, seen: set[bytes]) -> str:
    """Paragraphs not seen before and mostly words; headings always kept."""
    kept, size = [], 0
    for para in _PARAGRAPHS.split(text.replace("\r\n", "\n")):
        para = para.rstrip()
        if not para.strip():
            continue
        if para.lstrip().startswith("#") and "\n" not in para.strip():
            kept.append(para.strip())
            continue
        if len(para) < MIN_PARAGRAPH_CHARS or _letters(para) < 0.8:
            continue
        key = hashlib.blake2b(" ".join(para.split()).lower().encode(), digest_size=12).digest()
        if key in seen:
            continue
        seen.add(key)
        kept.append(para)
        size += len(para)
        if size > MAX_DOC_CHARS:
            break
    return "\n\n".join(kept) if size >= MIN_DOC_CHARS else ""


def _file_name(name: str, suffix: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", name)[:150]
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}{suffix}"


def build_pool(folder: Path, max_chars: int = 80_000_000) -> list[dict]:
    """Write the cleaned documents into folder (once); returns [{file, chars, chunks}] in shuffled order."""
    listing = folder / "pool.json"
    if listing.is_file():
        data = json.loads(listing.read_text())
        if data.get("version") == POOL_VERSION:
            return data["documents"]
    from qa.chunking import chunk_document
    from qa.corpus import read_document
    from qa.errors import CorpusError

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seen: set[bytes] = set()
    docs, total = [], 0

    def add(name: str, text: str, suffix: str) -> None:
        nonlocal total
        text = _clean(_CONTROL.sub("", text), seen)
        if not text:
            return
        file = _file_name(name, suffix)
        (folder / file).write_text(text, "utf-8")
        try:
            doc = read_document(folder / file, file)
        except CorpusError:
            (folder / file).unlink()
            return
        docs.append({"file": file, "chars": len(text), "chunks": len(chunk_document(doc))})
        total += len(text)

    def files(source):
        for name, path in source:
            if total > max_chars:
                return
            text = _read(path)
            if text:
                add(name, text, ".md" if path.name.removesuffix(".gz").endswith(".md") else ".txt")

    files(_doc_files())
    files(_package_text_files())
    for name, text in _docstring_documents():
        if total > max_chars:
            break
        add(name, text, ".md")
    random.Random(0).shuffle(docs)
    listing.write_text(json.dumps({"version": POOL_VERSION, "documents": docs}))
    return docs


def make_corpus(pool: Path, documents: list[dict], chunks: int, folder: Path) -> dict:
    """A corpus folder of about `chunks` chunks (the shortest prefix of the pool reaching it)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = total = chars = 0
    for doc in documents:
        if total >= chunks:
            break
        shutil.copyfile(pool / doc["file"], folder / doc["file"])
        n, total, chars = n + 1, total + doc["chunks"], chars + doc["chars"]
    if total < chunks:
        print(f"  the pool holds only ~{total:,} chunks, fewer than {chunks:,}", file=sys.stderr)
    return {"documents": n, "estimated_chunks": total, "chars": chars}
