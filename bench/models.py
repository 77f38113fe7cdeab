"""Both models side by side: build time, warm ask, one ONNX query encode, peak memory.

    python bench/models.py [MODEL ...]   (default: all-MiniLM-L6-v2 and all-mpnet-base-v2)

Each model runs in its own process: the IPU profile is built into a temporary folder, the dev
turns are asked once to warm up, then three times while each ask and one encode of the same
question are timed. Prints one JSON line per model, with the load average (the machine is shared).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
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
    return {"model": model, "build_s": round(build, 1), "ask_ms": round(1000 * ask, 1),
            "encode_ms": round(1000 * encode, 1), "ask_per_encode": round(ask / encode, 2),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "load_average": round(os.getloadavg()[0], 1)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2])))
        return
    for model in sys.argv[1:] or MODELS:
        out = subprocess.run([sys.executable, __file__, "--child", model], capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1] if out.returncode == 0 else f"{model}: failed\n{out.stderr[-2000:]}")


if __name__ == "__main__":
    main()
