"""Hybrid retrieval: dense (FAISS over chunk vectors) + lexical (BM25 via bm25s), fused by RRF.

Dense search finds paraphrases ("free speech online" -> "freedom of expression");
BM25 finds rare exact terms the small model blurs ("2018", "Pommier", typos aside).
Reciprocal rank fusion combines the two rankings without calibrating their scores
against each other. `python -m qa eval --mode dense|bm25|hybrid` compares them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Sequence

import numpy as np

from . import english
from .chunking import Chunk
from .index import IndexData

RRF_K = 60  # the constant from Cormack et al. (2009); ranks, not scores, are fused
MODES = ("hybrid", "dense", "bm25")
_WORD = re.compile(r"[^\W_]{2,}")  # words of two or more letters or digits; "__bold__" is "bold"
# "co-ordinated", "e-Parliament". Matches start at a word's start and never give letters back:
# without that, a 2,000-letter word took 60 ms per search (each start retried to the end).
_COMPOUND = re.compile(r"(?<![^\W_])[^\W_]++(?:[-\u2010\u2011][^\W_]++)+")
_HYPHENS = re.compile(r"[-\u2010\u2011]")
MIN_CORRECTABLE = 5  # shorter words have too many neighbours one edit away
# Bump when what a text's terms are changes (_words, the stopwords, the stemmer): lexicons saved in
# an index by another version are then rebuilt at load instead of read.
LEXICON_VERSION = 1
_LEXICON_FILE = "lexicon.json"


@dataclass(frozen=True, slots=True)
class Passage:
    text: str
    source: str
    title: str
    section: str
    start: int
    end: int
    score: float
    page: int | None = None  # 1-based page of start, for documents with pages (PDF)


class Lexicon:
    """Stemmed, stop-worded terms and a BM25 index over a list of texts."""

    def __init__(self, texts: Sequence[str]):
        import bm25s

        self._setup()
        # Each distinct word is stemmed once; a text becomes term ids by lookups (at 240k texts, stemming
        # every occurrence took 10 s of a 21 s load).
        tokens = [_words(text) for text in texts]
        self._know(Counter(chain.from_iterable(tokens)))
        self.vocab: dict[str, int] = {}
        term_id = {w: -1 if w in self._stopwords else self.vocab.setdefault(self._stem(w), len(self.vocab))
                   for w in self.words}
        corpus_ids = [[i for i in map(term_id.__getitem__, words) if i >= 0] for words in tokens]
        # texts containing each term
        df = np.bincount(np.fromiter(chain.from_iterable(map(set, corpus_ids)), np.int64), minlength=len(self.vocab))
        self.df: dict[str, int] = dict(zip(self.vocab, df.tolist()))
        self.size = len(corpus_ids)
        self.bm25 = bm25s.BM25()
        # Handing bm25s our vocabulary (a copy: it adds to it) keeps its own string-keyed, so it can save it.
        self.bm25.index(bm25s.tokenization.Tokenized(ids=corpus_ids, vocab=dict(self.vocab)), show_progress=False)

    def _setup(self) -> None:
        import bm25s
        import Stemmer

        # bm25s sets its own logger to DEBUG at import; a library should not talk unless asked.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._stem = Stemmer.Stemmer("english").stemWord
        self._stopwords = frozenset(bm25s.stopwords.STOPWORDS_EN_PLUS) | english.QUESTION_STOPWORDS

    def _know(self, words: Counter[str]) -> None:
        """The corpus's surface words and counts, for spelling correction, and what follows from them."""
        self.words = words
        self._alphabet = frozenset(c for w in words for c in w if c.isalpha())
        self._letters = "".join(sorted(self._alphabet))
        self._longest = max(map(len, words), default=0)

    def _fingerprint(self) -> str:
        """What the saved terms depend on besides the texts: our rules, the stemmer, the stopwords."""
        from importlib.metadata import version

        words = hashlib.sha256(" ".join(sorted(self._stopwords)).encode()).hexdigest()[:12]
        return f"{LEXICON_VERSION}/PyStemmer-{version('PyStemmer')}/stopwords-{words}"

    def save(self, folder: Path) -> None:
        """Write the lexicon into folder: bm25s's own files (arrays as .npy, no pickle) and ours."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(folder), show_progress=False)
        terms = list(self.vocab)
        state = {"version": self._fingerprint(), "size": self.size, "terms": terms, "df": [self.df[t] for t in terms],
                 "words": list(self.words), "counts": list(self.words.values())}
        (folder / _LEXICON_FILE).write_text(json.dumps(state, ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Lexicon | None":
        """A lexicon saved by save(); None when it was saved under other rules (LEXICON_VERSION, stemmer
        or stopwords): its terms would no longer be the ones a question is turned into."""
        import bm25s

        state = json.loads((folder / _LEXICON_FILE).read_text("utf-8"))
        self = cls.__new__(cls)
        self._setup()
        if state.get("version") != self._fingerprint():
            return None
        self.vocab = {t: i for i, t in enumerate(state["terms"])}
        self.df = dict(zip(state["terms"], state["df"]))
        self._know(Counter(dict(zip(state["words"], state["counts"]))))
        self.size = state["size"]
        self.bm25 = bm25s.BM25.load(str(folder), show_progress=False)
        return self

    def terms(self, text: str) -> list[str]:
        return [self._stem(w) for w in _words(text) if w not in self._stopwords]

    def foreign(self, text: str) -> bool:
        """Whether most of text's letters occur in no word of the corpus (another script than its own)."""
        letters = [c for c in text.lower() if c.isalpha()]
        return 2 * sum(c not in self._alphabet for c in letters) > len(letters)

    def knows(self, term: str) -> bool:
        """Whether some text of the corpus contains term."""
        return self.df.get(term, 0) > 0

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency; highest for a term the corpus does not contain."""
        df = self.df.get(term, 0)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def correct(self, text: str, known: frozenset[str] = frozenset()) -> str:
        """text with each unknown word one edit away from a corpus word replaced by it ("adress" -> "address");
        names, and words of `known` (real words the corpus happens not to use: "project" is not a typo of
        "protect"), are left as typed."""

        names = set(looks_like_names(text))  # "Apple" is not a typo of "apply"

        def fix(m: re.Match) -> str:
            word = m.group(0)
            low = word.lower()
            if word in names or low in known:
                return word
            if (len(low) < MIN_CORRECTABLE or len(low) > self._longest + 1  # no corpus word is one edit away
                    or low in self.words or not low.isalpha() or self._stem(low) in self.vocab):
                return word
            best = self._nearest(low)
            return best if best and self._stem(best) not in self._stopwords else word

        return _WORD.sub(fix, text)

    def _nearest(self, word: str) -> str | None:
        """The most frequent corpus word one edit away (a letter missing, extra, wrong, or two swapped)
        that starts with the same letter: typos rarely hit the first letter, and "bread" is not "read".

        The edits are generated and looked up (Norvig's method): ~50 per letter of the word, nothing to
        build first.
        """
        splits = [(word[:i], word[i:]) for i in range(1, len(word) + 1)]  # never edit the first letter
        edits = {a + b[1:] for a, b in splits if b}
        edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        edits |= {a + c + b[1:] for a, b in splits if b for c in self._letters}
        edits |= {a + c + b for a, b in splits for c in self._letters}
        found = [w for w in edits if w in self.words and len(w) >= MIN_CORRECTABLE - 1 and w.isalpha()]
        return max(sorted(found), key=lambda w: self.words[w]) if found else None

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        ids = [self.vocab[t] for t in terms if t in self.vocab]
        if not ids:
            return np.zeros(self.bm25.scores["num_docs"], np.float32)
        return self.bm25.get_scores(ids)


_TOKENS = re.compile(r"[^\W_]+")


def looks_like_names(text: str) -> list[str]:
    """Words of text that look like names: capitalised inside it ("Raspberry"), or a number of three
    digits or more ("2019"; "v2" and "C99" may be paraphrased). Capitals mean nothing in Title Case
    or all-caps text."""
    words = _TOKENS.findall(text)
    longer = [w for w in words[1:] if len(w) >= 4]
    shouting = (not any(c.islower() for c in text) or (len(words) >= 2 and all(w[0].isupper() for w in words))
                or (len(longer) >= 3 and all(w[0].isupper() for w in longer)))
    return [w for i, w in enumerate(words)
            if sum(c.isdigit() for c in w) >= 3 or (i > 0 and not shouting and w[0].isupper() and not w.isupper())]


# The two BM25 indexes of a bot: over chunks (to rank them beside the dense search) and over
# sentence units (to score the sentences of the best chunks). Both are saved in the index at build.
LEXICONS = ("chunks", "sentences")


def build_lexicons(chunks: Sequence[Chunk], sentence_texts: Sequence[str]) -> dict[str, Lexicon]:
    """The two lexicons: chunks with their title and section, and sentence units as the model sees them
    (`chunking.sentence_embedding_texts`, which the build has already made for embedding)."""
    return {"chunks": Lexicon([f"{c.title} {c.section} {c.text}" for c in chunks]),
            "sentences": Lexicon(sentence_texts)}


def load_lexicons(folder: Path) -> dict[str, Lexicon] | None:
    """The lexicons saved in folder, or None when they must be rebuilt (another LEXICON_VERSION)."""
    found = {name: Lexicon.load(folder / name) for name in LEXICONS}
    return None if any(lex is None for lex in found.values()) else found


def _words(text: str) -> list[str]:
    """The lower-cased words of text; a hyphenated compound also counts written solid, so that
    "co-ordinated" meets "coordinates" and "e-Parliament" meets "eParliament"."""
    low = text.lower()
    return _WORD.findall(low) + [_HYPHENS.sub("", c) for c in _COMPOUND.findall(low)]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest positive scores, best first, ties in index order (as a stable sort).

    Sorting all of them cost 1.2 ms per query at 100k chunks; only the positive ones, cut to the
    top k by a partition first, cost 0.15 ms (bench/, same results).
    """
    hits = np.flatnonzero(scores > 0)
    if len(hits) > k:
        values = scores[hits]
        kth = np.partition(values, len(hits) - k)[len(hits) - k]
        hits = hits[values >= kth]  # ties with the k-th score stay in, so the stable sort below decides them
    return hits[np.argsort(-scores[hits], kind="stable")[:k]]


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of several rankings of item numbers."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank + 1)
    return fused


class Retriever:
    """Ranks the chunks of one loaded index for a query vector and its terms."""

    def __init__(self, data: IndexData, lexicon: Lexicon, mode: str = "hybrid"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.data, self.lexicon, self.mode = data, lexicon, mode

    def dense(self, qvec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk numbers, cosine scores) of the k nearest chunks."""
        k = min(k, self.data.vectors.ntotal)
        scores, ids = self.data.vectors.search(qvec.reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def rank(self, qvec: np.ndarray, terms: Sequence[str], k: int, context_terms: Sequence[str] = (),
             context_weight: float = 0.5) -> list[tuple[int, float]]:
        """The top k (chunk number, fused score), best first. context_terms (of the earlier question a
        follow-up leans on) add their BM25 score at context_weight."""
        depth = max(4 * k, 50)
        rankings = []
        if self.mode in ("hybrid", "dense"):
            rankings.append(self.dense(qvec, depth)[0].tolist())
        if self.mode in ("hybrid", "bm25"):
            lexical = self.lexicon.scores(terms)
            if context_terms:
                lexical = lexical + context_weight * self.lexicon.scores(context_terms)
            rankings.append(top_k(lexical, depth).tolist())
        fused = rrf(rankings)
        return sorted(fused.items(), key=lambda kv: -kv[1])[:k]

    def passage(self, chunk_no: int, score: float) -> Passage:
        c: Chunk = self.data.chunks[chunk_no]
        page = self.data.documents[c.source].page_at(c.start)
        return Passage(c.text, c.source, c.title, c.section, c.start, c.end, float(score), page)
