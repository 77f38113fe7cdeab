"""Embedders: text -> normalised float32 vectors, behind one narrow interface.

Two implementations of the same model (qa/models.py finds its folder):
- `SentenceTransformerEmbedder`, the reference. Importing sentence_transformers (and torch)
  costs ~4 s, so it is imported on first use: to export the model once, or where onnxruntime
  cannot run it.
- `OnnxEmbedder`, the same network exported to ONNX and run with onnxruntime + tokenizers
  (no torch): ~3x faster per query and ~0.2 s to start. It embeds the index and the queries.
  The export uses plain attention and onnxruntime's BERT fusions (bench/ measures it), and is
  made once per model, into the model cache, keyed by the hash of the model's files
  (`onnx_encoder`); only the first build on a machine imports torch. Its vectors match the
  reference to cosine >= 0.9999 (tested).

Both can also pool the token vectors of one pass over each of several character spans of the
text (`embed_spans`): a chunk's sentences get their vectors from the chunk's own pass ("late
chunking"), each sentence's tokens having read the whole chunk.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from .corpus import sha256_file
from .errors import ModelError
from .models import (
    DEFAULT_MODEL, TOKENIZER_FILE, load_tokenizer, model_cache, model_digest, resolve_model, tree_digest, vocabulary,
)

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
# The weights, beside the graph (ONNX "external data"): onnxruntime maps this file instead of parsing
# the weights out of one 436 MB protobuf, which left a second copy in memory. mpnet's query encoder, loaded
# and warm: 498 -> 418 MB resident, the same speed (docs/SERVING.md).
ONNX_WEIGHTS = "model.data"
EXPORT_FILE = "export.json"  # in the cached export only: what it was made from, and its files' hashes
EXPORT_VERSION = 2  # bump when export_onnx changes what it writes: older cached exports are then not used

# Tokens (padding included) the model reads in one call when embedding many texts (_batches).
BATCH_TOKENS = 512

Span = tuple[int, int]


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def onnx_encoder(name_or_path: str) -> Path:
    """The model's ONNX export in the model cache; exported (importing torch, ~30 s for mpnet) only
    when no export of the same model files is there yet.

    The export is written into a temporary folder and renamed into place whole; two builds that
    export at once both succeed, and one of the two exports is kept.
    """
    path = resolve_model(name_or_path)
    digest = model_digest(path)
    cache = model_cache()
    folder = cache / f"onnx-{re.sub(r'[^A-Za-z0-9.-]+', '_', path.name)}-{digest[:16]}"
    if _export_record(folder, digest) is not None:
        return folder
    logger.info("exporting %s to ONNX into %s (once per model)", name_or_path, folder)
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(".export-*"):  # left by an export that was killed (~420 MB for mpnet)
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    reference = SentenceTransformerEmbedder(name_or_path)
    tmp = cache / f".export-{os.urandom(6).hex()}"
    tmp.mkdir(0o777)  # minus the umask, as any new folder: an index built from it is served by others
    try:
        export_onnx(reference, tmp)
        files = {name: sha256_file(tmp / name) for name in (ONNX_FILE, ONNX_WEIGHTS, TOKENIZER_FILE)}
        record = {"version": EXPORT_VERSION, "model": name_or_path, "model_sha256": digest, "dim": reference.dim,
                  "files": files, "sha256": tree_digest(files)}
        (tmp / EXPORT_FILE).write_text(json.dumps(record, indent=2), "utf-8")
        for item in tmp.iterdir():
            with open(item, "rb") as f:
                os.fsync(f.fileno())
        try:
            tmp.rename(folder)
        except OSError:  # another build exported it meanwhile (or a broken export sits there)
            if _export_record(folder, digest) is None:
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def export_record(folder: Path) -> dict:
    """What a cached export records: model, model_sha256, dim, files {name: sha256}, sha256 (of the folder)."""
    return json.loads((folder / EXPORT_FILE).read_text("utf-8"))


def _export_record(folder: Path, digest: str) -> dict | None:
    """The record of a complete export of the model files with this digest, or None."""
    try:
        record = export_record(folder)
        sizes_ok = all((folder / name).is_file() for name in record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("version") != EXPORT_VERSION or record.get("model_sha256") != digest or not sizes_ok:
        return None
    return record


def _offline_env() -> None:
    # The model is local; these make sure nothing even tries the hub.
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(key, "1")


class SentenceTransformerEmbedder:
    """The reference embedder: sentence-transformers on the CPU, loaded on first use."""

    def __init__(self, name_or_path: str = DEFAULT_MODEL):
        self.name = name_or_path
        self.path = resolve_model(name_or_path)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            _offline_env()
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(str(self.path), device="cpu")
            except Exception as e:  # any failure here means "cannot load the model"
                raise ModelError(f"cannot load model {self.name!r} from {self.path}: {e}") from e
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def words(self) -> frozenset[str]:
        return vocabulary(self.path)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]], batch_size: int = 32):
        """Like OnnxEmbedder.embed_spans, with sentence-transformers' token vectors (the reference)."""
        texts = list(texts)
        tokens = self.model.encode(texts, batch_size=batch_size, output_value="token_embeddings",
                                   convert_to_numpy=False, show_progress_bar=False)
        tokenizer = self.model.tokenizer
        limit = self.model.max_seq_length
        vectors, pooled = [], []
        for text, own, hidden in zip(texts, spans, tokens):
            enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=limit)
            hidden = hidden.float().cpu().numpy()
            vectors.append(_normalise(hidden.mean(axis=0)))
            pooled.append(_pool_spans(hidden, np.array(enc["offset_mapping"], np.int64), own))
        return np.array(vectors, np.float32).reshape(len(texts), self.dim), pooled


