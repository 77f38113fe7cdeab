"""Both models side by side: build time, warm ask, one ONNX query encode, peak memory.

    python bench/models.py [MODEL ...] [--no-write]   (default: all-MiniLM-L6-v2 and all-mpnet-base-v2)

Each model runs in its own process: the IPU profile is built into a temporary folder, the dev
turns are asked once to warm up, then three times while each ask and one encode of the same
question are timed. Prints one JSON line per model, with the load average (the machine is shared),
and saves them as the "models" part of bench/results.json (--no-write: print only). The part is
one side-by-side comparison: a run replaces it whole, and saves nothing if a model failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import ROOT, save

MODELS = ["sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-mpnet-base-v2"]


def measure(model: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from qa.cli import set_offline_env

    set_offline_env()
    import qa

    tmp = tempfile.mkdtemp()
    try:
        started = time.perf_counter()
        qa.build_index(corpus_dir=ROOT / "corpus", index_dir=f"{tmp}/index", model=model)
        build = time.perf_counter() - started
        bot = qa.load(f"{tmp}/index")
        questions = [json.loads(line)["turns"][0] for line in (ROOT / "tests/data/dev.jsonl").open()]
        for q in questions:
            bot.ask(q)
        asks, encodes = [], []
        for _ in range(3):
            for q in questions:
                t = time.perf_counter()
                bot.ask(q)
                asks.append(time.perf_counter() - t)
                t = time.perf_counter()
                bot.encode(q)
                encodes.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(tmp)
    ask, encode = statistics.median(asks), statistics.median(encodes)
    return {"model": Path(model).name, "build_s": round(build, 1), "ask_ms": round(1000 * ask, 1),
            "encode_ms": round(1000 * encode, 1), "ask_per_encode": round(ask / encode, 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "load_average": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=MODELS, help="models to compare (default: the two above)")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    p.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)  # one model, in this process
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    runs, failed = [], []
    for model in args.models:
        out = subprocess.run([sys.executable, __file__, "--child", model], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{model}: failed\n{out.stderr[-2000:]}")
            failed.append(model)
            continue
        line = out.stdout.strip().splitlines()[-1]
        print(line)
        runs.append(json.loads(line))
    if failed:
        return 1
    if not args.no_write:
        save("models", {"runs": runs})
        print("saved the models part of bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
