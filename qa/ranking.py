"""Which sentence answers: the candidates of a question, described by features and ranked by a fitted scorer.

The sentences of the best chunks (`Retriever.rank`) are the candidates. Each is described by the
signals that once fed a hand-set score and a stack of rules: its similarity to the question read
in its place and read alone, its chunk's similarity and rank, its BM25 score, how much of the
question's information (IDF) it and its place hold, the question's names it lacks, whether its
form fits what the question asks (a number for "how many", a time for "when", a "Key: value" line
whose key is named…), and where it stands (a title, a lead-in, the first of its paragraph).

A linear scorer over those features (`Ranker`) orders them. It is fitted by
`qa/fit_ranker.py` on the tune halves of every question set, as a softmax over each
question's candidates (the candidates whose quote holds the answer are the positives), chosen by
leave-one-set-out on tune, and saved per model in `ranker.json` beside this file with the figures
it was fitted on. A model with no fitted ranker is ranked by `HAND`, the earlier hand-set
weights. Scores are logits: exp(a - b) says how much likelier candidate a is the answer than b.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

RANKER_FILE = Path(__file__).with_name("ranker.json")
T = TypeVar("T")

# The question's form, as a hint family (answer.question_hints names them): the feature is whether
# the sentence passes that hint, 0 when the question does not ask for it.
HINTS = ("number", "counted", "frequency", "time", "place", "kind", "definition", "key")
FEATURES = (
    "similarity",  # cosine with the query: the better of the sentence placed (title › section) and alone
    "placed",  # cosine of the sentence embedded with its title and section
    "plain",  # cosine of the sentence embedded alone
    "chunk",  # cosine of its chunk
    "chunk_rank",  # 1 / (1 + its chunk's place in the fused chunk ranking)
    "lexical",  # its BM25 score over all sentences, over the best candidate's
    "similarity_gap",  # similarity less the best candidate's (<= 0): the scale of one corpus aside
    "chunk_gap",
    "coverage",  # share of the question's information (IDF) among the terms of the sentence and its place
    "unit_coverage",  # the same, in the sentence's own words
    "names_missing",  # share of the question's names absent from the sentence and its place
    "bigrams",  # share of the question's pairs of adjacent terms that the sentence has too
    "rarest",  # the IDF of the rarest question term the sentence holds, over the rarest one asked
    *(f"hint_{h}" for h in HINTS),
    "field_line",  # a "Key: value" line of its own
    "introduces",  # a lead-in ending with ":" or a title: names a topic, holds no answer
    "length",  # log of its length in characters
    "opens_paragraph",
    "first_of_chunk",
)


_COLUMN = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True, slots=True)
class Ranker:
    """A linear score over standardised FEATURES."""

    weights: tuple[float, ...]
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.mean:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.scale, np.float32)
        return x @ np.asarray(self.weights, np.float32)

    def without(self, features: Sequence[str]) -> "Ranker":
        """The same ranker with these features' weights set to 0 (`qa eval --mode dense|bm25`)."""
        return Ranker(tuple(0.0 if f in features else w for f, w in zip(FEATURES, self.weights)), self.mean,
                      self.scale)

    def as_dict(self) -> dict:
        return {"features": list(FEATURES), "weights": list(self.weights), "mean": list(self.mean),
                "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict) -> "Ranker":
        if list(d.get("features", ())) != list(FEATURES):
            raise ValueError(f"fitted on features {d.get('features')}, but the code computes {list(FEATURES)}")
        return cls(tuple(d["weights"]), tuple(d.get("mean", ())), tuple(d.get("scale", ())))


def _hand() -> Ranker:
    """The earlier hand-set score: similarity + 0.5 x chunk + 0.25 x BM25 + 0.15 per fitting form + 0.25
    for a named key (weights searched by hand on the tune halves of seven sets)."""
    weights = dict.fromkeys(FEATURES, 0.0) | {"similarity": 1.0, "chunk": 0.5, "lexical": 0.25, "hint_key": 0.25}
    weights |= {f"hint_{h}": 0.15 for h in HINTS if h != "key"}
    return Ranker(tuple(weights[f] for f in FEATURES))


HAND = _hand()


def load_ranker(model_key: str, path: Path = RANKER_FILE) -> Ranker | None:
    """The ranker fitted for a model (decision.model_key), or None when none was."""
    return load_fitted(path, model_key, "ranker", Ranker.from_dict, logger,
                       "it ranks by the hand-set score until you run: python -m qa.fit_ranker")


def load_fitted(path: Path, model_key: str, part: str, parse: Callable[[dict], T], log: logging.Logger,
                meanwhile: str) -> T | None:
    """parse(models[model_key][part]) of a file of fitted models (qa/ranker.json, qa/decision.json); None when
    the file or the model's entry is missing, or when the entry was fitted by another version of the code:
    that one is logged to log, with what happens meanwhile and the command that refits it."""
    try:
        fitted = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    entry = fitted.get("models", {}).get(model_key)
    if not entry:
        return None
    try:
        return parse(entry[part])
    except (KeyError, TypeError, ValueError) as e:
        log.warning("%s: the %s for %s is unusable (%s); %s", path, part, model_key, e, meanwhile)
        return None


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidate sentences of one question, in the order they were gathered (not ranked)."""

    rows: np.ndarray  # sentence rows
    chunks: np.ndarray  # the chunk of each
    similarity: np.ndarray  # cosine of each with the query
    features: np.ndarray  # (len(rows), len(FEATURES))


def gather(data, units, lexicon, query, lexical: np.ndarray, ranked: Sequence[tuple[int, float]],
           hints: Sequence, limit: int) -> Candidates | None:
    """The sentences of the first `limit` ranked chunks and their features; None when there are none.

    lexical: the BM25 score of every sentence row for the query. hints: answer.question_hints.
    """
    if not ranked:
        return None
    chunk_ids = np.array([c for c, _ in ranked[:limit]])
    rows = np.concatenate([np.arange(data.sentence_rows[c], data.sentence_rows[c + 1]) for c in chunk_ids])
    if not len(rows):
        return None
    owners = data.sentence_chunk[rows]
    placed = data.sentence_vectors[rows] @ query.vector
    plain = data.plain_vectors[rows] @ query.vector if data.plain_vectors is not None else placed
    similarity = np.maximum(placed, plain)
    chunk_sim = data.vectors.reconstruct_batch(chunk_ids) @ query.vector
    place = {c: i for i, c in enumerate(chunk_ids.tolist())}
    of_chunk = np.array([place[o] for o in owners.tolist()])
    lex = lexical[rows]
    top = float(lex.max())
    x = np.zeros((len(rows), len(FEATURES)), np.float32)
    col = _COLUMN
    x[:, col["similarity"]], x[:, col["placed"]], x[:, col["plain"]] = similarity, placed, plain
    x[:, col["chunk"]] = chunk_sim[of_chunk]
    x[:, col["chunk_rank"]] = 1.0 / (1.0 + of_chunk)
    x[:, col["lexical"]] = lex / top if top > 0 else lex
    x[:, col["similarity_gap"]] = similarity - similarity.max()
    x[:, col["chunk_gap"]] = x[:, col["chunk"]] - chunk_sim.max()
    information = _information(query, lexicon)
    pairs = set(zip(query.terms, query.terms[1:]))
    by_name = {h.name: h for h in hints}
    starts = data.sentence_rows
    for i, row in enumerate(rows.tolist()):
        facts = units.facts(row)
        x[i, col["coverage"]] = information.share(units.context_terms(row))
        x[i, col["unit_coverage"]] = information.share(facts.terms)
        x[i, col["names_missing"]] = information.names_missing(units.context_terms(row))
        x[i, col["bigrams"]] = len(pairs & facts.bigrams) / len(pairs) if pairs else 0.0
        x[i, col["rarest"]] = information.rarest(facts.terms)
        for name, hint in by_name.items():
            x[i, col[f"hint_{name}"]] = float(hint.test(facts))
        x[i, col["field_line"]] = facts.field_line
        x[i, col["introduces"]] = facts.introduces
        x[i, col["length"]] = math.log1p(facts.chars)
        x[i, col["opens_paragraph"]] = facts.opens_paragraph
        x[i, col["first_of_chunk"]] = row == starts[int(owners[i])]
    if "definition" in by_name:  # documents define a thing where they first introduce it: full weight once per document
        _earliest_only(x[:, col["hint_definition"]], rows, owners, data)
    return Candidates(rows, owners, similarity, x)


def _earliest_only(passed: np.ndarray, rows: np.ndarray, owners: np.ndarray, data) -> None:
    first: dict[str, int] = {}
    for i in np.flatnonzero(passed):
        source = data.chunks[int(owners[i])].source
        if rows[i] < first.get(source, rows[i] + 1):
            first[source] = int(rows[i])
    keep = set(first.values())
    for i in np.flatnonzero(passed):
        if int(rows[i]) not in keep:
            passed[i] = 0.5


@dataclass(frozen=True, slots=True)
class _Information:
    """The question's terms weighted by IDF (less those that only frame it), and its names."""

    idf: dict[str, float]
    names: list[list[str]]

    def share(self, present: frozenset[str] | set[str]) -> float:
        total = sum(self.idf.values())
        return sum(w for t, w in self.idf.items() if t in present) / total if total else 1.0

    def rarest(self, present: frozenset[str] | set[str]) -> float:
        top = max(self.idf.values(), default=0.0)
        return max((w for t, w in self.idf.items() if t in present), default=0.0) / top if top else 0.0

    def names_missing(self, present: frozenset[str] | set[str]) -> float:
        if not self.names:
            return 0.0
        return sum(any(t not in present for t in ts) for ts in self.names) / len(self.names)


def _information(query, lexicon) -> _Information:
    return _Information({t: lexicon.idf(t) for t in query.information}, query.names)


def rank(candidates: Candidates, ranker: Ranker) -> list[tuple[int, float]]:
    """(index into candidates, score), best first; ties keep the gathering order."""
    scores = ranker.score(candidates.features)
    order = np.argsort(-scores, kind="stable")
    return [(int(i), float(scores[i])) for i in order]
