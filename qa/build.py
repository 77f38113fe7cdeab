"""Build an index folder (qa/index.py loads it): chunk, embed, write the data files, swap the manifest in.

The model runs as ONNX (onnxruntime + tokenizers, both cores, length-sorted batches): the export is
made once per model into the model cache (`embedding.onnx_encoder`), so only the first build on a
machine imports torch. How each sentence row's vector is made is `index.SENTENCE_DESIGN`: every chunk
is read with its "title › section"; then, as before, every quote unit is read again with its title
and section and once more alone ("placed+plain", 3.5x the corpus's word pieces), or its vector is
pooled from its chunk's own pass ("late chunking") and the unit is read alone ("late+plain", 2.3x).
docs/EMBEDDING.md measures both: late+plain keeps every test half of `qa eval` within one item but
loses one behaviour test (an ellipsis follow-up on look-alike profiles), so placed+plain stays the
default.

This module runs a build and writes what it is made of (documents, chunks, lexicons, the manifest);
qa/vectors.py makes and streams the vectors a window at a time, reusing those of unchanged text;
qa/store.py writes the files so that a crash mid-build leaves the old index whole. Rebuilding also
reuses the extracted text of every PDF, HTML and DOCX file whose bytes are unchanged (keyed by the
file's sha256 and the extractor's version), so an unchanged PDF is not parsed again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import index as _index
from .chunking import Chunk, ChunkerSettings, chunk_document, sentence_embedding_texts, unit_spans
from .corpus import TEXT_SUFFIXES, Corpus, Document, file_hash, load_corpus
from .embedding import Embedder, OnnxEmbedder, SentenceTransformerEmbedder
from .errors import CorpusError, ModelError
from .extract import EXTRACTOR_VERSION
from .index import FORMAT_VERSION, MANIFEST, _document, _json_lines, read_manifest, sha256_file
from .models import DEFAULT_MODEL, token_counter
from .retrieval import build_lexicons
from .store import atomic_write, build_lock, collect_garbage, link_encoder, put, put_dir, write_jsonl
from .vectors import Progress, embed_and_write, previous_vectors, rows_for

logger = logging.getLogger(__name__)


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
    with build_lock(folder):
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


def _write_index(
    folder: Path, corpus_dir: Path, corpus: Corpus, chunks: list[Chunk], embedder: Embedder,
    settings: ChunkerSettings, export: Path | None, progress: Progress | None, started: float,
) -> BuildReport:
    """Embed what the previous index lacks, write the data files, then swap the manifest in (lock held)."""
    design = _index.SENTENCE_DESIGN
    name, docs = embedder.name, {d.source: d for d in corpus.documents}
    units = unit_spans(chunks, docs)
    sentence_texts = sentence_embedding_texts(chunks, docs, units)
    rows = rows_for(design, chunks, docs, units, sentence_texts)
    cache = previous_vectors(folder, name, design)
    vectors = embed_and_write(folder, design, rows, embedder, cache, progress)

    files = {
        "documents": put(folder, "documents", ".jsonl", write_jsonl(
            {"source": d.source, "title": d.title, "sha256": d.sha256, "file_sha256": d.file_sha256,
             "headings": [list(h) for h in d.headings], "pages": list(d.pages), "text": d.text}
            for d in corpus.documents
        )),
        "chunks": put(folder, "chunks", ".jsonl", write_jsonl(
            {"id": c.id, "source": c.source, "title": c.title, "section": c.section, "start": c.start,
             "end": c.end, "text": c.text, "sentences": [list(s) for s in c.sentences],
             "units": [list(u) for u in units[rows.bounds[i] : rows.bounds[i + 1]]],
             "key": rows.keys[i], "sentence_keys": rows.row_keys[rows.bounds[i] : rows.bounds[i + 1]],
             **({"plain_keys": rows.plain_keys[rows.bounds[i] : rows.bounds[i + 1]]} if rows.plain_keys else {})}
            for i, c in enumerate(chunks)
        )),
        **vectors.files,
        "lexicon": put_dir(folder, "lexicon", lambda p: _save_lexicons(p, chunks, sentence_texts)),
    }
    old = _read_manifest_quietly(folder)
    if export is not None:
        files["encoder"] = link_encoder(folder, export)

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
    atomic_write(folder / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2, ensure_ascii=False)))
    collect_garbage(folder, keep=[manifest, old or {}])
    return BuildReport(
        documents=len(docs), chunks=len(chunks), sentences=len(units),
        embedded=vectors.embedded, reused=vectors.reused, skipped=corpus.skipped,
        index_type=vectors.index_type, seconds=time.perf_counter() - started,
    )


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
