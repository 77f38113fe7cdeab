"""Build an index folder (qa/index.py loads it): chunk, embed, write the data files, swap the manifest in.

The model runs as ONNX (onnxruntime + tokenizers, both cores, length-sorted batches): the export is
made once per model into the model cache (`embedding.onnx_encoder`), so only the first build on a
machine imports torch. How each sentence row's vector is made is `index.SENTENCE_DESIGN`: every chunk
is read with its "title › section"; then, as before, every quote unit is read again with its title
and section and once more alone ("placed+plain", 3.5x the corpus's word pieces), or its vector is
pooled from its chunk's own pass ("late chunking") and the unit is read alone ("late+plain", 2.3x).
docs/EMBEDDING.md measures both: late+plain keeps every test half of `qa eval` within one item but
loses one behaviour test (an ellipsis follow-up on look-alike profiles), so placed+plain stays the
default. Chunks are embedded and written a window at a time (`WINDOW`), the vectors streamed to
their files, so what a build holds does not grow with the corpus's vectors; the texts, chunk
records, BM25 lexicons and the FAISS index do (bench/build.py).

Data files are named by content hash and written before the manifest, which is replaced
atomically (`os.replace`). A crash mid-build leaves the old manifest pointing at old, complete
files; a reader never sees half an index. Files of the previous generation are kept so a reader
that has just read the old manifest can still open them; older ones are removed.

Rebuilding reuses the vectors of every chunk whose embedding text is unchanged (keyed by content
hash), so editing one document re-embeds only it; and it reuses the extracted text of every PDF,
HTML and DOCX file whose bytes are unchanged (keyed by the file's sha256 and the extractor's
version), so an unchanged PDF is not parsed again.

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
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import index as _index
from .chunking import Chunk, ChunkerSettings, chunk_document, embedding_text, sentence_embedding_texts, unit_spans
from .corpus import TEXT_SUFFIXES, Corpus, Document, file_hash, load_corpus
from .embedding import (
    DEFAULT_MODEL, Embedder, OnnxEmbedder, SentenceTransformerEmbedder, export_record, token_counter,
)
from .errors import CorpusError, IndexNotFoundError, ModelError
from .extract import EXTRACTOR_VERSION
from .index import (
    FORMAT_VERSION, HNSW_EF_SEARCH, LOCK, MANIFEST, _document, _json_lines, load_index, read_manifest, sha256_file,
    sha256_tree,
)
from .retrieval import build_lexicons

logger = logging.getLogger(__name__)

# Exact search of the top 50 grows with the chunk count (about 1.5 ms at 10k, 8.5 ms at 50k, 14 ms at
# 100k here); HNSW answers in ~1 ms at 100k, finding 0.98 of the exact top 10.
HNSW_THRESHOLD = 10_000
# At 100k chunks (bench/results.md): efConstruction 80 / efSearch 128 found 0.91 of the exact top 10;
# 200 / 256 finds 0.98 for +0.4 ms a search and +35 s of build (next to ~90 min of embedding).
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 200
# Chunks embedded and written per step: their vectors are all a build holds at once (~12 MB at 768-d).
WINDOW = 1024
# Texts per call of the model: progress is reported after each (a few seconds of mpnet on 2 cores).
STEP = 64
# The only names a build writes; nothing else in the folder is ever deleted.
_DATA_FILE = re.compile(
    r"(?:documents|chunks|vectors|sentences|plain)\.[0-9a-f]{12}\.(?:jsonl|faiss|npy)|(?:encoder|lexicon)\.[0-9a-f]{12}"
)
_TEMP_FILE = re.compile(r"\.(?:documents|chunks|vectors|sentences|plain|encoder|lexicon|manifest\.json)\..*\.tmp")

Progress = Callable[[int, int], None]


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


def build_index(
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    model: str = DEFAULT_MODEL,
    settings: ChunkerSettings = ChunkerSettings(),
    embedder: Embedder | None = None,
    query_encoder: bool = True,
    progress: Progress | bool = False,
) -> BuildReport:
    """Chunk and embed the corpus, then swap the new index in atomically. Returns counts and timings.

    `embedder` replaces the model (tests of indexing logic); `query_encoder=False` leaves the ONNX query
    encoder out of the index (the bot then encodes questions with sentence-transformers). `progress`:
    called with (texts embedded, texts to embed) as the build goes, or True for a bar with texts/s and
    the time left on stderr.
    """
    started = time.perf_counter()
    folder = Path(index_dir)
    corpus = load_corpus(corpus_dir, cache=_previous_extractions(folder))
    own = embedder is None
    embedder = embedder or _model_embedder(model)
    count_tokens = token_counter(embedder.name) if own else _tokens_of(embedder.name)

    chunks = [c for doc in corpus.documents for c in chunk_document(doc, settings, count_tokens)]
    if not chunks:
        raise CorpusError(f"the documents in {corpus_dir} hold no text to index besides their titles")

    export = embedder.folder if own and query_encoder and isinstance(embedder, OnnxEmbedder) else None
    folder.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder):
        return _write_index(folder, Path(corpus_dir), corpus, chunks, embedder, settings, export,
                            _reporter(progress), started)


def _model_embedder(model: str) -> Embedder:
    """The model as ONNX on every core (exported into the model cache on first use), else sentence-transformers."""
    try:
        return OnnxEmbedder.for_model(model, threads=os.cpu_count())
    except ModelError:
        raise
    except Exception as e:  # onnxruntime or the exporter missing or failing: the reference still builds
        logger.warning("cannot embed with ONNX (%s: %s); building with sentence-transformers", type(e).__name__, e)
        return SentenceTransformerEmbedder(model)


def _tokens_of(model: str):
    """The model's token counter, or None (the chunker's own estimate) for an embedder with no local
    tokenizer, such as a test's stand-in."""
    try:
        return token_counter(model)
    except Exception:  # ModelError, or tokenizers' bare Exception for a folder without tokenizer.json
        return None