class OnnxEmbedder:
    """The same model run by onnxruntime: tokenizer -> transformer -> mean pooling -> L2 norm."""

    @classmethod
    def for_model(cls, name_or_path: str, threads: int | None = None) -> "OnnxEmbedder":
        """The model's cached ONNX export (exported first if there is none yet)."""
        folder = onnx_encoder(name_or_path)
        return cls(folder, name_or_path, int(export_record(folder)["dim"]), threads=threads)

    def __init__(self, folder: Path, name: str, dim: int, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: alone on an idle machine that changes nothing measurable
        # (README, Speed), but a served app runs several asks at once on 2 shared cores, where spinning
        # threads took the CPU the other requests needed. 50 clients x 20 questions on /api/ask at load
        # average 6-8: 31-52 -> 113-120 requests/s, p95 1.2-2.6 s -> 0.51-0.55 s (bench/api_load.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self._tok = load_tokenizer(folder, truncate=True)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.name, self.dim, self.folder = name, dim, folder

    def words(self) -> frozenset[str]:
        return vocabulary(self.folder)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        texts = list(texts)
        if len(texts) == 1:
            return self._embed_one(texts[0])[None]
        return self.embed_spans(texts, [()] * len(texts), batch_size)[0]

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]], batch_size: int = 32,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One pass per text: its vector (the mean of all its tokens, as embed gives), and for each text
        the normalised mean of the token vectors over each of its character spans, (len(spans[i]), dim).

        A token belongs to a span when their characters overlap; a span with no token of its own (cut
        off by the window) gets the text's vector.
        """
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        pooled: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(texts)
        # Batches of similar length waste little on padding (sentence-transformers does the same).
        encs = self._tok.encode_batch(texts) if texts else []
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for rows in _batches(order, [len(e.ids) for e in encs], batch_size):
            hidden, mask = self._run([encs[r] for r in rows])
            m = mask[:, :, None].astype(np.float32)
            means = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out[rows] = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
            for j, r in enumerate(rows):
                if spans[r]:
                    n = len(encs[r].ids)
                    pooled[r] = _pool_spans(hidden[j, :n], np.array(encs[r].offsets, np.int64), spans[r],
                                            fallback=out[r])
        return out, pooled

    def _embed_one(self, text: str) -> np.ndarray:
        """A query: no padding, so no mask arithmetic (~0.1 ms of a ~2.5 ms query)."""
        ids = np.array([self._tok.encode(text).ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        pooled = self._session.run(None, feed)[0][0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _run(self, encs: list) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden state of a padded batch of encodings, and its attention mask."""
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), np.int64)
        mask = np.zeros((len(encs), width), np.int64)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self._session.run(None, feed)[0], mask


