"""Load a corpus folder: every .txt, .md, .pdf, .html/.htm and .docx file below it becomes a Document.

Text files are decoded from bytes without newline translation, so offsets into
`Document.text` are offsets into the file as the user wrote it (CRLF included). PDF,
HTML and DOCX files are extracted (qa/extract.py): their extracted text is the document,
with its headings and page starts. Files that cannot be used (empty, binary, not UTF-8,
encrypted, without a text layer, over a limit, not what their extension says, unreadable)
are skipped with a warning naming them and the reason; a corpus with no usable document is
an error.
"""

from __future__ import annotations

import hashlib
import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import extract
from .errors import CorpusError

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
SUFFIXES = TEXT_SUFFIXES + extract.SUFFIXES
MAX_TITLE_CHARS = 120

_MD_HEADING = re.compile(r"#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Document:
    source: str  # path relative to the corpus folder, with forward slashes
    title: str
    text: str
    sha256: str  # of the text
    # Where structure came from the file itself (PDF, HTML, DOCX); empty for text files, whose
    # headings the chunker recognises.
    headings: tuple[tuple[int, int, int], ...] = ()  # (start, end, level) of each heading in text
    pages: tuple[int, ...] = ()  # offset where each page starts (PDF)
    file_sha256: str = ""  # of the file's bytes: what staleness and the extraction cache compare

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding text[offset], or None for a document without pages."""
        return bisect_right(self.pages, offset) if self.pages else None


@dataclass(frozen=True, slots=True)
class Corpus:
    documents: tuple[Document, ...]
    skipped: tuple[tuple[str, str], ...]  # (source, reason)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hash(path: Path) -> str | None:
    """sha256 of a file's bytes, or None when it cannot be read (to notice when a skipped file changes)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The document files below corpus_dir, in a stable order; hidden files and folders are ignored.

    A dangling symlink is listed too, so that loading it fails with a warning instead of in silence.
    """
    files = []
    for path in sorted(corpus_dir.rglob("*")):
        rel = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in SUFFIXES and (path.is_file() or (path.is_symlink() and not path.exists())):
            files.append(path)
    return files


def read_document(path: Path, source: str, cache: Mapping[str, Document] | None = None) -> Document:
    """Read one file; raises CorpusError with the reason when it cannot be used.

    cache: documents extracted before, by file_sha256; an unchanged PDF/HTML/DOCX is not parsed again.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read {source}: {e.strerror or e}") from e
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() not in TEXT_SUFFIXES:
        cached = (cache or {}).get(digest)
        if cached is not None:
            return Document(source, cached.title, cached.text, cached.sha256, cached.headings, cached.pages, digest)
        got = extract.read_file(data, source)
        title = got.title if 0 < len(got.title) <= MAX_TITLE_CHARS else document_title(got.text, source)
        return Document(source, title, got.text, content_hash(got.text), got.headings, got.pages, digest)
    kind = extract.sniff(data)
    if kind in ("pdf", "zip"):
        raise CorpusError(f"{source} is not text but {'a PDF' if kind == 'pdf' else 'a zip archive'} — "
                          f"rename it {'.pdf' if kind == 'pdf' else '.docx if it is a Word document'}")
    if b"\x00" in data:
        raise CorpusError(f"{source} looks binary (it contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{source} is not UTF-8 text (bad byte at offset {e.start})") from e
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise CorpusError(f"{source} is empty")
    return Document(source=source, title=document_title(text, source), text=text, sha256=content_hash(text),
                    file_sha256=digest)


def document_title(text: str, source: str) -> str:
    """The Markdown heading or short first line of the text; else a name made from the file name."""
    first = text.lstrip().split("\n", 1)[0].strip()
    match = _MD_HEADING.match(first)
    if match:
        first = match.group(1)
    if (
        first and len(first) <= MAX_TITLE_CHARS and (match or first[-1] not in ".!?:;,")
        and any(ch.isalnum() for ch in first)  # "---" (a rule, front matter) is no title
        # nor is a line with a link: "Format: https://www.debian.org/doc/…" opens every Debian
        # copyright file, and a title all of a folder's documents share names none of them
        and "://" not in first
    ):
        return first
    stem = Path(source).stem
    return re.sub(r"[_-]+", " ", stem).strip().capitalize() or source


def load_corpus(corpus_dir: str | Path, cache: Mapping[str, Document] | None = None) -> Corpus:
    """Every usable document below corpus_dir; raises CorpusError if there is none.

    cache: documents extracted before, by file_sha256 (see read_document).
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise CorpusError(f"corpus folder {root} {problem} — create it and put documents in it "
                          f"({', '.join(SUFFIXES)})")
    documents, skipped = [], []
    for path in corpus_files(root):
        source = path.relative_to(root).as_posix()
        try:
            documents.append(read_document(path, source, cache))
        except CorpusError as e:
            logger.warning("%s — skipped", e)
            skipped.append((source, str(e)))
    if not documents:
        detail = f" ({len(skipped)} skipped: {skipped[0][1]}…)" if skipped else ""
        raise CorpusError(f"no usable document ({', '.join(SUFFIXES)}) in {root}{detail}")
    return Corpus(documents=tuple(documents), skipped=tuple(skipped))
