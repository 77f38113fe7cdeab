"""Where the abstention threshold comes from: the support of every item of one or more question sets.

    python bench/calibrate.py INDEX QUESTIONS.jsonl [INDEX QUESTIONS.jsonl ...]

Prints each item's support (see Bot.support) with whether the corpus answers it, then the
lowest support of an answerable item and the highest of an unanswerable one: the threshold
(Scoring.min_support) belongs between the two.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.cli import set_offline_env  # noqa: E402


def main(args: list[str]) -> int:
    set_offline_env()
    import qa
    from qa.conversation import resolve
    from qa.evaluate import load_items

    answerable, unanswerable = [], []
    for index, questions in zip(args[::2], args[1::2]):
        bot = qa.load(index, check_stale=False)
        for item in load_items(questions):
            history = []
            for turn in item["turns"][:-1]:
                reply = bot.ask(turn, history=history)
                history += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply.text}]
            query = bot.retriever.lexicon.correct(resolve(item["turns"][-1], history).query)
            support = bot.support(query, bot.candidates(query)[0])
            (answerable if item["expect"] is not None else unanswerable).append((support, item["id"]))
            print(f"{item['id']:>5} {item['kind']:<12} {'answerable' if item['expect'] else 'not       '} "
                  f"support {support:.3f}  {query}")
    low, high = min(answerable), max(unanswerable)
    print(f"\nlowest answerable {low[0]:.3f} ({low[1]}), highest unanswerable {high[0]:.3f} ({high[1]}); "
          f"midpoint {(low[0] + high[0]) / 2:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
