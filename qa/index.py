"""Load, verify and hold an index folder (qa/build.py writes it, through qa/vectors.py and qa/store.py).

Layout of `index/` (no pickle anywhere):
- `manifest.json`: format version, model name and dimension, chunker settings, how the sentence
  vectors were made, per-document content hashes, counts, build time, and the name and sha256 of
  every data file below. It is the one pointer to the current index.
- `documents.<h>.jsonl`, `chunks.<h>.jsonl`: document texts (for PDF, HTML and DOCX the
  extracted text, with headings and page starts) and chunk records, each with the offsets of its
  sentences and of their quote units (`chunking.unit_spans`, worked out once, at build).
- `vectors.<h>.faiss`: chunk vectors (exact inner product, or HNSW when large).
- `sentences.<h>.npy`: one vector per sentence row (its quote unit), in chunk order, made as the
  manifest's `sentence_vectors` says (`SENTENCE_DESIGN`; docs/EMBEDDING.md compares the designs);
  `plain.<h>.npy`, for designs that have it: the same units embedded alone, without their title.
- `lexicon.<h>/`: the BM25 indexes; `encoder.<h>/`: the query encoder exported to ONNX (optional).

Loading checks every file's sha256 against the manifest before parsing it, then maps the vector
arrays read-only (`mmap_mode="r"`): pages are read on use and shared by every process serving the
same index. Data files are never written in place (a build writes new names), so a mapping never
sees a file change under it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chunking import CHUNKER_VERSION, Chunk, ChunkerSettings
from .corpus import TEXT_SUFFIXES, Document, content_hash, corpus_files, file_hash, sha256_file
from .errors import IndexCorruptError, IndexNotFoundError, StaleIndexError
from .extract import EXTRACTOR_VERSION

# 2: the quote units are stored, the sentence vectors' design is named, the ONNX encoder is the model cache's.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = ".build.lock"  # held while a build writes the folder; never deleted (that would race)
# At 100k chunks (bench/results.md): efSearch 256 finds 0.98 of the exact top 10 (with efConstruction 200).
HNSW_EF_SEARCH = 256
# How a sentence row's vector is made (the manifest's "sentence_vectors"; docs/EMBEDDING.md measures each):
#   "late": its tokens' mean in its chunk's one pass over "title › section", then the chunk text
#   "late+plain": that, and the unit embedded alone (plain.npy); the better of the two counts
#   "placed": the unit embedded on its own with its title and section
#   "placed+plain": that, and the unit embedded alone; the better of the two counts (format 1's)
# late+plain reads 2.3x the corpus's word pieces, placed+plain 3.5x; late+plain keeps qa eval's test halves
# within one item but fails tests/test_conversation.py's ellipsis follow-up on look-alike profiles.
SENTENCE_DESIGNS = ("late", "late+plain", "placed", "placed+plain")
SENTENCE_DESIGN = "placed+plain"
# What load and staleness read from a manifest: (key, type) at the top level and below "model".
_MANIFEST_KEYS = {"model": dict, "chunker": dict, "documents": dict, "counts": dict, "files": dict}


@dataclass(slots=True)
class IndexData:
    """A loaded, verified index."""

    folder: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: object  # faiss.Index
    sentence_vectors: np.ndarray  # (n_sentences, dim), rows in chunk order (read-only, memory-mapped)
    sentence_rows: np.ndarray  # first sentence row of each chunk (n_chunks + 1,)
    encoder_dir: Path | None = None
    lexicon_dir: Path | None = None  # the BM25 indexes, saved at build (None: an older index; built at load)
    plain_vectors: np.ndarray | None = None  # the same rows embedded alone, for designs that have them
    unit_spans: list[tuple[int, int]] = field(default_factory=list)  # each row's quote unit in its document
    sentence_chunk: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        counts = np.diff(self.sentence_rows)
        self.sentence_chunk = np.repeat(np.arange(len(self.chunks)), counts)

    def similarity(self, rows: np.ndarray | int, vector: np.ndarray) -> np.ndarray:
        """Cosine of each sentence row and a query vector (with plain vectors: the better of the
        sentence read in its place and read alone)."""
        placed = self.sentence_vectors[rows] @ vector
        return placed if self.plain_vectors is None else np.maximum(placed, self.plain_vectors[rows] @ vector)


def sha256_tree(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + sha256_file(path).encode())
    return h.hexdigest()


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
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        older = isinstance(version, int) and version < FORMAT_VERSION
        raise StaleIndexError(
            f"{folder}/ was written by {'an older' if older else 'another'} version of qa (index format {version}; "
            f"this version reads format {FORMAT_VERSION}) — {fix}")
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
    design = manifest.get("sentence_vectors")
    if design != SENTENCE_DESIGN:
        reasons.append(f"its sentence vectors were made as {design!r}; this version makes them as {SENTENCE_DESIGN!r}")
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


def _document(row: dict) -> Document:
    return Document(row["source"], row["title"], row["text"], row["sha256"],
                    tuple(tuple(h) for h in row.get("headings", ())), tuple(row.get("pages", ())),
                    row.get("file_sha256", ""))


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
        if "plain" in files:  # only the designs that have them (SENTENCE_DESIGNS)
            paths["plain"] = folder / files["plain"]["name"]
        for key, path in paths.items():
            if not path.is_file():
                raise IndexCorruptError(f"{path} is missing — {fix}")
            if verify and sha256_file(path) != files[key]["sha256"]:
                raise IndexCorruptError(f"{path} does not match its manifest (damaged?) — {fix}")
        documents = {}
        for line in _json_lines(paths["documents"]):
            document = _document(json.loads(line))
            documents[document.source] = document
        chunks, rows, units = [], [0], []
        for line in _json_lines(paths["chunks"]):
            r = json.loads(line)
            chunks.append(Chunk(r["id"], r["source"], r["title"], r["section"], r["start"], r["end"], r["text"],
                                tuple((s, e) for s, e in r["sentences"])))
            rows.append(rows[-1] + len(r["sentences"]))
            if len(r["units"]) != len(r["sentences"]):
                raise ValueError(f"chunk {r['id']} has {len(r['units'])} quote units for {len(r['sentences'])} sentences")
            units += [(int(s), int(e)) for s, e in r["units"]]
        vectors = faiss.read_index(str(paths["vectors"]))
        # Mapped, not read: a served index shares these pages between its processes.
        sentence_vectors = np.load(paths["sentences"], mmap_mode="r", allow_pickle=False)
        plain_vectors = np.load(paths["plain"], mmap_mode="r", allow_pickle=False) if "plain" in paths else None
        counts = manifest["counts"]
        consistent = (
            (counts.get("documents"), counts.get("chunks"), counts.get("sentences"))
            == (len(documents), len(chunks), rows[-1])
            and vectors.ntotal == len(chunks) and vectors.d == manifest["model"]["dim"]
            and sentence_vectors.shape == (rows[-1], manifest["model"]["dim"])
            and sentence_vectors.dtype == np.float32
            and (plain_vectors is None or (plain_vectors.shape, plain_vectors.dtype) == (sentence_vectors.shape, np.float32))
        )
        if not consistent:
            raise IndexCorruptError(f"index files in {folder}/ disagree with each other or the manifest — {fix}")
        if verify and any(documents[c.source].text[c.start : c.end] != c.text for c in chunks):
            raise IndexCorruptError(f"chunk offsets in {folder}/ do not match the documents — {fix}")
        owners = [c for c in chunks for _ in c.sentences]
        if verify and any(not 0 <= s < e <= len(documents[c.source].text) for c, (s, e) in zip(owners, units)):
            raise IndexCorruptError(f"quote units in {folder}/ fall outside their documents — {fix}")
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
        if verify and sha256_tree(lexicon_dir) != entry.get("sha256"):
            raise IndexCorruptError(f"{lexicon_dir} does not match its manifest (damaged?) — {fix}")
    return IndexData(folder, manifest, documents, chunks, vectors, sentence_vectors, np.array(rows), encoder_dir,
                     lexicon_dir, plain_vectors, units)
