"""An offline question-answering bot that answers only by quoting its corpus.

    import qa
    qa.build_index(corpus_dir="corpus", index_dir="index")
    bot = qa.load(index_dir="index")
    bot.retrieve("question", k=5)        # passages, best first
    bot.ask("question", history=None)    # an Answer with verbatim quotes, or an abstention

`import qa` is cheap: numpy, faiss, onnxruntime and sentence-transformers are
imported only by the functions that need them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import (
    CorpusError, IndexCorruptError, IndexNotFoundError, InvalidQuestionError, ModelError, QAError, StaleIndexError,
)

if TYPE_CHECKING:
    from .answer import Answer, Quote
    from .bot import Bot
    from .build import BuildReport
    from .retrieval import Passage

__all__ = [
    "build_index", "load", "retrieve", "ask", "Answer", "Quote", "Passage", "Bot", "QAError", "CorpusError",
    "IndexCorruptError", "IndexNotFoundError", "InvalidQuestionError", "ModelError", "StaleIndexError",
]

DEFAULT_INDEX = "index"
_default: Any = None
_lock = threading.Lock()


def build_index(corpus_dir="corpus", index_dir="index", **options) -> "BuildReport":
    """Chunk, embed and index corpus_dir into index_dir; returns counts and timings."""
    from .build import build_index as build

    return build(corpus_dir=corpus_dir, index_dir=index_dir, **options)


def load(index_dir="index", **options) -> "Bot":
    """Load an index as a Bot (see qa.bot.load for options)."""
    from .bot import load as load_bot

    return load_bot(index_dir=index_dir, **options)


def default_bot() -> "Bot":
    """The bot on ./index, loaded once per process."""
    global _default
    with _lock:
        if _default is None:
            _default = load(DEFAULT_INDEX)
        return _default


def retrieve(question: str, k: int = 5) -> "list[Passage]":
    """bot.retrieve on the default index."""
    return default_bot().retrieve(question, k=k)


def ask(question: str, history=None) -> "Answer":
    """bot.ask on the default index."""
    return default_bot().ask(question, history=history)


def __getattr__(name: str):
    # The value types, importable as qa.Answer etc. without importing numpy at `import qa`.
    if name in ("Answer", "Quote"):
        from . import answer

        return getattr(answer, name)
    if name == "Passage":
        from .retrieval import Passage

        return Passage
    if name == "Bot":
        from .bot import Bot

        return Bot
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
