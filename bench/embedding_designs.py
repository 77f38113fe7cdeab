"""The designs of the sentence vectors, compared on every question set: `python bench/embedding_designs.py
late late+plain placed placed+plain` runs `python -m qa eval tests/data/sets` once per design (each with
its own index cache, --cache PREFIX-<design>) and prints its test and tune tables (docs/EMBEDDING.md).

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
    p.add_argument("designs", nargs="+")
    p.add_argument("--cache", default="/tmp/qa-eval-build", help="prefix of each design's index cache")
    p.add_argument("--sets", default=str(ROOT / "tests" / "data" / "sets"))
    args = p.parse_args()
    import qa.index
    from qa.cli import main as cli

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


if __name__ == "__main__":
    sys.exit(main())
