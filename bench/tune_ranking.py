"""Compare sentence-scoring weights on the tune halves of every question set (ranking only).

    python bench/tune_ranking.py                                   # the shipped Scoring
    python bench/tune_ranking.py chunk_weight=0.25,0.5,1 lexical_weight=0.1,0.25,0.5

Each argument is a `Scoring` field and the values to try; every combination is run. For each, the
first-quote rate (hit@1), top-3 and right-document rates of the tune half of every set are printed,
and their mean over sets. The decision is off: this measures where the answer ranks, not whether the
bot dares to give it. Test halves are never read here (`python -m qa eval tests/data/sets` reports
them), and query vectors are cached, so a grid costs little more than one run.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
from dataclasses import fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    import qa
    from qa.answer import Scoring
    from qa.cli import set_offline_env
    from qa.embedding import DEFAULT_MODEL
    from qa.evaluate import eval_index, evaluate, load_items, load_suite

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", nargs="*", help="field=value,value,… (Scoring fields)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--sets", type=Path, default=ROOT / "tests" / "data" / "sets")
    parser.add_argument("--kind", help="only the items of this kind (e.g. followup)")
    args = parser.parse_args(argv)
    names = {f.name: f.type for f in fields(Scoring)}
    grid: dict[str, list[float]] = {}
    for spec in args.grid:
        key, _, values = spec.partition("=")
        if key not in names:
            parser.error(f"{key!r} is not a Scoring field ({', '.join(names)})")
        grid[key] = [int(v) if names[key] in (int, "int") else float(v) for v in values.split(",")]

    set_offline_env()
    bots = {}
    for name, corpus in load_suite(args.sets).items():
        folder, _ = eval_index(name, corpus, args.model)
        bot = qa.load(folder)
        bot.decision = None
        bot.encoder.embed = _tupled(bot.encoder.embed)
        items = load_items(args.sets / f"{name}.jsonl")
        bots[name] = (bot, [i for i in items if args.kind in (None, i["kind"])])

    print("| variant | " + " | ".join(f"{n} hit@1 / @3 / doc" for n in bots) + " | mean hit@1 | mean hit@3 |")
    print("|---" * (len(bots) + 3) + "|")
    for combo in itertools.product(*grid.values()) if grid else [()]:
        change = dict(zip(grid, combo))
        cells, h1, h3 = [], [], []
        for bot, items in bots.values():
            bot.scoring = replace(Scoring(min_support=0.0), **change)
            m = evaluate(bot, items, split="tune").metrics()  # only the tune half is ever tuned on
            cells.append(f"{m['hit@1']:.0%} / {m['hit@3']:.0%} / {m['doc@1']:.0%}")
            h1.append(m["hit@1"])
            h3.append(m["hit@3"])
        label = " ".join(f"{k}={v:g}" for k, v in change.items()) or "shipped"
        print(f"| {label} | " + " | ".join(cells) + f" | {sum(h1) / len(h1):.1%} | {sum(h3) / len(h3):.1%} |",
              flush=True)


def _tupled(embed):
    """embed(list) as a function of a tuple, so that it can be cached; returns the same arrays."""
    def call(texts):
        return embed(list(texts))
    cached = functools.lru_cache(maxsize=None)(call)
    return lambda texts: cached(tuple(texts))


if __name__ == "__main__":
    main()