def _reporter(progress: Progress | bool) -> Progress | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm import tqdm

    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="text", desc="embedding", file=sys.stderr, smoothing=0.05)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Rows:
    """What each chunk needs from the model: its text, its key, its sentence rows' keys and spans."""

    texts: list[str]  # the chunk embedding texts
    keys: list[str]  # chunk keys (hash of the embedding text)
    row_keys: list[str]  # one per sentence row
    row_spans: list[tuple[int, int]]  # late: the row's span in its chunk's embedding text
    row_texts: list[str]  # placed: the row's own embedding text
    plain_texts: list[str]  # the row's unit alone (designs with plain vectors)
    plain_keys: list[str]
    bounds: list[int]  # first row of each chunk (n_chunks + 1)


def _rows(design: str, chunks: list[Chunk], docs: dict[str, Document], units: list[tuple[int, int]],
          sentence_texts: list[str]) -> _Rows:
    texts = [embedding_text(c.title, c.section, c.text) for c in chunks]
    bounds = np.cumsum([0] + [len(c.sentences) for c in chunks]).tolist()
    owners = [i for i, c in enumerate(chunks) for _ in c.sentences]
    spans = []
    if design.startswith("late"):
        for i, (s, e) in zip(owners, units):
            c = chunks[i]
            offset = len(texts[i]) - len(c.text)  # the place line before the chunk's text
            # a unit that takes in the last sentence of the chunk before is pooled over its part in this one
            spans.append((offset + max(s, c.start) - c.start, offset + min(e, c.end) - c.start))
        row_keys = [_text_key(f"late\0{texts[i]}\0{a}:{b}") for i, (a, b) in zip(owners, spans)]
    else:
        row_keys = [_text_key(t) for t in sentence_texts]
    plain = [docs[chunks[i].source].text[s:e] for i, (s, e) in zip(owners, units)] if design.endswith("plain") else []
    return _Rows(texts, [_text_key(t) for t in texts], row_keys, spans, sentence_texts, plain,
                 [_text_key(t) for t in plain], bounds)


