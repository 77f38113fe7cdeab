"""Hybrid retrieval: dense (FAISS over chunk vectors) + lexical (BM25 via bm25s), fused by RRF.

Dense search finds paraphrases ("free speech online" -> "freedom of expression");
BM25 finds rare exact terms the small model blurs ("2018", "Pommier", typos aside).
Reciprocal rank fusion combines the two rankings without calibrating their scores
against each other. `python -m qa eval --mode dense|bm25|hybrid` compares them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .chunking import Chunk
from .index import IndexData

RRF_K = 60  # the constant from Cormack et al. (2009); ranks, not scores, are fused
MODES = ("hybrid", "dense", "bm25")
_WORD = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    source: str
    title: str
    section: str
    start: int
    end: int
    score: float


class Lexicon:
    """Stemmed, stop-worded terms and a BM25 index over a list of texts."""

    def __init__(self, texts: Sequence[str]):
        import bm25s
        import Stemmer

        # bm25s sets its own logger to DEBUG at import; a library should not talk unless asked.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        self._stem = Stemmer.Stemmer("english").stemWord
        self._stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN)
        self.vocab: dict[str, int] = {}
        corpus_ids = [[self.vocab.setdefault(t, len(self.vocab)) for t in self.terms(text)] for text in texts]
        self.bm25 = bm25s.BM25()
        self.bm25.index(corpus_ids, show_progress=False)

    def terms(self, text: str) -> list[str]:
        return [self._stem(w) for w in _WORD.findall(text.lower()) if w not in self._stopwords]

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return np.zeros(self.bm25.scores["num_docs"], np.float32)
        return self.bm25.get_scores(ids)


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of several rankings of item numbers."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank + 1)
    return fused


class Retriever:
    """Ranks the chunks of one loaded index for a query vector and its terms."""

    def __init__(self, data: IndexData, mode: str = "hybrid"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.data, self.mode = data, mode
        self.lexicon = Lexicon([f"{c.title} {c.section} {c.text}" for c in data.chunks])

    def dense(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk numbers, cosine scores) of the k nearest chunks."""
        k = min(k, self.data.vectors.ntotal)
        scores, ids = self.data.vectors.search(qvec.reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def rank(self, qvec: np.ndarray, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The top k (chunk number, fused score), best first."""
        depth = max(4 * k, 50)
        rankings = []
        if self.mode in ("hybrid", "dense"):
            rankings.append(self.dense(qvec, depth)[0].tolist())
        if self.mode in ("hybrid", "bm25"):
            lexical = self.lexicon.scores(terms)
            top = np.argsort(-lexical, kind="stable")[:depth]
            rankings.append([int(i) for i in top if lexical[i] > 0])
        fused = rrf(rankings)
        return sorted(fused.items(), key=lambda kv: -kv[1])[:k]

    def passage(self, chunk_no: int, score: float) -> Passage:
        c: Chunk = self.data.chunks[chunk_no]
        return Passage(c.text, c.source, c.title, c.section, c.start, c.end, float(score))
