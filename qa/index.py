"""Build, persist, verify and load the index folder.

Layout of `index/` (no pickle anywhere):
- `manifest.json`: format version, model name and dimension, chunker settings,
  per-document content hashes, counts, build time, and the name and sha256 of every
  data file below. It is the one pointer to the current index.
- `documents.<h>.jsonl`, `chunks.<h>.jsonl`: document texts (for PDF, HTML and DOCX the
  extracted text, with headings and page starts) and chunk records.
- `vectors.<h>.faiss`: chunk vectors (exact inner product, or HNSW when large).
- `sentences.<h>.npy`: one vector per sentence (its quote unit), embedded with its title and section,
  in chunk order; `plain.<h>.npy`: the same sentences embedded alone. A long title ("Boreal Alliance
  for Open Data — Annual Report 2025") swamps a short sentence: a question that does not name the
  document finds the sentence by its plain vector, one that does by the placed one.
- `encoder.<h>/`: the query encoder exported to ONNX (optional).

Data files are named by content hash and written before the manifest, which is
replaced atomically (`os.replace`). A crash mid-build leaves the old manifest
pointing at old, complete files; a reader never sees half an index. Files of the
previous generation are kept so a reader that has just read the old manifest can
still open them; older ones are removed.

Rebuilding reuses the vectors of every chunk and sentence whose embedding text is
unchanged (keyed by content hash), so editing one document re-embeds only it; and it reuses
the extracted text of every PDF, HTML and DOCX file whose bytes are unchanged (keyed by the
file's sha256 and the extractor's version), so an unchanged PDF is not parsed again.

Files and folders get the modes the process's umask gives any new file (0644 and 0755 under
the usual 022), not tempfile's private 0600/0700: an index built by one user (CI, an admin)
is served by another. A umask of 077 keeps it private.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .chunking import (
    CHUNKER_VERSION, Chunk, ChunkerSettings, chunk_document, embedding_text, sentence_embedding_texts, unit_spans,
)
from .corpus import TEXT_SUFFIXES, Corpus, Document, load_corpus, corpus_files, content_hash, file_hash
from .embedding import DEFAULT_MODEL, Embedder, SentenceTransformerEmbedder, export_onnx, token_counter
from .extract import EXTRACTOR_VERSION
from .errors import CorpusError, IndexCorruptError, IndexNotFoundError, StaleIndexError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".build.lock"  # held while a build writes the folder; never deleted (that would race)
# Exact search of the top 50 grows with the chunk count (about 1.5 ms at 10k, 8.5 ms at 50k, 14 ms at
# 100k here); HNSW answers in ~1 ms at 100k, finding 0.98 of the exact top 10.
HNSW_THRESHOLD = 10_000
# At 100k chunks (bench/results.md): efConstruction 80 / efSearch 128 found 0.91 of the exact top 10;
# 200 / 256 finds 0.98 for +0.4 ms a search and +35 s of build (next to ~90 min of embedding).
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 200, 256
# The only names a build writes; nothing else in the folder is ever deleted.
_DATA_FILE = re.compile(
    r"(?:documents|chunks|vectors|sentences|plain)\.[0-9a-f]{12}\.(?:jsonl|faiss|npy)|(?:encoder|lexicon)\.[0-9a-f]{12}"
)
_TEMP_FILE = re.compile(r"\.(?:documents|chunks|vectors|sentences|plain|encoder|lexicon|manifest\.json)\..*\.tmp")
# What load and staleness read from a manifest: (key, type) at the top level and below "model".
_MANIFEST_KEYS = {"model": dict, "chunker": dict, "documents": dict, "counts": dict, "files": dict}


@dataclass(frozen=True, slots=True)
class BuildReport:
    documents: int
    chunks: int
    sentences: int
    embedded: int  # texts sent to the model
    reused: int  # texts whose vectors came from the previous index
    skipped: tuple[tuple[str, str], ...]
    index_type: str
    seconds: float

    def summary(self) -> str:
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"{self.documents} documents{skipped}, {self.chunks} chunks, {self.sentences} sentences, "
            f"{self.embedded} embedded, {self.reused} reused, {self.index_type}, {self.seconds:.1f} s"
        )


@dataclass(slots=True)
class IndexData:
    """A loaded, verified index."""

    folder: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: object  # faiss.Index
    sentence_vectors: np.ndarray  # (n_sentences, dim), rows in chunk order, embedded with title and section
    sentence_rows: np.ndarray  # first sentence row of each chunk (n_chunks + 1,)
    encoder_dir: Path | None = None
    lexicon_dir: Path | None = None  # the BM25 indexes, saved at build (None: an older index; built at load)
    plain_vectors: np.ndarray | None = None  # the same rows embedded without title and section
    sentence_chunk: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        counts = np.diff(self.sentence_rows)
        self.sentence_chunk = np.repeat(np.arange(len(self.chunks)), counts)

    def similarity(self, rows: np.ndarray | int, vector: np.ndarray) -> np.ndarray:
        """Cosine of each sentence row and a query vector: the better of the sentence read in its place
        (title › section) and read alone."""
        placed = self.sentence_vectors[rows] @ vector
        return placed if self.plain_vectors is None else np.maximum(placed, self.plain_vectors[rows] @ vector)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_tree(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + _sha256_file(path).encode())
    return h.hexdigest()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def read_manifest(index_dir: str | Path) -> dict:
    """The manifest of an index folder, checked for the keys the loader relies on."""
    folder = Path(index_dir)
    path = folder / MANIFEST
    fix = f"run: python -m qa build --index {folder}"
    if not path.is_file():
        raise IndexNotFoundError(f"no index in {folder}/ — {fix}")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexCorruptError(f"{path} is unreadable ({e}) — {fix}") from e
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path} is not an index manifest (not a JSON object) — {fix}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(f"{folder}/ was written by another version of qa — {fix}")
    bad = [key for key, kind in _MANIFEST_KEYS.items() if not isinstance(manifest.get(key), kind)]
    model = manifest.get("model")
    if isinstance(model, dict) and not (isinstance(model.get("name"), str) and isinstance(model.get("dim"), int)):
        bad.append("model.name/dim")
    if bad:
        raise IndexCorruptError(f"{path} is damaged (bad or missing: {', '.join(bad)}) — {fix}")
    return manifest


def staleness(
    manifest: dict,
    corpus_dir: str | Path | None = None,
    model: str | None = None,
    settings: ChunkerSettings | None = None,
) -> list[str]:
    """Why the index no longer matches the corpus, model or chunker; empty when it is fresh.

    The chunker's version is always checked: chunks cut by older code lack its fixes.
    """
    reasons = []
    if model is not None and manifest["model"]["name"] != model:
        reasons.append(f"it was built with model {manifest['model']['name']!r}, not {model!r}")
    if "plain" not in manifest.get("files", {}):
        reasons.append("it lacks the vectors of its sentences read without their title (built by an older version)")
    version = manifest["chunker"].get("version")
    if version != CHUNKER_VERSION:
        reasons.append(f"it was chunked by chunker version {version}; this is version {CHUNKER_VERSION}")
    elif settings is not None and manifest["chunker"] != settings.as_dict():
        reasons.append("the chunker settings changed")
    extracted = [s for s, d in manifest["documents"].items() if Path(s).suffix.lower() not in TEXT_SUFFIXES]
    if extracted and manifest.get("extractor") != EXTRACTOR_VERSION:
        reasons.append(f"its PDF/HTML/DOCX text was extracted by extractor version {manifest.get('extractor')}; "
                       f"this is version {EXTRACTOR_VERSION}")
    if corpus_dir is not None:
        root = Path(corpus_dir)
        built = manifest["documents"]
        # {source: sha256 of its bytes}; an index of format 1 may hold a plain list (no hashes)
        skipped = manifest.get("skipped") or {}
        skipped = skipped if isinstance(skipped, dict) else dict.fromkeys(skipped, "")
        current = {}
        for path in corpus_files(root) if root.is_dir() else []:
            current[path.relative_to(root).as_posix()] = path
        for source in sorted(current.keys() - built.keys() - skipped.keys()):
            reasons.append(f"{source} was added")
        for source in sorted(built.keys() - current.keys()):
            reasons.append(f"{source} was removed")
        for source in sorted(current.keys() & built.keys()):
            if "file_sha256" in built[source]:
                changed = file_hash(current[source]) != built[source]["file_sha256"]
            else:  # an index from before extraction: its documents' hashes are of their UTF-8 text
                try:
                    text = current[source].read_bytes().decode("utf-8").removeprefix("\ufeff")
                except (OSError, UnicodeDecodeError):
                    text = None
                changed = text is None or content_hash(text) != built[source].get("sha256")
            if changed:
                reasons.append(f"{source} changed")
        for source in sorted(current.keys() & skipped.keys()):
            if skipped[source] and (file_hash(current[source]) or "unreadable") != skipped[source]:
                reasons.append(f"{source} changed (it was skipped as unusable when the index was built)")
    return reasons


def _temporary_name(folder: Path, stem: str) -> Path:
    """A fresh name for a temporary file or folder of a build (see _TEMP_FILE)."""
    return folder / f".{stem}.{secrets.token_hex(6)}.tmp"


def _temporary_file(folder: Path, stem: str) -> Path:
    """An empty temporary file, created with mode 0666 minus the umask (tempfile.mkstemp makes it 0600)."""
    path = _temporary_name(folder, stem)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return path


def _atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder, fsync, then rename into place."""
    tmp = _temporary_file(path.parent, path.name)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _put(folder: Path, stem: str, suffix: str, write) -> dict:
    """Write a data file under a content-hash name; returns its manifest entry."""
    tmp = _temporary_file(folder, stem)
    try:
        write(Path(tmp))
        digest = _sha256_file(Path(tmp))
        name = f"{stem}.{digest[:12]}{suffix}"
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"name": name, "sha256": digest}


