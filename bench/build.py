"""How fast, and in how much memory, a folder is indexed: `python bench/build.py [--large] [--model M]`.

In one run, each step in its own child process (peak RSS is the child's ru_maxrss, from wait4):
1. the eight SQuAD articles (../shared/squad/squad2-eight-articles.json) written as one .txt per article
   (title, blank line, paragraphs separated by blank lines): ~290 KB;
2. `qa.build_index` of that folder into a fresh index folder (the ONNX export already in the model
   cache: run any build once first): wall time of the whole process, peak RSS, texts/s and KB/s;
3. one sentence-transformers pass of the same model over the same text cut into ~1,000-character
   pieces at paragraph and sentence boundaries: wall time of the whole script and of `encode` alone;
4. the ratio of the two (whole processes; and build_index against encode alone);
5. the seed profile (corpus/) built into a new index folder, against `import sentence_transformers`
   plus loading the model (each 3 times, interleaved; medians);
6. with --large: the corpus ten times over (each copy's titles numbered, so no text is reused), built
   the same way, for its peak RSS beside the small build's.

Prints the figures with the load average, and saves them as the "build" part of bench/results.json
("build-<model>" for another model than the default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import RESULTS_JSON, ROOT, child_env, read_results, save, set_env

SQUAD = ROOT.parent / "shared" / "squad" / "squad2-eight-articles.json"
PIECE_CHARS = 1000

_BUILD = """
import json, sys, time
started = time.perf_counter()
import qa
report = qa.build_index(sys.argv[1], sys.argv[2], model=sys.argv[3])
print(json.dumps({"build_index_s": time.perf_counter() - started, "documents": report.documents,
                  "chunks": report.chunks, "sentences": report.sentences, "embedded": report.embedded,
                  "reused": report.reused, "torch": "torch" in sys.modules}))
"""

_ST_PASS = """
import json, sys, time
started = time.perf_counter()
from sentence_transformers import SentenceTransformer
from qa.models import resolve_model
model = SentenceTransformer(str(resolve_model(sys.argv[2])), device="cpu")
loaded = time.perf_counter()
texts = json.loads(open(sys.argv[1], encoding="utf-8").read())
if texts:
    model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
print(json.dumps({"import_and_load_s": loaded - started, "encode_s": time.perf_counter() - loaded,
                  "max_seq_length": model.max_seq_length}))
