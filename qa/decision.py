"""Answer, say it is unsure, or decline: one calibrated decision instead of a stack of rules.

First, nothing near: when even the best sentence is barely similar to the question
(`best` below `near`, fitted between the off-topic and the answerable tune items), the
bot declines. Otherwise a few signals of how well the best quote answers the question,
all from the models and the index (`SIGNALS`), go into a logistic regression that estimates the probability that
the first quote is right. It is fitted by `qa/fit_decision.py` on the *tune* halves of
every question set (answerable items whose first quote holds the answer are positives;
wrong first quotes, unanswerable and off-topic items are negatives) and saved, per model,
in `decision.json` beside this file with the figures it was fitted on. Two thresholds on
that probability, chosen on the same tune items, give three outcomes:

    best < near      "declined" (nothing in the documents is about this)
    p >= answer      "answered"
    p >= uncertain   "uncertain": the closest passage, with a plain caveat
    otherwise        "declined" (the documents are about this, but do not say it)

The signals are measured by `Evidence`, from the index, its sentence units and lexicon and the
query encoder. The hand-written date rule of earlier versions ("a when-question whose quote holds
no date") is one of them: the fit decides what it is worth.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .answer import Candidate, Quote
from .index import IndexData
from .question import Query, dates_missing
from .quoting import same_work
from .ranking import load_fitted
from .retrieval import Lexicon
from .units import Units

logger = logging.getLogger(__name__)

DECISION_FILE = Path(__file__).with_name("decision.json")
SIGNALS = (
    "best",  # cosine of the best of the top three sentences and the query
    "score",  # the first candidate's combined score (similarity, its chunk's, BM25, form bonuses)
    "margin",  # how far the first candidate is ahead of the second
    "support",  # best, discounted for question words (IDF-weighted) the first sentence lacks (Evidence.support)
    "coverage",  # share of the question's information (IDF) present in the first sentence and its place
    # share of the question's names missing from the first sentence and its place (a name the corpus never
    # mentions is missing there too; a separate "unknown to the corpus" signal was collinear with this one
    # and took a positive weight on tune, which would have excused exactly the names it should not)
    "names_unquoted",
    "no_date",  # a "when was / what year" question whose first quote holds no date
)


@dataclass(frozen=True, slots=True)
class Decision:
    """A fitted logistic regression over SIGNALS and the two thresholds on its probability."""

    weights: tuple[float, ...]
    bias: float
    answer: float  # at or above: answered
    uncertain: float  # at or above: uncertain; below: declined
    near: float = 0.0  # a best similarity below this: nothing is near, declined
    mean: tuple[float, ...] = ()  # the signals are standardised with the tune items' mean and spread
    scale: tuple[float, ...] = ()

    def probability(self, signals: dict[str, float]) -> float:
        z = self.bias
        for i, name in enumerate(SIGNALS):
            x = (signals[name] - self.mean[i]) / self.scale[i] if self.mean else signals[name]
            z += self.weights[i] * x
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def outcome(self, signals: dict[str, float]) -> str:
        if self.nothing_near(signals):
            return "declined"
        probability = self.probability(signals)
        if probability >= self.answer:
            return "answered"
        return "uncertain" if probability >= self.uncertain else "declined"

    def nothing_near(self, signals: dict[str, float]) -> bool:
        """Whether nothing in the documents is about the question (not only: they do not say it)."""
        return signals["best"] < self.near

    def as_dict(self) -> dict:
        return {"signals": list(SIGNALS), "weights": list(self.weights), "bias": self.bias, "answer": self.answer,
                "uncertain": self.uncertain, "near": self.near, "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        if list(d.get("signals", ())) != list(SIGNALS):
            raise ValueError(f"fitted on signals {d.get('signals')}, but the code computes {list(SIGNALS)}")
        return cls(tuple(d["weights"]), d["bias"], d["answer"], d["uncertain"], d["near"], tuple(d["mean"]),
                   tuple(d["scale"]))


@dataclass(frozen=True, slots=True)
class Fixed:
    """One outcome whatever the signals: "answered" for the tuning tools, which grade every first
    quote; "uncertain" for a model nobody fitted a decision for, whose scores mean nothing yet."""

    always: str

    def outcome(self, signals: dict[str, float]) -> str:
        return self.always

    def nothing_near(self, signals: dict[str, float]) -> bool:
        return False


ANSWER_ALL, NEVER_SURE = Fixed("answered"), Fixed("uncertain")


def model_key(model_name: str) -> str:
    """The key of a model in decision.json: its last path part, lower-cased ("all-minilm-l6-v2")."""
    return model_name.rstrip("/").rsplit("/", 1)[-1].lower()


def load_decision(model_name: str, path: Path = DECISION_FILE) -> Decision | None:
    """The decision fitted for this model, or None when none was."""
    return load_fitted(path, model_key(model_name), "decision", Decision.from_dict, logger,
                       "no answer is sure until you run: python -m qa.fit_decision")


_WORDS = re.compile(r"[^\W_]{2,}")


class Evidence:
    """Measures the signals of a question and its ranked candidates (SIGNALS), from the index, its
    sentence units and lexicon, and the query encoder (encode: text -> unit vector)."""

    def __init__(self, data: IndexData, units: Units, lexicon: Lexicon, encode: Callable[[str], np.ndarray]):
        self.data, self.units, self.lexicon, self.encode = data, units, lexicon, encode

    def signals(self, asked: Query, candidates: list[Candidate], quotes: list[Quote]) -> dict[str, float]:
        """What the decision looks at, for the first candidate.

        For a follow-up, "best" is also measured against the earlier question alone: "And the address?"
        is near the documents when the thread is, though its own few words are near nothing.
        """
        best = own = max(c.similarity for c in candidates[:3])
        if asked.context_vector is not None:
            rows = [c.row for c in candidates[:3]]
            best = max(best, float(self.data.similarity(rows, asked.context_vector).max()))
        first = candidates[0]
        overlap = self._overlap(asked, first.row)
        terms, present, total, names = overlap
        idf = self.lexicon.idf
        share = lambda found: sum(map(found, names)) / len(names) if names else 0.0
        rival = self._rival(candidates)
        return {
            "best": best,
            "score": first.score,
            "margin": first.score - rival.score if rival else first.score,
            "support": self._support(asked, candidates, overlap, own),
            "coverage": sum(idf(t) for t in terms if t in present) / total if total else 1.0,
            "names_unquoted": share(lambda ts: any(t not in present for t in ts)),
            "no_date": float(dates_missing(asked.text, quotes)),
        }

    def _rival(self, candidates: list[Candidate]) -> Candidate | None:
        """The best *other* passage than the first: a unit overlapping the first (the same sentence quoted
        with the one before it) is the same answer, not a rival; nor are its words (or more around them) in
        another file of the same title (a report published as PDF and as Word)."""
        first = candidates[0]
        s0, e0 = self.units[first.row]
        passage = lambda c: ((chunk := self.data.chunks[c.chunk]).source, chunk.title, self.units.text(c.row))
        mine = passage(first)
        return next((c for c in candidates[1:] if (c.chunk != first.chunk or not (
            self.units[c.row][0] < e0 and s0 < self.units[c.row][1])) and not same_work(passage(c), mine)), None)

    def _overlap(self, asked: Query, row: int) -> _Overlap:
        """What of the question sentence unit row holds: see _Overlap."""
        terms = list(asked.information)
        return _Overlap(terms, self.units.context_terms(row), sum(map(self.lexicon.idf, terms)),
                        [list(ts) for ts in asked.names])

    def _support(self, asked: Query, candidates: list[Candidate], overlap: _Overlap, best: float) -> float:
        """How well the top sentence supports an answer, from 0 to 1.

        The similarity of the best sentence (best, without the follow-up's earlier question), discounted by
        the share of the question's information (IDF-weighted terms) that the top sentence lacks, unless
        those missing words mean what the sentence says anyway ("free speech" ~ "freedom of expression"); a
        missing name ("on a Raspberry Pi", "in 2019") is never excused that way. Words that only name the
        kind of answer ("what year", "where is it based") are not required. overlap: `_overlap` of the
        question and the first candidate.
        """
        idf = self.lexicon.idf
        terms, present, total, name_terms = overlap
        missing = [t for t in terms if t not in present]
        if not missing or not total:
            return best
        # A missing name ("Raspberry Pi", "2019") has no paraphrase to be rescued by; other words may.
        names = {t for ts in name_terms for t in ts}
        unnamed = [t for t in missing if t not in names]
        share_names = sum(idf(t) for t in missing if t in names) / total
        share_words = sum(idf(t) for t in unnamed) / total
        if not unnamed:
            return best * (1 - share_names - share_words)
        words = " ".join(w for w in _WORDS.findall(asked.text) if (t := self.lexicon.terms(w)) and t[0] in unnamed)
        coverage = max(0.0, float(self.data.similarity(candidates[0].row, self.encode(words))))
        return best * (1 - share_names - share_words * (1 - coverage))


class _Overlap(NamedTuple):
    """The question against one sentence unit, as the signals read it."""

    terms: list[str]  # the question's terms, less those that only frame it ("what year", "where is it based")
    present: frozenset[str]  # the terms of the unit as the lexicon saw it (with its title and section)
    total: float  # the IDF of terms, summed: the question's information
    names: list[list[str]]  # the terms of each of the question's names ("Raspberry Pi", "2019")
