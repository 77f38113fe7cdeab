"""Every vector of an index, each text read by the model once: a window of chunks at a time, streamed to disk.

How each sentence row's vector is made is `index.SENTENCE_DESIGN` (qa/build.py says which designs
there are). Chunks are embedded and written a window at a time (`WINDOW`), the vectors streamed to
their files (the FAISS index, `sentences.npy`, `plain.npy`), so what a build holds does not grow
with the corpus's vectors (bench/build.py). Within a window the model reads length-sorted calls of
`STEP` texts, so progress is reported every few seconds.

Rebuilding reuses the vectors of every chunk and row whose embedding text is unchanged (keyed by
content hash, as the previous index's chunk records stored it), so editing one document re-embeds
only it; a vector made earlier in the same build (a repeated text) is read back from where it was
written, not embedded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .chunking import Chunk, embedding_text
from .corpus import Document
from .embedding import Embedder
from .errors import IndexNotFoundError
from .index import HNSW_EF_SEARCH, _json_lines, load_index
from .store import put, put_file, temporary_file

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

Progress = Callable[[int, int], None]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Rows:
    """What each chunk needs from the model: its text, its key, its sentence rows' keys and spans."""

    texts: list[str]  # the chunk embedding texts
    keys: list[str]  # chunk keys (hash of the embedding text)
    row_keys: list[str]  # one per sentence row
    row_spans: list[tuple[int, int]]  # late: the row's span in its chunk's embedding text
    row_texts: list[str]  # placed: the row's own embedding text
    plain_texts: list[str]  # the row's unit alone (designs with plain vectors)
    plain_keys: list[str]
    bounds: list[int]  # first row of each chunk (n_chunks + 1)


def rows_for(design: str, chunks: list[Chunk], docs: dict[str, Document], units: list[tuple[int, int]],
             sentence_texts: list[str]) -> Rows:
    """The texts and keys of every chunk and sentence row, as `design` embeds them."""
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
    return Rows(texts, [_text_key(t) for t in texts], row_keys, spans, sentence_texts, plain,
                [_text_key(t) for t in plain], bounds)


@dataclass(frozen=True, slots=True)
class Written:
    """What embed_and_write wrote: the vector files' manifest entries, the index type, texts embedded and reused."""

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


def embed_and_write(folder: Path, design: str, rows: Rows, embedder: Embedder,
                    cache: dict[str, np.ndarray], progress: Progress | None) -> Written:
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
    temps = {stem: temporary_file(folder, stem) for stem in stems}
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

        files = {stem: put_file(folder, stem, ".npy", temps[stem]) for stem in stems}
        files["vectors"] = put(folder, "vectors", ".faiss", lambda p: faiss.write_index(index, str(p)))
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return Written(files, "hnsw" if n >= HNSW_THRESHOLD else "flat", total, inputs - total)


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


def previous_vectors(folder: Path, model: str, design: str) -> dict[str, np.ndarray]:
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