def _write_index(
    folder: Path, corpus_dir: Path, corpus: Corpus, chunks: list[Chunk], embedder: Embedder,
    settings: ChunkerSettings, export: Path | None, progress: Progress | None, started: float,
) -> BuildReport:
    """Embed what the previous index lacks, write the data files, then swap the manifest in (lock held)."""
    design = _index.SENTENCE_DESIGN
    name, docs = embedder.name, {d.source: d for d in corpus.documents}
    units = unit_spans(chunks, docs)
    sentence_texts = sentence_embedding_texts(chunks, docs, units)
    rows = _rows(design, chunks, docs, units, sentence_texts)
    cache = _previous_vectors(folder, name, design)
    vectors = _embed_and_write(folder, design, rows, embedder, cache, progress)

    files = {
        "documents": _put(folder, "documents", ".jsonl", _write_jsonl(
            {"source": d.source, "title": d.title, "sha256": d.sha256, "file_sha256": d.file_sha256,
             "headings": [list(h) for h in d.headings], "pages": list(d.pages), "text": d.text}
            for d in corpus.documents
        )),
        "chunks": _put(folder, "chunks", ".jsonl", _write_jsonl(
            {"id": c.id, "source": c.source, "title": c.title, "section": c.section, "start": c.start,
             "end": c.end, "text": c.text, "sentences": [list(s) for s in c.sentences],
             "units": [list(u) for u in units[rows.bounds[i] : rows.bounds[i + 1]]],
             "key": rows.keys[i], "sentence_keys": rows.row_keys[rows.bounds[i] : rows.bounds[i + 1]],
             **({"plain_keys": rows.plain_keys[rows.bounds[i] : rows.bounds[i + 1]]} if rows.plain_keys else {})}
            for i, c in enumerate(chunks)
        )),
        **vectors.files,
        "lexicon": _put_dir(folder, "lexicon", lambda p: _save_lexicons(p, chunks, sentence_texts)),
    }
    old = _read_manifest_quietly(folder)
    if export is not None:
        files["encoder"] = _link_encoder(folder, export)

    manifest = {
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "dim": embedder.dim},
        "sentence_vectors": design,
        "chunker": settings.as_dict(),
        "extractor": EXTRACTOR_VERSION,
        "index_type": vectors.index_type,
        "corpus_dir": str(corpus_dir.resolve()),
        "documents": {d.source: {"sha256": d.sha256, "file_sha256": d.file_sha256, "title": d.title,
                                 "chars": len(d.text), "pages": len(d.pages)} for d in corpus.documents},
        "skipped": {source: file_hash(corpus_dir / source) or "unreadable" for source, _ in corpus.skipped},
        "counts": {"documents": len(docs), "chunks": len(chunks), "sentences": len(units)},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - started, 2),
        "files": files,
    }
    _atomic_write(folder / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2, ensure_ascii=False)))
    _collect_garbage(folder, keep=[manifest, old or {}])
    return BuildReport(
        documents=len(docs), chunks=len(chunks), sentences=len(units),
        embedded=vectors.embedded, reused=vectors.reused, skipped=corpus.skipped,
        index_type=vectors.index_type, seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, slots=True)
class _Written:
    files: dict  # manifest entries of the vector files
    index_type: str
    embedded: int
    reused: int


