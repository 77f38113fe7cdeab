"""The answer / uncertain / decline decision: the shipped fit, its fallback, its thresholds, on real data."""

from __future__ import annotations

import json
import logging

import pytest

from qa.decision import DECISION_FILE, NEVER_SURE, SIGNALS, Decision, load_decision, model_key
from qa.evaluate import load_suite
from qa.models import MINILM_MODEL, MPNET_MODEL

from conftest import DATA


@pytest.mark.parametrize("model", [MPNET_MODEL, MINILM_MODEL])
def test_each_model_ships_a_decision_fitted_on_the_tune_halves_of_every_set(model):
    """A signal added to the code, or a set added to the suite, without a refit fails here
    (python -m qa.fit_decision)."""
    entry = json.loads(DECISION_FILE.read_text("utf-8"))["models"][model_key(model)]
    assert entry["decision"]["signals"] == list(SIGNALS)
    assert entry["fitted_on"]["split"] == "tune"
    assert entry["fitted_on"]["sets"] == sorted(load_suite(DATA / "sets"))
    decision = load_decision(model)
    assert decision is not None and 0 <= decision.uncertain <= decision.answer <= 1
    assert entry["tune"]["auc"] > 0.7  # the fit separates right first quotes from the rest


def test_a_decision_fitted_on_other_signals_is_not_used(tmp_path, caplog):
    fitted = json.loads(DECISION_FILE.read_text("utf-8"))
    entry = fitted["models"][model_key(MPNET_MODEL)]
    entry["decision"]["signals"] = entry["decision"]["signals"][:-1]
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(fitted), "utf-8")
    with caplog.at_level(logging.WARNING, logger="qa.decision"):
        assert load_decision(MPNET_MODEL, path) is None  # the bot then uses NEVER_SURE: no answer is sure
    assert "python -m qa.fit_decision" in caplog.text
    assert load_decision("some/unfitted-model", path) is None
    assert load_decision(MPNET_MODEL, tmp_path / "missing.json") is None


def test_outcomes_follow_the_cut_and_the_two_thresholds():
    # only "score" counts: probability 0.5 at score 0, rising with it
    weights = tuple(1.0 if name == "score" else 0.0 for name in SIGNALS)
    decision = Decision(weights, 0.0, answer=0.7, uncertain=0.4, near=0.3)
    signals = lambda best, score: {name: 0.0 for name in SIGNALS} | {"best": best, "score": score}
    assert decision.outcome(signals(0.9, 2.0)) == "answered"  # p = 0.88
    assert decision.outcome(signals(0.9, 0.0)) == "uncertain"  # p = 0.5
    assert decision.outcome(signals(0.9, -2.0)) == "declined"  # p = 0.12: near, but not what was asked
    assert decision.outcome(signals(0.2, 5.0)) == "declined"  # nothing near, however the rest scores
    assert decision.probability(signals(0.9, 1e6)) == pytest.approx(1.0)  # no overflow


def test_the_shipped_decision_on_the_seed(seed_bot):
    decision = seed_bot.decision
    assert isinstance(decision, Decision)
    answer, signals = seed_bot.respond("How many member parliaments does the IPU have?")
    assert set(signals) == set(SIGNALS)
    assert answer.outcome == "answered" and decision.probability(signals) >= decision.answer
    assert "179 national member parliaments" in answer.quotes[0].text

    answer, signals = seed_bot.respond("Who won the 2018 FIFA World Cup?")
    assert signals["best"] < decision.near
    assert answer.outcome == "declined" and answer.quotes == [] and "do not answer" in answer.text


def test_without_a_fitted_decision_no_answer_is_sure(seed_bot, monkeypatch):
    """A model nobody fitted a decision for (a folder given as --model): its scores mean nothing yet, so
    the bot shows the closest passage under the caveat rather than claim an answer or refuse one."""
    monkeypatch.setattr(seed_bot, "decision", NEVER_SURE)
    answer = seed_bot.ask("How many member parliaments does the IPU have?")
    assert answer.outcome == "uncertain" and len(answer.quotes) == 1
    assert "179 national member parliaments" in answer.quotes[0].text and "not sure" in answer.text