def _batches(order: list[int], lengths: list[int], most: int) -> Iterator[list[int]]:
    """order (sorted by length) cut into batches of at most `most` texts and BATCH_TOKENS tokens with padding
    (one text at least): activations that stay in the CPU's caches. Measured on 2 cores, mpnet: 96 texts of
    1,000 characters (~250 tokens) 12.2 s at 32 a batch, 9.4-10.0 s at 512 tokens a batch (2 texts);
    480 sentences 8.9 s at 32 a batch, 7.3-8.2 s at 512 tokens (256, 384, 1,024 and 2,048 no better)."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == most or (len(batch) + 1) * lengths[i] > BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _normalise(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _pool_spans(hidden: np.ndarray, offsets: np.ndarray, spans: Sequence[Span],
                fallback: np.ndarray | None = None) -> np.ndarray:
    """The normalised mean of the token vectors (hidden, one row per token, offsets its characters)
    overlapping each span; special tokens (no characters) belong to none."""
    real = offsets[:, 1] > offsets[:, 0]
    rows = []
    for start, end in spans:
        inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
        if inside.any():
            rows.append(_normalise(hidden[inside].mean(axis=0)))
        else:
            rows.append(fallback if fallback is not None else _normalise(hidden.mean(axis=0)))
    return np.array(rows, np.float32).reshape(len(spans), hidden.shape[1])


def export_onnx(reference: SentenceTransformerEmbedder, folder: Path) -> None:
    """Write the reference model's transformer as ONNX (graph and weights) plus its tokenizer into folder."""

    import torch

    transformer = reference.model[0].auto_model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reference.path / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    dummy = torch.ones((1, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"last_hidden_state": {0: "batch", 1: "tokens"}}

    class Wrapped(torch.nn.Module):  # a plain tensor output keeps the graph simple
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            extra = {"token_type_ids": token_type_ids} if takes_types else {}  # MPNet has none
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    import inspect

    takes_types = "token_type_ids" in inspect.signature(transformer.forward).parameters

    # The plain ("eager") attention graph is the one onnxruntime's fusions recognise; the SDPA graph
    # exports with its masking unrolled into dozens of small ops.
    attention = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    try:
        # The tracer's warnings are about branches that are constant for this graph; a build should not show them.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Wrapped(transformer), (dummy, dummy, torch.zeros_like(dummy)), str(folder / ONNX_FILE),
                input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=17, dynamo=False,
            )
    finally:
        transformer.set_attn_implementation(attention)
    _fuse(folder / ONNX_FILE, transformer.config)
    _weights_apart(folder / ONNX_FILE)


def _weights_apart(path: Path) -> None:
    """Move the model's weights out of its graph file into ONNX_WEIGHTS beside it, readable as the graph is."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=ONNX_WEIGHTS, size_threshold=1024)
    shutil.copymode(path, path.with_name(ONNX_WEIGHTS))  # onnx writes it owner-only; others serve the index


def _fuse(path: Path, config) -> None:
    """Fuse attention, layer norms and GELU into onnxruntime's BERT kernels, in place; best effort.

    The vectors stay within float rounding of the unfused graph (tested); a query encodes ~10% faster.
    """
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            str(path), model_type="bert", num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size, opt_level=0,
        )
        fused.save_model_to_file(str(path))
    except Exception as e:  # an optimizer that does not know this graph leaves it as exported
        logger.info("ONNX encoder left unfused: %s", e)
