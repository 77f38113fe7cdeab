"""What each hand rule of quoting gains: every tune item asked with the rule on and off.

    python bench/ablate_rules.py [--model all-mpnet-base-v2] [--sets tests/data/sets] [--json out.json]

The rules are the switches of qa.answer.Scoring (paragraphs). For each,
every answerable *tune* item of every set is asked with all rules on and with that one off (the
decision switched off, so that only the quotes differ), and the items whose first quote holds the
answer in one run and not in the other are counted per set. A rule stays when it gains at least two
items net, across at least two sets (docs/EVALUATION.md); the median first quote is printed beside,
so that a rule that only buys hits with longer quotes shows it. The figures of rules removed for
failing the bar are kept in the file under "removed", as they were last measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = ("paragraphs",)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sentence-transformers/all-mpnet-base-v2")
    p.add_argument("--sets", type=Path, default=ROOT / "tests" / "data" / "sets")
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()

    from qa.answer import Scoring
    from qa.cli import set_offline_env
    from qa.bot import Bot
    from qa.evaluate import evaluate, suite_bots

    set_offline_env()
    hits: dict[str, dict[str, set[str]]] = {}  # variant -> set -> ids whose first quote holds the answer
    lengths: dict[str, list[int]] = {}
    for name, bot, items in suite_bots(args.sets, args.model, args.cache):
        answerable = [i for i in items if i.get("expect") is not None]
        for variant in ("all", *RULES):
            scoring = Scoring() if variant == "all" else replace(Scoring(), **{variant: False})
            report = evaluate(Bot(bot.data, bot.encoder, scoring=scoring, decide=False), answerable, split="tune")
            hits.setdefault(variant, {})[name] = {i.id for i in report.items if i.hit1}
            lengths.setdefault(variant, []).extend(len(i.quotes[0]) for i in report.items if i.quotes)
        print(f"  {name}: {len(report.items)} answerable tune items", file=sys.stderr)

    figures = {}
    print(f"| rule off | items gained by the rule | lost by it | net | sets gaining | median first quote (all on: "
          f"{statistics.median(lengths['all']):g}) | verdict |")
    print("|---|---:|---:|---:|---|---:|---|")
    for rule in RULES:
        gained = {s: len(hits["all"][s] - hits[rule][s]) for s in hits["all"]}
        lost = {s: len(hits[rule][s] - hits["all"][s]) for s in hits["all"]}
        net = sum(gained.values()) - sum(lost.values())
        sets = sorted(s for s in gained if gained[s] > lost[s])
        keep = net >= 2 and len(sets) >= 2
        figures[rule] = {"gained": gained, "lost": lost, "net": net, "sets": sets, "keep": keep,
                         "median_first_quote_chars": statistics.median(lengths[rule])}
        print(f"| {rule} | {sum(gained.values())} | {sum(lost.values())} | {net:+d} | {', '.join(sets) or '-'} | "
              f"{statistics.median(lengths[rule]):g} | {'keep' if keep else 'drop'} |")
    if args.json:
        removed = json.loads(args.json.read_text("utf-8")).get("removed", {}) if args.json.exists() else {}
        args.json.write_text(json.dumps({"model": args.model, "split": "tune", "rules": figures, "removed": removed},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