def _write_jsonl(rows: Sequence[dict]):
    def write(path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    return write


def _put_dir(folder: Path, stem: str, write) -> dict:
    """Write a data folder under a content-hash name (kept if it exists already); its manifest entry."""
    tmp = _temporary_name(folder, stem)
    tmp.mkdir(0o777)  # minus the umask, as for any new folder
    try:
        write(tmp)
        digest = _sha256_tree(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        target = folder / f"{stem}.{digest[:12]}"
        if target.is_dir() and _sha256_tree(target) == digest:
            shutil.rmtree(tmp)  # the same content is there already
        else:
            if target.exists():  # a damaged copy under this name: a rebuild is how it gets repaired
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"name": target.name, "sha256": digest}


def _save_lexicons(folder: Path, chunks: list[Chunk], sentence_texts: list[str]) -> None:
    from .retrieval import build_lexicons  # retrieval imports this module

    for name, lexicon in build_lexicons(chunks, sentence_texts).items():
        lexicon.save(folder / name)


def _faiss_index(vectors: np.ndarray):
    import faiss

    dim = vectors.shape[1]
    if len(vectors) >= HNSW_THRESHOLD:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def _previous_vectors(folder: Path, model: str) -> dict[str, np.ndarray]:
    """Vectors of the current index keyed by embedding-text hash, for reuse; {} if unusable."""
    try:
        data = load_index(folder, verify=True, lexicon=False)  # a damaged lexicon does not spoil the vectors
    except Exception as e:  # a broken old index is simply not reused
        if not isinstance(e, IndexNotFoundError):
            logger.info("not reusing vectors from %s: %s", folder, e)
        return {}
    if data.manifest["model"]["name"] != model:
        return {}
    # The keys stored at build time name what was embedded then; deriving them again from today's
    # code would pair old vectors with new texts whenever the embedding text changes.
    cache = {}
    chunk_vectors = data.vectors.reconstruct_n(0, data.vectors.ntotal)
    records = _json_lines(folder / data.manifest["files"]["chunks"]["name"])
    sentence_keys, plain_keys = [], []
    for line, vec in zip(records, chunk_vectors):
        record = json.loads(line)
        if "key" not in record:
            return {}
        cache[record["key"]] = vec
        sentence_keys += record["sentence_keys"]
        plain_keys += record.get("plain_keys", [])
    cache.update(zip(sentence_keys, data.sentence_vectors))
    if data.plain_vectors is not None:
        cache.update(zip(plain_keys, data.plain_vectors))
    return cache


def _previous_extractions(folder: Path) -> dict[str, Document]:
    """The PDF/HTML/DOCX documents of the current index by file_sha256, to skip parsing them again; {} if unusable."""
    manifest = _read_manifest_quietly(folder)
    if not manifest or manifest.get("extractor") != EXTRACTOR_VERSION:
        return {}
    entry = manifest["files"].get("documents") or {}
    path = folder / str(entry.get("name"))
    try:
        if _sha256_file(path) != entry.get("sha256"):
            return {}
        documents = [_document(json.loads(line)) for line in _json_lines(path)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.info("not reusing extracted text from %s: %s", folder, e)
        return {}
    return {d.file_sha256: d for d in documents if d.file_sha256 and Path(d.source).suffix.lower() not in TEXT_SUFFIXES}


def _document(row: dict) -> Document:
    return Document(row["source"], row["title"], row["text"], row["sha256"],
                    tuple(tuple(h) for h in row.get("headings", ())), tuple(row.get("pages", ())),
                    row.get("file_sha256", ""))


def _tokens_of(model: str):
    """The model's token counter, or None (the chunker's own estimate) for an embedder with no local
    tokenizer, such as a test's stand-in."""
    try:
        return token_counter(model)
    except Exception:  # ModelError, or tokenizers' bare Exception for a folder without tokenizer.json
        return None


def build_index(
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    model: str = DEFAULT_MODEL,
    settings: ChunkerSettings = ChunkerSettings(),
    embedder: Embedder | None = None,
    query_encoder: bool = True,
    progress: bool = False,
) -> BuildReport:
    """Chunk and embed the corpus, then swap the new index in atomically. Returns counts and timings.

    `embedder` replaces the model (tests of indexing logic); `query_encoder=False` skips the ONNX export.
    """
    started = time.perf_counter()
    folder = Path(index_dir)
    corpus = load_corpus(corpus_dir, cache=_previous_extractions(folder))
    reference = embedder or SentenceTransformerEmbedder(model)
    count_tokens = token_counter(reference.name) if embedder is None else _tokens_of(reference.name)

    chunks = [c for doc in corpus.documents for c in chunk_document(doc, settings, count_tokens)]
    if not chunks:
        raise CorpusError(f"the documents in {corpus_dir} hold no text to index besides their titles")

    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        return _write_index(folder, Path(corpus_dir), corpus, chunks, reference, settings, query_encoder, progress,
                            started)


def _write_index(
    folder: Path, corpus_dir: Path, corpus: Corpus, chunks: list[Chunk], reference: Embedder,
    settings: ChunkerSettings, query_encoder: bool, progress: bool, started: float,
) -> BuildReport:
    """Embed what the previous index lacks, write the data files, then swap the manifest in (lock held)."""
    name, docs = reference.name, {d.source: d for d in corpus.documents}
    chunk_texts = [embedding_text(c.title, c.section, c.text) for c in chunks]
    spans = unit_spans(chunks, docs)
    sentence_texts = sentence_embedding_texts(chunks, docs, spans)
    owners = [c for c in chunks for _ in c.sentences]
    plain_texts = [docs[c.source].text[start:end] for c, (start, end) in zip(owners, spans)]
    cache = _previous_vectors(folder, name)
    all_texts = chunk_texts + sentence_texts + plain_texts
    keys = [_text_key(t) for t in all_texts]
    missing = sorted({k: t for k, t in zip(keys, all_texts) if k not in cache}.items())
    if missing:
        kwargs = {"progress": progress} if isinstance(reference, SentenceTransformerEmbedder) else {}
        fresh = reference.embed([t for _, t in missing], **kwargs)
        cache.update(zip((k for k, _ in missing), fresh))
    dim = reference.dim
    matrix = np.stack([cache[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, dim), np.float32)
    n, m = len(chunks), len(chunks) + len(sentence_texts)
    chunk_vectors, sentence_vectors, plain_vectors = matrix[:n], matrix[n:m], matrix[m:]
    chunk_keys, sentence_keys, plain_keys = keys[:n], keys[n:m], keys[m:]
    bounds = np.cumsum([0] + [len(c.sentences) for c in chunks]).tolist()

    index = _faiss_index(np.ascontiguousarray(chunk_vectors))
    index_type = "hnsw" if len(chunks) >= HNSW_THRESHOLD else "flat"

    import faiss

    files = {
        "documents": _put(folder, "documents", ".jsonl", _write_jsonl(
            [{"source": d.source, "title": d.title, "sha256": d.sha256, "file_sha256": d.file_sha256,
              "headings": [list(h) for h in d.headings], "pages": list(d.pages), "text": d.text}
             for d in corpus.documents]
        )),
        "chunks": _put(folder, "chunks", ".jsonl", _write_jsonl(
            [{"id": c.id, "source": c.source, "title": c.title, "section": c.section, "start": c.start,
              "end": c.end, "text": c.text, "sentences": [list(s) for s in c.sentences],
              "key": chunk_keys[i], "sentence_keys": sentence_keys[bounds[i] : bounds[i + 1]],
              "plain_keys": plain_keys[bounds[i] : bounds[i + 1]]}
             for i, c in enumerate(chunks)]
        )),
        "vectors": _put(folder, "vectors", ".faiss", lambda p: faiss.write_index(index, str(p))),
        "sentences": _put(folder, "sentences", ".npy", lambda p: _save_npy(p, sentence_vectors)),
        "plain": _put(folder, "plain", ".npy", lambda p: _save_npy(p, plain_vectors)),
        "lexicon": _put_dir(folder, "lexicon", lambda p: _save_lexicons(p, chunks, sentence_texts)),
    }
    old = _read_manifest_quietly(folder)
    if query_encoder and isinstance(reference, SentenceTransformerEmbedder):
        files["encoder"] = _encoder(folder, reference, old)

    manifest = {
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "dim": dim},
        "chunker": settings.as_dict(),
        "extractor": EXTRACTOR_VERSION,
        "index_type": index_type,
        "corpus_dir": str(corpus_dir.resolve()),
        "documents": {d.source: {"sha256": d.sha256, "file_sha256": d.file_sha256, "title": d.title,
                                 "chars": len(d.text), "pages": len(d.pages)} for d in corpus.documents},
        "skipped": {source: file_hash(corpus_dir / source) or "unreadable" for source, _ in corpus.skipped},
        "counts": {"documents": len(docs), "chunks": len(chunks), "sentences": len(sentence_texts)},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 2),
        "files": files,
    }
    _atomic_write(folder / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2, ensure_ascii=False)))
    _collect_garbage(folder, keep=[manifest, old or {}])
    return BuildReport(
        documents=len(docs), chunks=len(chunks), sentences=len(sentence_texts),
        embedded=len(missing), reused=len(set(keys)) - len(missing), skipped=corpus.skipped,
        index_type=index_type, seconds=time.perf_counter() - started,
    )


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
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


