"""The designs of the sentence vectors, compared on every question set: `python bench/embedding_designs.py
late late+plain placed placed+plain` runs `python -m qa eval tests/data/sets` once per design (each with
its own index cache, --cache PREFIX-<design>) and prints its test and tune tables (docs/EMBEDDING.md).

`python bench/embedding_designs.py --title` prints what a long title does to a short sentence's
similarity with its question, read each way (the README's example: a report's fellowship stipend).

The design is `qa.index.SENTENCE_DESIGN` (what a build makes and what a load expects); this script sets
it for its own process only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("designs", nargs="*")
    p.add_argument("--title", action="store_true", help="the long-title example, each way of reading the sentence")
    p.add_argument("--cache", default="/tmp/qa-eval-build", help="prefix of each design's index cache")
    p.add_argument("--sets", default=str(ROOT / "tests" / "data" / "sets"))
    args = p.parse_args()
    import qa.index
    from qa.cli import main as cli

    if args.title:
        long_title()

    for design in args.designs:
        if design not in qa.index.SENTENCE_DESIGNS:
            print(f"unknown design {design!r}: one of {', '.join(qa.index.SENTENCE_DESIGNS)}", file=sys.stderr)
            return 2
        qa.index.SENTENCE_DESIGN = design
        started = time.perf_counter()
        print(f"\n## {design} (load average {os.getloadavg()[0]:.1f})", flush=True)
        cli(["eval", args.sets, "--cache", f"{args.cache}-{design}"])
        print(f"\n{design}: {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


QUESTION = "How much is the monthly stipend for fellows?"
SECTION = "Programmes › Data Literacy Fellowship"
CHUNK = ("The fellowship trains public servants from member cities in the use of open data. Twelve fellows "
         "started in September. Each fellow receives a monthly stipend of EUR 1,850 and is paired with a mentor "
         "from outside their own organisation.")
SENTENCE = "Each fellow receives a monthly stipend of EUR 1,850 and is paired with a mentor from outside their own organisation."
TITLES = {"long": "Boreal Alliance for Open Data — Annual Report 2025", "short": "Report", "none": ""}


def long_title() -> None:
    """Cosine of the question with the stipend sentence: alone, placed (embedded on its own after its
    title and section), and late (pooled from its chunk's pass), under a long, a short and no title."""
    from qa.chunking import embedding_text
    from qa.embedding import OnnxEmbedder
    from qa.models import DEFAULT_MODEL

    model = OnnxEmbedder.for_model(DEFAULT_MODEL)
    q = model.embed([QUESTION])[0]
    alone = float(model.embed([SENTENCE])[0] @ q)
    print(f"question: {QUESTION!r}\nsentence alone: {alone:.3f}\n")
    print("| title | placed | late (in its chunk) |\n|---|---:|---:|")
    for name, title in TITLES.items():
        section = SECTION if title else ""
        placed = float(model.embed([embedding_text(title, section, SENTENCE)])[0] @ q) if title else alone
        text = embedding_text(title, section, CHUNK) if title else CHUNK
        start = text.index(SENTENCE)
        _, [rows] = model.embed_spans([text], [[(start, start + len(SENTENCE))]])
        print(f"| {name} ({title or 'none'}) | {placed:.3f} | {float(rows[0] @ q):.3f} |")


if __name__ == "__main__":
    sys.exit(main())
