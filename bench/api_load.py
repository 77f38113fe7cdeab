"""Throughput of the JSON API: `python bench/api_load.py [--workers 0 1 2 3] [--clients 50] [--seconds 20]`.

For each --workers value, starts the real app (`python app.py --workers N`) and drives POST /api/ask
with wrk (Debian's `wrk`, a C load generator, on this same machine): --clients connections, each
asking the dev questions in turn, for --seconds. Prints requests/s, latency p50/p95/p99, errors (non-2xx
and socket errors), requests/s × the in-process `bot.ask` median (1.0 = the engine's throughput on one
process), and memory: RSS and PSS (proportional share of pages shared between processes, from
/proc/<pid>/smaps_rollup) of the app process and of each worker. Without --index it builds corpus/
into a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from measure import ROOT, child_env, machine, set_env

DEV_SET = ROOT / "tests" / "data" / "dev.jsonl"
LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/api/ask", {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
"""


def questions() -> list[str]:
    items = [json.loads(line) for line in DEV_SET.read_text("utf-8").splitlines() if line.strip()]
    return [item["turns"][0] for item in items]


def ask_median_ms(index: Path, qs: list[str]) -> float:
    import qa

    bot = qa.load(index)
    for q in qs:
        bot.ask(q)
    times = []
    for _ in range(5):
        for q in qs:
            t = time.perf_counter()
            bot.ask(q)
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def memory(pid: int) -> dict[str, float]:
    """RSS and PSS of a process, MB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key] = int(value.split()[0]) / 1024
    return out


def children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


def wrk(port: int, clients: int, seconds: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "10s",
                          "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True).stdout

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "requests": requests,
            "p50": ms(lat["50"]), "p90": ms(lat["90"]), "p99": ms(lat["99"]),
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0), "raw": out}


def run(index: Path, workers: int, args, script: Path) -> dict:
    port = args.port
    log = open(Path(tempfile.gettempdir()) / f"api_load-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index), "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        body = json.dumps({"question": "How many member parliaments does the IPU have?"}).encode()
        deadline = time.monotonic() + 120
        while True:  # up, and every worker loaded (a worker's first answer waits for its index)
            try:
                with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/ask", data=body),
                                            timeout=60) as r:
                    if r.status == 200 and len(children(proc.pid)) >= workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"app.py --workers {workers} did not start; see {log.name}")
            time.sleep(0.5)
        wrk(port, args.clients, 3, script)  # warm every worker
        result = wrk(port, args.clients, args.seconds, script)
        pids = [p for p in children(proc.pid) if "python" in Path(f"/proc/{p}/cmdline").read_text()]
        result["app"] = memory(proc.pid)
        result["workers_mem"] = [memory(p) for p in pids if Path(f"/proc/{p}/smaps_rollup").exists()]
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", type=Path)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--port", type=int, default=7871)
    args = p.parse_args(argv)
    set_env()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    tmp = None
    index = args.index
    if index is None:
        import qa

        tmp = Path(tempfile.mkdtemp(prefix="api-load-"))
        index = tmp / "index"
        qa.build_index(corpus_dir=ROOT / "corpus", index_dir=index)
    qs = questions()
    ask_ms = ask_median_ms(index, qs)
    script = Path(tempfile.mkdtemp(prefix="api-load-lua-")) / "ask.lua"
    script.write_text(LUA % ", ".join(json.dumps(json.dumps({"question": q})) for q in qs), "utf-8")
    print(f"{machine()}\nbot.ask in process, median over the dev questions: {ask_ms:.2f} ms\n")
    print("| workers | requests | req/s | p50 ms | p90 ms | p99 ms | errors | req/s × ask | app RSS / PSS MB | each worker RSS / PSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for n in args.workers:
        r = run(index, n, args, script)
        each = ", ".join(f"{m['Rss']:.0f} / {m['Pss']:.0f}" for m in r["workers_mem"]) or "-"
        print(f"| {n} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p90']:.0f} | {r['p99']:.0f} | "
              f"{r['errors']} | {r['rps'] * ask_ms / 1000:.2f} | {r['app']['Rss']:.0f} / {r['app']['Pss']:.0f} | {each} |",
              flush=True)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