def _save_npy(path: Path, array: np.ndarray) -> None:
    # np.save(path) would append ".npy" to the temporary name; an open file keeps the name.
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def _read_manifest_quietly(folder: Path) -> dict | None:
    try:
        return read_manifest(folder)
    except Exception:
        return None


def _encoder(folder: Path, reference: SentenceTransformerEmbedder, old: dict | None) -> dict:
    """Reuse the previous export of the same model, or export it again."""
    if old and old["model"]["name"] == reference.name and "encoder" in old["files"]:
        entry = old["files"]["encoder"]
        path = folder / entry["name"]
        if path.is_dir() and _sha256_tree(path) == entry["sha256"]:
            return entry
    return _put_dir(folder, "encoder", lambda tmp: export_onnx(reference, tmp))


def _collect_garbage(folder: Path, keep: list[dict]) -> None:
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


def _json_lines(path: Path) -> list[str]:
    # Split on "\n" only: str.splitlines() would also split at U+2028 or U+0085 inside a JSON string.
    return [line for line in path.read_text("utf-8").split("\n") if line.strip()]


def load_index(index_dir: str | Path = "index", verify: bool = True, lexicon: bool = True) -> IndexData:
    """Load and verify an index: every file's hash is checked before it is parsed.

    lexicon=False leaves out the saved BM25 indexes (lexicon_dir is then None).
    """
    import faiss

    folder = Path(index_dir)
    manifest = read_manifest(folder)
    fix = f"run: python -m qa build --index {folder}"
    try:
        files = manifest["files"]
        paths = {k: folder / files[k]["name"] for k in ("documents", "chunks", "vectors", "sentences")}
        if "plain" in files:  # an index without plain vectors is stale (staleness), not corrupt
            paths["plain"] = folder / files["plain"]["name"]
        for key, path in paths.items():
            if not path.is_file():
                raise IndexCorruptError(f"{path} is missing — {fix}")
            if verify and _sha256_file(path) != files[key]["sha256"]:
                raise IndexCorruptError(f"{path} does not match its manifest (damaged?) — {fix}")
        documents = {}
        for line in _json_lines(paths["documents"]):
            document = _document(json.loads(line))
            documents[document.source] = document
        chunks, rows = [], [0]
        for line in _json_lines(paths["chunks"]):
            r = json.loads(line)
            chunks.append(Chunk(r["id"], r["source"], r["title"], r["section"], r["start"], r["end"], r["text"],
                                tuple((s, e) for s, e in r["sentences"])))
            rows.append(rows[-1] + len(r["sentences"]))
        vectors = faiss.read_index(str(paths["vectors"]))
        sentence_vectors = np.load(paths["sentences"], allow_pickle=False)
        plain_vectors = np.load(paths["plain"], allow_pickle=False) if "plain" in paths else None
        counts = manifest["counts"]
        consistent = (
            (counts.get("documents"), counts.get("chunks"), counts.get("sentences"))
            == (len(documents), len(chunks), rows[-1])
            and vectors.ntotal == len(chunks) and vectors.d == manifest["model"]["dim"]
            and sentence_vectors.shape == (rows[-1], manifest["model"]["dim"])
            and (plain_vectors is None or plain_vectors.shape == sentence_vectors.shape)
        )
        if not consistent:
            raise IndexCorruptError(f"index files in {folder}/ disagree with each other or the manifest — {fix}")
        if verify and any(documents[c.source].text[c.start : c.end] != c.text for c in chunks):
            raise IndexCorruptError(f"chunk offsets in {folder}/ do not match the documents — {fix}")
    except IndexCorruptError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise IndexCorruptError(f"index in {folder}/ is unreadable ({type(e).__name__}: {e}) — {fix}") from e
    if hasattr(vectors, "hnsw"):
        vectors.hnsw.efSearch = HNSW_EF_SEARCH

    encoder_dir = None
    entry = files.get("encoder")
    entry = entry if isinstance(entry, dict) and isinstance(entry.get("name"), str) else None
    if entry and (folder / entry["name"]).is_dir():
        encoder_dir = folder / entry["name"]
    lexicon_dir = None
    entry = files.get("lexicon")
    if lexicon and isinstance(entry, dict) and isinstance(entry.get("name"), str):
        lexicon_dir = folder / entry["name"]
        if not lexicon_dir.is_dir():
            raise IndexCorruptError(f"{lexicon_dir} is missing — {fix}")
        if verify and _sha256_tree(lexicon_dir) != entry.get("sha256"):
            raise IndexCorruptError(f"{lexicon_dir} does not match its manifest (damaged?) — {fix}")
    return IndexData(folder, manifest, documents, chunks, vectors, sentence_vectors, np.array(rows), encoder_dir,
                     lexicon_dir, plain_vectors)
