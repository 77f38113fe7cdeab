"""Fit the answer/uncertain/decline decision (qa/decision.py) on the tune halves of every question set.

    python -m qa.fit_decision [--model all-MiniLM-L6-v2 --model all-mpnet-base-v2] [--sets tests/data/sets]

For each model: every set's corpus is indexed (cached, as `qa eval` does), every *tune* item is asked
with the decision switched off, and the signals of its last turn are kept with a label: 1 when the
item is answerable and the first quote holds the answer, else 0. A logistic regression
(scikit-learn, `pip install -e '.[tune]'`) is fitted on the standardised signals; the two thresholds
are the pair that costs least on the same items (below). The result and the figures it was fitted on
go into qa/decision.json. Test halves are never read here: `python -m qa eval tests/data/sets`
reports them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .decision import DECISION_FILE
from .evaluate import tuning_arguments

# What a wrong outcome costs, per item (tune half). A declined answerable question, an off-topic one
# that is not declined and an unanswerable one answered as if the documents said it are the errors
# users notice most. A right answer marked uncertain (shown, under a caveat) costs less; so does a
# wrong first quote shown as an answer (a ranking miss, marked or not); an unanswerable question
# shown with its closest passage under a caveat is honest. With MiniLM's signals on the tune halves,
# (right-uncertain, wrong-answered) = (0.25, 0.5) marked half the right answers uncertain and
# (0.5, 0.25) answered a third of the unanswerable ones; (0.4, 0.3) is between.
COST = {
    ("answerable-right", "declined"): 1.0, ("answerable-right", "uncertain"): 0.4,
    ("answerable-wrong", "declined"): 0.5, ("answerable-wrong", "answered"): 0.3,
    ("offtopic", "uncertain"): 1.0, ("offtopic", "answered"): 1.0,
    ("unanswerable", "uncertain"): 0.1, ("unanswerable", "answered"): 1.0,
}


def collect(model: str, sets: Path, cache: Path | None) -> list[dict]:
    """The signals and labels of every tune item of every set, asked with the decision off."""
    from .cli import set_offline_env
    from .evaluate import ask_item, holds_answer, item_split, suite_bots

    set_offline_env()
    rows = []
    for name, bot, items in suite_bots(sets, model, cache, decide=False):  # the shipped ranker; all "answered"
        for item in items:
            if item_split(item) != "tune":
                continue
            answer, signals = ask_item(bot, item)
            expect = item.get("expect")
            right = bool(answer.quotes) and holds_answer(item, answer.quotes[0])
            group = ("answerable-right" if right else "answerable-wrong") if expect is not None else (
                "offtopic" if item["kind"] == "offtopic" else "unanswerable")
            if signals:
                rows.append({"set": name, "id": item["id"], "group": group, "label": int(right), "signals": signals})
    return rows


OUTCOMES = ("answered", "uncertain", "declined")
# The mix of questions the decision is fitted for: each kind of item weighs this share in all, however many
# of that kind happen to be written (SQuAD alone brings ~800 unanswerable tune items). A product decision:
# most questions people ask are answerable; some are not; a few are about something else entirely.
MIX = {"answerable": 0.7, "unanswerable": 0.2, "offtopic": 0.1}


def mix_weights(rows: list[dict]) -> list[float]:
    """Each row's weight: its kind's share of MIX, spread over the rows of that kind (mean 1)."""
    kind = lambda r: "answerable" if r["group"].startswith("answerable") else r["group"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[kind(r)] = counts.get(kind(r), 0) + 1
    present = sum(MIX[k] for k in counts)
    return [MIX[kind(r)] / present / counts[kind(r)] * len(rows) for r in rows]


def fit(rows: list[dict]) -> dict:
    """The fitted Decision (as a dict) and its figures on the items it was fitted on."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from .decision import SIGNALS, Decision

    # nothing near: the cut on `best` that misclassifies fewest off-topic vs answerable items, midway in its gap
    weight = dict(zip((id(r) for r in rows), mix_weights(rows)))
    off = sorted((r["signals"]["best"], weight[id(r)]) for r in rows if r["group"] == "offtopic")
    on = sorted((r["signals"]["best"], weight[id(r)]) for r in rows if r["group"].startswith("answerable"))
    values = sorted({b for b, _ in off + on})
    errors = lambda t: sum(w for b, w in off if b >= t) + sum(w for b, w in on if b < t)
    cut = min(((errors(t), -t) for t in values + [values[-1] + 1e-6]), key=lambda e: e)
    above = -cut[1]
    below = max([v for v in values if v < above], default=above)
    near = round((above + below) / 2, 4)

    kept = [r for r in rows if r["signals"]["best"] >= near]
    x = np.array([[r["signals"][s] for s in SIGNALS] for r in kept], dtype=float)
    y = np.array([r["label"] for r in kept])
    scaler = StandardScaler().fit(x)
    # A yes/no signal is left as 0/1: standardised, one that a single tune item sets would be blown up
    # to a spread of ~0.07 and its weight ×15, a hard rule fitted on one item.
    binary = np.array([set(np.unique(column)) <= {0.0, 1.0} for column in x.T])
    mean = np.where(binary, 0.0, scaler.mean_)
    scale = np.where(binary | (scaler.scale_ <= 0), 1.0, scaler.scale_)
    lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y,
                                                     sample_weight=np.array([weight[id(r)] for r in kept]))
    decision = Decision(tuple(lr.coef_[0].tolist()), float(lr.intercept_[0]), 1.0, 0.0, near,
                        tuple(mean.tolist()), tuple(scale.tolist()))
    p = np.array([decision.probability(r["signals"]) for r in rows])
    # every pair of thresholds on a grid of 0.005, each row's cost of each outcome worked out once
    w = np.array([weight[id(r)] for r in rows])
    cost_of = {o: w * np.array([COST.get((r["group"], o), 0.0) for r in rows]) for o in OUTCOMES}
    far = np.array([r["signals"]["best"] < near for r in rows])
    cuts = np.round(np.arange(0, 1.0001, 0.005), 3)
    best = None
    for i, lo in enumerate(cuts):
        for hi in cuts[i:]:
            answered, uncertain = ~far & (p >= hi), ~far & (p >= lo) & (p < hi)
            cost = float(np.where(answered, cost_of["answered"], np.where(uncertain, cost_of["uncertain"],
                                                                        cost_of["declined"])).sum())
            if best is None or cost < best[0] - 1e-9:
                best = (cost, float(lo), float(hi))
    cost, lo, hi = best
    outcomes = ["declined" if f else "answered" if q >= hi else "uncertain" if q >= lo else "declined"
                for f, q in zip(far, p)]
    decision = Decision(decision.weights, decision.bias, hi, lo, near, decision.mean, decision.scale)
    kept_p = np.array([decision.probability(r["signals"]) for r in kept])
    return {
        "decision": decision.as_dict(),
        "fitted_on": {"split": "tune", "items": len(rows), "positives": int(sum(r["label"] for r in rows)),
                      "sets": sorted({r["set"] for r in rows}), "mix": MIX, "cost": {" / ".join(k): v for k, v in COST.items()}},
        "tune": {"auc": round(float(roc_auc_score(y, kept_p)), 3), "cost": round(cost, 2),
                 "outcomes": outcome_table(rows, outcomes)},
    }


