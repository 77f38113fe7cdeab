"""The sentence ranker: the shipped fit, its features on real data, and what happens when it is missing."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from qa.decision import model_key
from qa.evaluate import load_suite
from qa.models import MINILM_MODEL, MPNET_MODEL
from qa.ranking import FEATURES, HAND, RANKER_FILE, Ranker, load_ranker

from conftest import DATA


@pytest.mark.parametrize("model", [MPNET_MODEL, MINILM_MODEL])
def test_each_model_ships_a_ranker_fitted_on_the_tune_halves_of_every_set(model):
    """A feature added to the code, or a set added to the suite, without a refit fails here
    (python -m qa.fit_ranker); so does a fit that ranks held-out sets worse than the hand-set score."""
    entry = json.loads(RANKER_FILE.read_text("utf-8"))["models"][model_key(model)]
    assert entry["ranker"]["features"] == list(FEATURES)
    assert entry["fitted_on"]["split"] == "tune"
    assert entry["fitted_on"]["sets"] == sorted(load_suite(DATA / "sets"))
    held_out = entry["leave_one_set_out"]
    mean = lambda figures: sum(figures.values()) / len(figures)
    assert mean(held_out["first_candidate_right"]) >= mean(held_out["hand_set_score"])
    assert load_ranker(model_key(model)) is not None


def test_a_ranker_fitted_on_other_features_is_not_used(tmp_path, caplog):
    fitted = json.loads(RANKER_FILE.read_text("utf-8"))
    entry = fitted["models"][model_key(MPNET_MODEL)]
    entry["ranker"]["features"] = entry["ranker"]["features"][:-1]
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(fitted), "utf-8")
    with caplog.at_level(logging.WARNING, logger="qa.ranking"):
        assert load_ranker(model_key(MPNET_MODEL), path) is None  # the bot then ranks by the hand-set score
    assert "python -m qa.fit_ranker" in caplog.text
    assert load_ranker("some-unfitted-model", path) is None


def test_the_hand_set_score_is_the_earlier_formula():
    """similarity + 0.5 x chunk + 0.25 x BM25 + 0.15 for a fitting form + 0.25 for a named key."""
    x = np.zeros((1, len(FEATURES)), np.float32)
    values = {"similarity": 0.8, "chunk": 0.6, "lexical": 0.4, "hint_number": 1.0, "hint_key": 1.0, "placed": 0.7}
    for name, value in values.items():
        x[0, FEATURES.index(name)] = value
    assert HAND.score(x)[0] == pytest.approx(0.8 + 0.3 + 0.1 + 0.15 + 0.25)
    # a standardised ranker scores (x - mean) / scale
    ranker = Ranker(tuple(1.0 if f == "chunk" else 0.0 for f in FEATURES), tuple([0.5] * len(FEATURES)),
                    tuple([2.0] * len(FEATURES)))
    assert ranker.score(x)[0] == pytest.approx((0.6 - 0.5) / 2)


def test_the_features_of_the_answer_on_the_seed(seed_bot):
    """How many member parliaments: the sentence with the count of the thing asked has the number and
    counted-thing features, every question term, and comes first."""
    query, candidates, hints, found = seed_bot.search("How many member parliaments does the IPU have?")
    assert {h.name for h in hints} >= {"number", "counted"}
    best = seed_bot.units.text(candidates[0].row)
    assert "179 national member parliaments" in best
    row = int(np.flatnonzero(found.rows == candidates[0].row)[0])
    features = dict(zip(FEATURES, found.features[row].tolist()))
    assert features["hint_number"] == 1.0 and features["hint_counted"] == 1.0
    assert features["coverage"] == pytest.approx(1.0) and features["names_missing"] == 0.0
    assert features["similarity"] == pytest.approx(max(features["placed"], features["plain"]))
    assert features["similarity_gap"] <= 0 and 0 < features["chunk_rank"] <= 1
    # the features of every candidate are finite, one row each
    assert found.features.shape == (len(found.rows), len(FEATURES)) and np.isfinite(found.features).all()