"""


def write_squad(folder: Path, copies: int = 1) -> int:
    """The eight articles as .txt files (copies > 1: each copy's titles numbered); total UTF-8 bytes."""
    data = json.loads(SQUAD.read_text("utf-8"))["data"]
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    for n in range(copies):
        for article in data:
            title = article["title"].replace("_", " ") + (f" ({n + 1})" if copies > 1 else "")
            text = title + "\n\n" + "\n\n".join(p["context"].strip() for p in article["paragraphs"]) + "\n"
            name = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() + ".txt"
            (folder / name).write_text(text, "utf-8")
            size += len(text.encode("utf-8"))
    return size


def pieces(folder: Path, limit: int = PIECE_CHARS) -> list[str]:
    """The corpus in ~limit-character pieces: whole paragraphs while they fit, a longer paragraph cut
    at sentence ends (a plain splitter, as a user of a text splitter would have)."""
    out = []
    for path in sorted(folder.glob("*.txt")):
        current = ""
        for para in path.read_text("utf-8").split("\n\n"):
            units = [para] if len(para) <= limit else re.split(r"(?<=[.!?])\s+", para)
            for unit in units:
                if current and len(current) + 1 + len(unit) > limit:
                    out.append(current)
                    current = ""
                current = f"{current} {unit}" if current else unit
        if current:
            out.append(current)
    return out


def child(code_or_args: list[str], env: dict) -> dict:
    """Run a child process to its end: wall seconds, CPU seconds, peak RSS (MB), and its stdout's last line as JSON.

    The peak is the child's ru_maxrss (wait4), which counts from this process's RSS at the fork: keep it small.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(code_or_args, env=env, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(code_or_args[:3])} … failed ({proc.returncode}):\n{stderr[-3000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            **(json.loads(lines[-1]) if lines else {})}


def build(corpus: Path, index: Path, model: str, env: dict, size: int) -> dict:
    r = child([sys.executable, "-c", _BUILD, str(corpus), str(index), model], env)
    r["kb"] = size / 1000
    r["texts_per_s"] = r["embedded"] / r["wall_s"]
    r["kb_per_s"] = r["kb"] / r["wall_s"]
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="the model (default: qa's default, all-mpnet-base-v2)")
    p.add_argument("--large", action="store_true", help="also build the corpus ten times over (~2.9 MB)")
    p.add_argument("--no-reference", action="store_true", help="skip the sentence-transformers pass")
    p.add_argument("--no-seed", action="store_true", help="skip the seed rebuild against sentence-transformers' start")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    args = p.parse_args()
    set_env()
    from qa.models import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    env = child_env()
    # The export exists before anything is timed (a machine's first build makes it). In a child: on Linux a
    # child's ru_maxrss starts from its parent's RSS at fork, so this process must stay small.
    child([sys.executable, "-c", "import sys; from qa.embedding import onnx_encoder; onnx_encoder(sys.argv[1])", model],
          env)
    load = lambda: round(os.getloadavg()[0], 2)  # noqa: E731
    from qa.index import SENTENCE_DESIGN

    result: dict = {"model": model, "design": SENTENCE_DESIGN}
    with tempfile.TemporaryDirectory(prefix="qa-bench-build-") as tmp:
        root = Path(tmp)
        size = write_squad(root / "squad")
        texts = pieces(root / "squad")
        (root / "pieces.json").write_text(json.dumps(texts), "utf-8")
        print(f"corpus: {size / 1000:.0f} KB in 8 articles; {len(texts)} pieces of ~{PIECE_CHARS} characters "
              f"for sentence-transformers (load average {load()})", flush=True)

        r = build(root / "squad", root / "index", model, env, size)
        r["load_avg"] = load()
        result["small"] = r
        print(f"build: {r['wall_s']:.1f} s (build_index {r['build_index_s']:.1f} s), {r['chunks']} chunks, "
              f"{r['sentences']} sentences, {r['embedded']} texts embedded: {r['texts_per_s']:.1f} texts/s, "
              f"{r['kb_per_s']:.2f} KB/s, peak RSS {r['peak_rss_mb']:.0f} MB, torch imported: {r['torch']} "
              f"(load average {r['load_avg']})", flush=True)
        if not args.no_reference:
            s = child([sys.executable, "-c", _ST_PASS, str(root / "pieces.json"), model], env)
            s["texts"], s["load_avg"] = len(texts), load()
            result["sentence_transformers"] = s
            result["ratio_wall"] = r["wall_s"] / s["wall_s"]
            result["ratio_build_index_to_encode"] = r["build_index_s"] / s["encode_s"]
            print(f"sentence-transformers over {len(texts)} pieces: {s['wall_s']:.1f} s (encode {s['encode_s']:.1f} s), "
                  f"{len(texts) / s['encode_s']:.1f} pieces/s, peak RSS {s['peak_rss_mb']:.0f} MB (load average {s['load_avg']})")
            print(f"ratio build / sentence-transformers pass: {result['ratio_wall']:.2f} (whole processes), "
                  f"{result['ratio_build_index_to_encode']:.2f} (build_index / encode)", flush=True)
        if not args.no_seed:
            seed = {"build_s": [], "st_import_load_s": []}
            (root / "empty.json").write_text("[]")  # the script's import and model load, no encoding
            for n in range(3):  # interleaved, so both see the same machine
                b = child([sys.executable, "-m", "qa", "build", "--corpus", str(ROOT / "corpus"), "--index",
                           str(root / f"seed-{n}"), *(["--model", model] if args.model else [])], env)
                seed["build_s"].append(b["wall_s"])
                seed.setdefault("build_peak_rss_mb", b["peak_rss_mb"])
                s = child([sys.executable, "-c", _ST_PASS, str(root / "empty.json"), model], env)
                seed["st_import_load_s"].append(s["wall_s"])
            seed["build_median_s"] = statistics.median(seed["build_s"])
            seed["st_median_s"] = statistics.median(seed["st_import_load_s"])
            seed["ratio"] = seed["build_median_s"] / seed["st_median_s"]
            seed["load_avg"] = load()
            result["seed"] = seed
            print(f"seed rebuild into a new folder: median {seed['build_median_s']:.2f} s "
                  f"({', '.join(f'{x:.2f}' for x in seed['build_s'])}); `import sentence_transformers` + model load: "
                  f"median {seed['st_median_s']:.2f} s; ratio {seed['ratio']:.2f} (load average {seed['load_avg']})",
                  flush=True)
        if args.large:
            big = write_squad(root / "squad10", copies=10)
            r = build(root / "squad10", root / "index10", model, env, big)
            r["load_avg"] = load()
            result["large"] = r
            print(f"build x10: {r['kb']:.0f} KB, {r['wall_s']:.1f} s, {r['embedded']} texts: {r['texts_per_s']:.1f} "
                  f"texts/s, {r['kb_per_s']:.2f} KB/s, peak RSS {r['peak_rss_mb']:.0f} MB against "
                  f"{result['small']['peak_rss_mb']:.0f} MB at {result['small']['kb']:.0f} KB "
                  f"(load average {r['load_avg']})", flush=True)
    if not args.no_write:
        part = "build" if model == DEFAULT_MODEL else f"build-{Path(model).name}"  # one part per model
        previous = read_results().get(part, {})
        if "large" not in result and "large" in previous:
            result["large"] = previous["large"]  # keep the last large run's figures
        save(part, result)
        print(f"saved the {part} part of {RESULTS_JSON.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