def outcome_table(rows: list[dict], outcomes: list[str]) -> dict[str, dict[str, int]]:
    """How many items of each group got each outcome: {"unanswerable": {"uncertain": 28, …}, …}."""
    table: dict[str, dict[str, int]] = {}
    for r, outcome in zip(rows, outcomes):
        table.setdefault(r["group"], {}).setdefault(outcome, 0)
        table[r["group"]][outcome] += 1
    return table


def held_out(rows: list[dict]) -> dict:
    """How the decision transfers to a corpus it was not fitted on: for each set, the decision fitted on
    the other sets' tune items, applied to this set's. The product meets corpora nobody tuned for;
    a decision that leaned on one corpus's score scale would show it here, not in the tune figures."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from .decision import Decision

    scores, labels, sets = [], [], {}
    for name in sorted({r["set"] for r in rows}):
        decision = Decision.from_dict(fit([r for r in rows if r["set"] != name])["decision"])
        mine = [r for r in rows if r["set"] == name]
        sets[name] = outcome_table(mine, [decision.outcome(r["signals"]) for r in mine])
        # the AUC over the items past the "nothing near" cut, as fit() reports it for the fitted items
        near = [r for r in mine if r["signals"]["best"] >= decision.near]
        scores += [decision.probability(r["signals"]) for r in near]
        labels += [r["label"] for r in near]
    return {"auc": round(float(roc_auc_score(np.array(labels), np.array(scores))), 3), "outcomes": sets}


def tradeoff(rows: list[dict], decision) -> list[str]:
    """What moving the "answered" threshold would trade, on the same items: unanswerable questions
    caught (declined or uncertain) against right first quotes marked uncertain."""
    share = lambda group, test: sum(map(test, group)) / len(group) if group else 0.0
    groups = {g: [r for r in rows if r["group"] == g] for g in ("unanswerable", "answerable-right", "answerable-wrong")}
    lines = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        held = lambda r: r["signals"]["best"] < decision.near or decision.probability(r["signals"]) < threshold
        lines.append(f"  answered at p >= {threshold:.1f}: unanswerable caught {share(groups['unanswerable'], held):.0%}, "
                     f"right first quotes marked uncertain {share(groups['answerable-right'], held):.0%}, "
                     f"wrong ones {share(groups['answerable-wrong'], held):.0%}")
    return lines


def main() -> None:
    args = tuning_arguments(__doc__.splitlines()[0], DECISION_FILE,
                            "keep the collected signals here (one file per model) and reuse them when there")
    from .decision import Decision, model_key

    fitted = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {"models": {}}
    for model in args.models:
        cached = args.rows and args.rows.with_suffix(f".{model_key(model)}.json")
        if cached and cached.exists():
            rows = json.loads(cached.read_text("utf-8"))
        else:
            rows = collect(model, args.sets, args.cache)
            if cached:
                cached.write_text(json.dumps(rows), "utf-8")
        result = fit(rows)
        result["held_out"] = held_out(rows)
        fitted["models"][model_key(model)] = result
        print(model, json.dumps(result["tune"]), json.dumps(result["decision"]["weights"]))
        print("  each set held out:", json.dumps(result["held_out"]))
        print(f"  the trade-off (shipped threshold {result['decision']['answer']}):",
              *tradeoff(rows, Decision.from_dict(result["decision"])), sep="\n")
    args.out.write_text(json.dumps(fitted, indent=2) + "\n", "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
