"""Benchmarks: `python bench/run.py [--scale] [--parts ...]`; prints figures, writes bench/results.{json,md}.

Parts:
  warm    bot.ask / bot.retrieve on the seed index beside both query encoders   (~1 min)
  cold    `python -m qa ask` to its answer, `python app.py` to its first HTTP 200 (~1 min)
  memory  RSS of the app after warm-up, and of the library alone                (~30 s)
  scale   ~1k / ~10k (/ ~100k) chunk corpora: build, size, memory, query latency,
          HNSW recall; incremental rebuild after one edited document        (minutes to hours)

By default the quick parts run; `--scale` adds the scale part (sizes from --sizes).
Results of parts not run this time are kept from the previous results.json, so the
Markdown always shows the latest figures of every part, each with its own date.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from measure import RESULTS_JSON, RESULTS_MD, ROOT, busy_share, read_results, save, set_env, write_results

QUICK = ("warm", "cold", "memory")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the quick parts only (the default)")
    p.add_argument("--scale", action="store_true", help="also the scale and incremental part")
    p.add_argument("--parts", help=f"comma-separated parts to run, from {', '.join(QUICK + ('scale',))}")
    p.add_argument("--sizes", default="1000,10000", help="scale: corpus sizes in chunks (default: 1000,10000)")
    p.add_argument("--embedder", choices=["st", "onnx"], default="st",
                   help="scale: embedder for sizes below --big-from (default: st, the default build path)")
    p.add_argument("--big-embedder", choices=["st", "onnx"], default="onnx",
                   help="scale: embedder for sizes from --big-from up (default: onnx; see results.md)")
    p.add_argument("--big-from", type=int, default=50_000, help="scale: first size built with --big-embedder")
    p.add_argument("--hnsw-sweep", action="store_true",
                   help="scale: on HNSW indexes also build other HNSW settings and measure their recall (minutes)")
    p.add_argument("--rebuild", action="store_true",
                   help="scale, with --requery: first rebuild each existing index in place (all vectors reused)")
    p.add_argument("--requery", action="store_true",
                   help="scale: only query again the sizes whose index is still in --workdir (keeps their build figures)")
    p.add_argument("--rounds", type=int, default=7, help="warm: rounds over the dev questions (default: 7)")
    p.add_argument("--runs", type=int, default=5, help="cold: launches of the CLI (default: 5; app: 3)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "qa-bench",
                   help="scale: where the text pool, corpora and indexes go (default: $TMPDIR/qa-bench)")
    p.add_argument("--wait-idle", type=float, metavar="SHARE",
                   help="before each timed part, wait (up to --wait-max s) until processes at normal priority use at "
                        "most SHARE of the CPUs (0..1) over 5 s; niced jobs, such as a scale run, do not count")
    p.add_argument("--wait-max", type=float, default=900, help="longest wait for --wait-idle, in seconds")
    p.add_argument("--pause-pid", type=int, action="append", default=[], metavar="PID",
                   help="stop this process of ours (a background scale build, say) while the quick parts run, then "
                        "continue it; the pause is recorded in results.json and shown in results.md")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json/.md alone")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    set_env()
    parts = args.parts.split(",") if args.parts else list(QUICK) + (["scale"] if args.scale else [])
    unknown = set(parts) - set(QUICK) - {"scale"}
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2

    def wait_idle() -> float:
        """Share of the CPUs busy with other (not niced) work just before a part, after waiting if asked to."""
        started = time.monotonic()
        busy = busy_share(2)
        while args.wait_idle is not None and busy > args.wait_idle and time.monotonic() - started < args.wait_max:
            busy = busy_share()
        print(f"  (other processes at normal priority used {busy:.0%} of the CPUs just before; "
              f"waited {time.monotonic() - started:.0f} s)")
        return busy

    paused_at = time.time()
    for pid in args.pause_pid:
        os.kill(pid, signal.SIGSTOP)
    try:
        with tempfile.TemporaryDirectory(prefix="qa-bench-seed-") as tmp:
            run_parts(args, parts, Path(tmp) / "index", (lambda part, value: None) if args.no_write else save, wait_idle)
    finally:
        for pid in args.pause_pid:
            os.kill(pid, signal.SIGCONT)
        if args.pause_pid and not args.no_write:
            pause = {"pids": args.pause_pid, "seconds": round(time.time() - paused_at),
                     "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(paused_at))}
            current = read_results()
            current.setdefault("pauses", []).append(pause)
            write_results(current)
    if not args.no_write:
        print(f"wrote {RESULTS_MD.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")
    return 0


def run_parts(args, parts: list[str], seed: Path, save, wait_idle) -> None:
    """The chosen parts on a fresh seed index (the scale part needs its ONNX encoder)."""
    if set(parts) & {"warm", "cold", "memory", "scale"}:
        import warm

        started = time.perf_counter()
        built = warm.build_seed(seed)
        print(f"seed index: {built['chunks']} chunks, {built['sentences']} sentences, built in "
              f"{built['seconds']:.1f} s ({time.perf_counter() - started:.1f} s)")
    if "warm" in parts:
        busy = wait_idle()
        import warm

        print(f"warm latency ({args.rounds} rounds) …")
        r = warm.run(seed, rounds=args.rounds)
        r["seed_build_s"], r["cpu_busy_before"] = built["seconds"], busy
        for key in ("ask", "retrieve", "encode_onnx", "encode_st", "ask_without_encode"):
            print(f"  {key:20s} median {r[key]['median']:6.2f} ms   p95 {r[key]['p95']:6.2f} ms")
        print(f"  sentence-transformers / ONNX: {r['st_over_onnx']:.1f}x; load average {r['load_avg']}")
        save("warm", r)
    if "cold" in parts:
        busy = wait_idle()
        import cold

        print("cold start …")
        r = {"cli": cold.cli(seed, runs=args.runs), "cpu_busy_before": busy}
        s = r["cli"]["to_answer_s"]
        print(f"  python -m qa ask: median {s['median']:.2f} s (min {s['min']:.2f}, {s['n']} runs); "
              f"heavy imports: {r['cli']['imports']['heavy_imported'] or 'none'}")
        if r["cli"]["phases"]:
            print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["cli"]["phases"]["steps"]))
        r["app"] = cold.app(seed, runs=3)
        if r["app"].get("missing"):
            print("  app.py does not exist yet: skipped")
        else:
            s = r["app"]["to_200_s"]
            print(f"  python app.py: first 200 after median {s['median']:.2f} s (min {s['min']:.2f}, {s['n']} runs); "
                  f"libtorch mapped: {r['app']['torch_loaded']}")
        save("cold", r)
    if "memory" in parts:
        busy = wait_idle()
        import cold
        import warm

        print("memory …")
        questions = [t for item in warm.dev_items() for t in item["turns"]]
        r = {"app": cold.app_memory(seed, questions), "library": cold.library_memory(seed), "cpu_busy_before": busy}
        if not r["app"].get("missing"):
            m = r["app"]["after_warm_up"]
            print(f"  app after {r['app']['warm_up_requests']} /chat requests: RSS {m['VmRSS']:.0f} MB, "
                  f"peak {m['VmHWM']:.0f} MB")
        print(f"  library alone: RSS {r['library']['VmRSS']:.0f} MB, peak {r['library']['VmHWM']:.0f} MB")
        save("memory", r)
    if "scale" in parts:
        import scale

        sizes = [int(s) for s in args.sizes.split(",")]
        encoder = next(p for p in seed.iterdir() if p.name.startswith("encoder.") and p.is_dir())
        # The seed index is deleted at exit; scale's children need its encoder for ONNX builds.
        keep = args.workdir / "encoder"
        shutil.rmtree(keep, ignore_errors=True)
        args.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(encoder, keep)
        print(f"scale {sizes} in {args.workdir} …")
        previous = read_results().get("scale", {}).get("sizes", {})
        scale.run(args.workdir, sizes, keep, embedder=args.embedder, big_embedder=args.big_embedder,
                  big_from=args.big_from, log=lambda line: print(line, flush=True),
                  save=lambda r: save("scale", r | {"sizes": previous | r["sizes"]}),
                  requery=previous if args.requery else None, before_query=wait_idle, sweep=args.hnsw_sweep,
                  rebuild=args.rebuild)


if __name__ == "__main__":
    sys.exit(main())
