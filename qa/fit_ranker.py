"""Fit the sentence ranker (qa/ranking.py) on the tune halves of every question set.

    python -m qa.fit_ranker [--model all-mpnet-base-v2 ...] [--sets tests/data/sets] [--rows rows.npz]

For each model: every set's corpus is indexed (cached, as `qa eval` does); every answerable *tune*
item is asked (earlier turns first, with the bot's own replies as history) and its last turn's
candidates are gathered with their features (ranking.FEATURES). A candidate is a positive when the
quote the bot would make of it holds the answer (qa.evaluate.holds_answer: the answer's span for
SQuAD, its words elsewhere). The ranker is a linear score fitted as a softmax over each question's
candidates (the likelihood of its positives), with an L2 penalty on its distance from the hand-set
score it replaces (ranking.HAND); questions whose candidates hold no
answer teach nothing and are left out. Each set's questions weigh 1/sqrt(its count) so that SQuAD's
hundreds do not drown the profiles' dozens while still counting for more.

The penalty is chosen by leave-one-set-out on tune: for each set, the ranker fitted on the others
ranks its questions; the mean over sets of "the first candidate holds the answer" decides. The
figures of that choice, and of the hand-set score it replaces (ranking.HAND), go into
qa/ranker.json with the fit. Test halves are never read here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .evaluate import tuning_arguments
from .ranking import RANKER_FILE

PENALTIES = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0)


def collect(model: str, sets: Path, cache: Path | None) -> list[dict]:
    """One row per answerable tune item whose last turn found candidates: set, id, features, labels."""
    from .answer import Candidate
    from .quoting import make_quote, paragraph_quote
    from .cli import set_offline_env
    from .evaluate import converse, holds_answer, item_split, suite_bots
    from .ranking import HAND

    set_offline_env()
    rows = []
    for name, bot, items in suite_bots(sets, model, cache, ranker=HAND, decide=False):
        started, kept = time.perf_counter(), 0
        for item in items:
            if item_split(item) != "tune" or item.get("expect") is None:
                continue
            history = converse(bot, item["turns"][:-1])[2]
            searched = bot.search(item["turns"][-1], history)
            if searched is None or searched[3] is None:
                continue
            query, candidates, hints, found = searched
            labels = []
            for i in range(len(found.rows)):
                cand = Candidate(int(found.rows[i]), int(found.chunks[i]), 0.0, float(found.similarity[i]))
                quote = (paragraph_quote(bot.data, bot.units, cand) if query.broad
                         else make_quote(bot.data, bot.units, cand))
                labels.append(holds_answer(item, quote))
            rows.append({"set": name, "id": item["id"], "x": found.features.copy(), "y": np.array(labels, bool)})
            kept += 1
        print(f"  {name}: {kept} questions in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def _weights(rows: list[dict]) -> np.ndarray:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["set"]] = counts.get(r["set"], 0) + 1
    w = np.array([1.0 / np.sqrt(counts[r["set"]]) for r in rows])
    return w / w.mean()


def fit(rows: list[dict], penalty: float):
    """A Ranker fitted on rows (those with a positive), with an L2 penalty on its distance from the hand-set
    score (ranking.HAND): with little data it stays near what was set by hand, with more it moves."""
    from scipy.optimize import minimize

    from .ranking import HAND, Ranker

    rows = [r for r in rows if r["y"].any()]
    x_all = np.concatenate([r["x"] for r in rows]).astype(np.float64)
    mean, scale = x_all.mean(axis=0), x_all.std(axis=0)
    binary = np.array([set(np.unique(c)) <= {0.0, 1.0} for c in x_all.T])
    mean = np.where(binary, 0.0, mean)  # a yes/no feature stays 0/1 (see fit_decision: no blown-up rare flags)
    scale = np.where(binary | (scale <= 1e-9), 1.0, scale)
    xs = [(r["x"] - mean) / scale for r in rows]
    ys = [r["y"] for r in rows]
    weights = _weights(rows)

    # HAND scores raw features: on standardised ones the same score is weights x scale. The fit is
    # a x prior + d: the hand-set direction at a fitted sharpness a, moved by d, which the penalty holds back.
    prior = np.array(HAND.weights) * scale

    def loss(params):
        a, d = params[0], params[1:]
        w = a * prior + d
        total, grad_w = 0.0, np.zeros_like(w)
        for x, y, weight in zip(xs, ys, weights):
            s = x @ w
            p = np.exp(s - s.max())
            z, zp = p.sum(), p[y].sum()
            total -= weight * (np.log(zp) - np.log(z))
            grad_w -= weight * ((p[y] / zp) @ x[y] - (p / z) @ x)
        n = len(xs)
        grad_w /= n
        return total / n + penalty * (d @ d), np.concatenate([[grad_w @ prior], grad_w + 2 * penalty * d])

    result = minimize(loss, np.concatenate([[1.0], np.zeros(len(prior))]), jac=True, method="L-BFGS-B",
                      options={"maxiter": 1000})
    w = result.x[0] * prior + result.x[1:]
    return Ranker(tuple(float(v) for v in w), tuple(mean.tolist()), tuple(scale.tolist()))


def first_right(ranker, rows: list[dict]) -> float:
    """Share of rows (all answerable questions, with or without a positive) whose top candidate is one."""
    if not rows:
        return 0.0
    return sum(bool(r["y"][int(np.argmax(ranker.score(r["x"].astype(np.float32))))]) for r in rows) / len(rows)


def held_out(rows: list[dict], penalty: float | None) -> dict[str, float]:
    """Per set: first-candidate-right of the ranker fitted on the other sets (HAND when penalty is None)."""
    from .ranking import HAND

    out = {}
    for name in sorted({r["set"] for r in rows}):
        mine = [r for r in rows if r["set"] == name]
        ranker = HAND if penalty is None else fit([r for r in rows if r["set"] != name], penalty)
        out[name] = round(first_right(ranker, mine), 3)
    return out


def main() -> None:
    args = tuning_arguments(__doc__.splitlines()[0], RANKER_FILE, "keep the collected features here and reuse them")
    from .decision import model_key
    from .ranking import HAND

    fitted = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {"models": {}}
    for model in args.models:
        key = model_key(model)
        cached = args.rows and args.rows.with_suffix(f".{key}.json")
        if cached and cached.exists():
            rows = [dict(r, x=np.array(r["x"], np.float32), y=np.array(r["y"], bool))
                    for r in json.loads(cached.read_text("utf-8"))]
        else:
            rows = collect(model, args.sets, args.cache)
            if cached:
                cached.write_text(json.dumps([dict(r, x=r["x"].tolist(), y=r["y"].tolist()) for r in rows]), "utf-8")
        reachable = sum(bool(r["y"].any()) for r in rows)
        print(f"{model}: {len(rows)} answerable tune questions, {reachable} with the answer among the candidates")
        figures = {"hand": held_out(rows, None)}
        for penalty in PENALTIES:
            figures[str(penalty)] = held_out(rows, penalty)
        for label, per_set in figures.items():
            print(f"  {label:>6}: mean {np.mean(list(per_set.values())):.3f}  {json.dumps(per_set)}")
        best = max(PENALTIES, key=lambda c: np.mean(list(figures[str(c)].values())))
        ranker = fit(rows, best)
        fitted["models"][key] = {
            "ranker": ranker.as_dict(),
            "fitted_on": {"split": "tune", "questions": len(rows), "with_answer_in_candidates": reachable,
                          "sets": sorted({r["set"] for r in rows}), "penalty": best},
            "leave_one_set_out": {"first_candidate_right": figures[str(best)],
                                  "hand_set_score": figures["hand"]},
            "tune": {"first_candidate_right": round(first_right(ranker, rows), 3),
                     "hand_set_score": round(first_right(HAND, rows), 3)},
        }
        print(f"  chose penalty {best}; tune first-candidate-right {first_right(ranker, rows):.3f} "
              f"(hand {first_right(HAND, rows):.3f})")
    args.out.write_text(json.dumps(fitted, indent=2) + "\n", "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
