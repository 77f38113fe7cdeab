"""Answer, say it is unsure, or decline: one calibrated decision instead of a stack of rules.

First, nothing near: when even the best sentence is barely similar to the question
(`best` below `near`, fitted between the off-topic and the answerable tune items), the
bot declines. Otherwise a few signals of how well the best quote answers the question,
all from the models and the index (`SIGNALS`), go into a logistic regression that estimates the probability that
the first quote is right. It is fitted by `bench/fit_decision.py` on the *tune* halves of
every question set (answerable items whose first quote holds the answer are positives;
wrong first quotes, unanswerable and off-topic items are negatives) and saved, per model,
in `decision.json` beside this file with the figures it was fitted on. Two thresholds on
that probability, chosen on the same tune items, give three outcomes:

    best < near      "declined" (nothing in the documents is about this)
    p >= answer      "answered"
    p >= uncertain   "uncertain": the closest passage, with a plain caveat
    otherwise        "declined" (the documents are about this, but do not say it)

The hand-written date rule of earlier versions ("a when-question whose quote holds no
date") is one of the signals: the fit decides what it is worth.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DECISION_FILE = Path(__file__).with_name("decision.json")
SIGNALS = (
    "best",  # cosine of the best of the top three sentences and the query
    "score",  # the first candidate's combined score (similarity, its chunk's, BM25, form bonuses)
    "margin",  # how far the first candidate is ahead of the second
    "support",  # best, discounted for question words (IDF-weighted) the first sentence lacks (Bot.support)
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
        if signals["best"] < self.near:
            return "declined"
        probability = self.probability(signals)
        if probability >= self.answer:
            return "answered"
        return "uncertain" if probability >= self.uncertain else "declined"

    def as_dict(self) -> dict:
        return {"signals": list(SIGNALS), "weights": list(self.weights), "bias": self.bias, "answer": self.answer,
                "uncertain": self.uncertain, "near": self.near, "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        if list(d.get("signals", ())) != list(SIGNALS):
            raise ValueError(f"fitted on signals {d.get('signals')}, but the code computes {list(SIGNALS)}")
        return cls(tuple(d["weights"]), d["bias"], d["answer"], d["uncertain"], d["near"], tuple(d["mean"]),
                   tuple(d["scale"]))


def model_key(model_name: str) -> str:
    """The key of a model in decision.json: its last path part, lower-cased ("all-minilm-l6-v2")."""
    return model_name.rstrip("/").rsplit("/", 1)[-1].lower()


def load_decision(model_name: str, path: Path = DECISION_FILE) -> Decision | None:
    """The decision fitted for this model, or None when none was (then the bot declines by its old rule)."""
    try:
        fitted = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    entry = fitted.get("models", {}).get(model_key(model_name))
    if not entry:
        return None
    try:
        return Decision.from_dict(entry["decision"])
    except (KeyError, TypeError, ValueError) as e:  # fitted by another version: refit, meanwhile the old rule
        logger.warning("%s: the decision for %s is unusable (%s) — run: python bench/fit_decision.py",
                       path, model_name, e)
        return None