class _RowFile:
    """A .npy file of float32 rows, written in order a block at a time; written rows can be read back."""

    def __init__(self, path: Path, rows: int, dim: int):
        self.path, self.rows, self.dim, self.count = path, rows, dim, 0
        self._file = open(path, "wb+")
        np.lib.format.write_array_header_1_0(self._file, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        self._start = self._file.tell()

    def append(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        self.count += len(block)

    def row(self, i: int) -> np.ndarray:
        end = self._file.tell()
        self._file.seek(self._start + i * self.dim * 4)
        data = self._file.read(self.dim * 4)
        self._file.seek(end)
        return np.frombuffer(data, "<f4").copy()

    def close(self) -> None:
        if self.count != self.rows:
            raise RuntimeError(f"{self.path}: {self.count} rows written, {self.rows} expected")
        self._file.close()


def _embed_and_write(folder: Path, design: str, rows: _Rows, embedder: Embedder,
                     cache: dict[str, np.ndarray], progress: Progress | None) -> _Written:
    """Every vector of the index, a window of chunks at a time: from the previous index, from an earlier
    window of this build, or from the model; streamed into the FAISS index and the row files."""
    late = design.startswith("late")
    n, dim = len(rows.texts), embedder.dim
    # The texts the model must read, each once: {key: text}; for the late design a chunk's text
    # stands for its rows too.
    todo: dict[str, str] = {}
    for i, (key, text) in enumerate(zip(rows.keys, rows.texts)):
        row_keys = rows.row_keys[rows.bounds[i] : rows.bounds[i + 1]]
        if key not in cache or (late and any(k not in cache for k in row_keys)):
            todo.setdefault(key, text)
    if not late:
        todo.update((k, t) for k, t in zip(rows.row_keys, rows.row_texts) if k not in cache)
    todo.update((k, t) for k, t in zip(rows.plain_keys, rows.plain_texts) if k not in cache)
    inputs = len(set(rows.keys).union(() if late else rows.row_keys, rows.plain_keys))
    total, done = len(todo), 0
    progress = progress if total else None
    if progress:
        progress(0, total)

    index = _faiss_index(dim, n)
    stems = ["sentences"] + (["plain"] if rows.plain_keys else [])
    temps = {stem: _temporary_file(folder, stem) for stem in stems}
    try:
        out = {stem: _RowFile(temps[stem], len(rows.row_keys), dim) for stem in stems}
        # Where a vector made or reused earlier in this build is: a chunk's row in the index, or a row of a file.
        chunk_at: dict[str, int] = {}
        row_at: dict[str, tuple[str, int]] = {}

        def known(key: str, stem: str | None = None) -> np.ndarray | None:
            if key in fresh:
                return fresh[key]
            if key in cache:
                return cache[key]
            if stem is None:
                return index.reconstruct(chunk_at[key]) if key in chunk_at else None
            where = row_at.get(key)
            return out[where[0]].row(where[1]) if where else None

        for w in range(0, n, WINDOW):
            last = min(n, w + WINDOW)
            lo, hi = rows.bounds[w], rows.bounds[last]
            fresh: dict[str, np.ndarray] = {}
            # this window's share of the model's work, longest first within each call's length band
            wanted = dict.fromkeys(k for k in rows.keys[w:last] if k in todo and k not in chunk_at)
            if not late:
                wanted.update(dict.fromkeys(k for k in rows.row_keys[lo:hi] if k in todo and k not in row_at))
            wanted.update(dict.fromkeys(k for k in rows.plain_keys[lo:hi] if k in todo and k not in row_at))
            order = sorted(wanted, key=lambda k: len(todo[k]))
            spans = {}
            if late:
                for i in range(w, last):
                    spans.setdefault(rows.keys[i], rows.row_spans[rows.bounds[i] : rows.bounds[i + 1]])
            for s in range(0, len(order), STEP):
                keys = order[s : s + STEP]
                chunk_keys = [k for k in keys if k in spans]
                other = [k for k in keys if k not in spans]
                if chunk_keys:
                    vecs, pooled = _embed_spans(embedder, [todo[k] for k in chunk_keys], [spans[k] for k in chunk_keys])
                    for i, k in enumerate(chunk_keys):
                        fresh[k] = vecs[i]
                        text = todo[k]
                        for (a, b), v in zip(spans[k], pooled[i]):
                            fresh[_text_key(f"late\0{text}\0{a}:{b}")] = v
                if other:
                    fresh.update(zip(other, _embed(embedder, [todo[k] for k in other])))
                done += len(keys)
                if progress:
                    progress(done, total)
            block = np.stack([known(k) for k in rows.keys[w:last]]).astype(np.float32)
            index.add(block)
            for i, k in enumerate(rows.keys[w:last], w):
                chunk_at.setdefault(k, i)
            for stem, keys in (("sentences", rows.row_keys), ("plain", rows.plain_keys)):
                if stem in out:
                    out[stem].append(np.stack([known(k, stem) for k in keys[lo:hi]]))
                    for r, k in enumerate(keys[lo:hi], lo):
                        row_at.setdefault(k, (stem, r))
        for f in out.values():
            f.close()
        import faiss

        files = {stem: _put_file(folder, stem, ".npy", temps[stem]) for stem in stems}
        files["vectors"] = _put(folder, "vectors", ".faiss", lambda p: faiss.write_index(index, str(p)))
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return _Written(files, "hnsw" if n >= HNSW_THRESHOLD else "flat", total, inputs - total)


def _embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return np.asarray(embedder.embed(texts), np.float32).reshape(len(texts), embedder.dim)


def _embed_spans(embedder: Embedder, texts: list[str], spans: list[list[tuple[int, int]]]):
    """(text vectors, row vectors per text); an embedder that cannot pool its tokens (a test's stand-in)
    embeds each span's text on its own instead."""
    if hasattr(embedder, "embed_spans"):
        return embedder.embed_spans(texts, spans)
    pieces = [t[a:b] for t, own in zip(texts, spans) for a, b in own]
    flat = _embed(embedder, pieces)
    bounds = np.cumsum([0] + [len(s) for s in spans])
    return _embed(embedder, texts), [flat[bounds[i] : bounds[i + 1]] for i in range(len(texts))]


def _faiss_index(dim: int, n: int):
    import faiss

    if n >= HNSW_THRESHOLD:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    return index


def _previous_vectors(folder: Path, model: str, design: str) -> dict[str, np.ndarray]:
    """Vectors of the current index keyed by what they were made from, for reuse; {} if unusable."""
    try:
        data = load_index(folder, verify=True, lexicon=False)  # a damaged lexicon does not spoil the vectors
    except Exception as e:  # a broken or older index is simply not reused
        if not isinstance(e, IndexNotFoundError):
            logger.info("not reusing vectors from %s: %s", folder, e)
        return {}
    if data.manifest["model"]["name"] != model or data.manifest.get("sentence_vectors") != design:
        return {}
    # The keys stored at build time name what was embedded then; deriving them again from today's
    # code would pair old vectors with new texts whenever the embedding text changes.
    cache = {}
    chunk_vectors = data.vectors.reconstruct_n(0, data.vectors.ntotal)
    sentence_keys, plain_keys = [], []
    for line, vec in zip(_json_lines(folder / data.manifest["files"]["chunks"]["name"]), chunk_vectors):
        record = json.loads(line)
        cache[record["key"]] = vec
        sentence_keys += record["sentence_keys"]
        plain_keys += record.get("plain_keys", [])
    cache.update(zip(sentence_keys, data.sentence_vectors))  # rows of the mapped file, read when used
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
        if sha256_file(path) != entry.get("sha256"):
            return {}
        documents = [_document(json.loads(line)) for line in _json_lines(path)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.info("not reusing extracted text from %s: %s", folder, e)
        return {}
    return {d.file_sha256: d for d in documents if d.file_sha256 and Path(d.source).suffix.lower() not in TEXT_SUFFIXES}


def _read_manifest_quietly(folder: Path) -> dict | None:
    try:
        return read_manifest(folder)
    except Exception:
        return None


def _save_lexicons(folder: Path, chunks: list[Chunk], sentence_texts: list[str]) -> None:
    for name, lexicon in build_lexicons(chunks, sentence_texts).items():
        lexicon.save(folder / name)


def _link_encoder(folder: Path, export: Path) -> dict:
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
    tmp = _temporary_name(folder, "encoder")
    tmp.mkdir(0o777)  # minus the umask, as for any new folder
    try:
        for name in record["files"]:
            try:
                os.link(export / name, tmp / name)
            except OSError:  # another file system
                shutil.copyfile(export / name, tmp / name)
        if target.exists():  # a damaged copy under this name: a rebuild is how it gets repaired
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entry


# ---- writing files atomically ------------------------------------------------------------------------


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
        write(tmp)
        return _put_file(folder, stem, suffix, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _put_file(folder: Path, stem: str, suffix: str, tmp: Path) -> dict:
    """Rename a written temporary file to its content-hash name (after fsync); its manifest entry."""
    digest = sha256_file(tmp)
    name = f"{stem}.{digest[:12]}{suffix}"
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return {"name": name, "sha256": digest}


def _write_jsonl(rows):
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
        digest = sha256_tree(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        target = folder / f"{stem}.{digest[:12]}"
        if target.is_dir() and sha256_tree(target) == digest:
            shutil.rmtree(tmp)  # the same content is there already
        else:
            if target.exists():  # a damaged copy under this name: a rebuild is how it gets repaired
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"name": target.name, "sha256": digest}


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
