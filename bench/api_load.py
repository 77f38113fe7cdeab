"""Throughput of the JSON API: `python bench/api_load.py [--workers 0 1 2] [--clients 50] [--questions 20]`.

For each --workers value, starts the real app (`python app.py --workers N`) and drives POST /api/ask
with --clients concurrent clients on this same machine, each sending exactly --questions dev questions
one after another over its own keep-alive connection (an asyncio client writing HTTP/1.1 by hand: it
costs ~0.3 ms of CPU per request, ~4% of the server's, on the same cores; wrk gives no p95 and runs for
a duration, not a count). Prints requests/s, latency p50/p95/p99/max (from the request written to the
reply read: queueing included), errors (non-200, bad JSON, dropped connections), requests/s × the
in-process `bot.ask` median of the same minute (1.0 = one process answering back to back), CPU time per
request of the server (app and workers), of `bot.ask` in process and of this client (CPU time moves far
less than latency with other work on the machine, so it shows where a request's cost goes), the load
average, and memory: RSS and PSS (proportional share of pages shared between processes, from
/proc/<pid>/smaps_rollup) of the app and of each worker. Without --index it builds corpus/ into a
temporary folder first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from measure import ROOT, child_env, cpu_seconds, machine, percentile, set_env

DEV_SET = ROOT / "tests" / "data" / "dev.jsonl"


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


def ask_cpu_ms(index: Path, qs: list[str]) -> float:
    """CPU time of one bot.ask in process (all threads), mean over the dev questions: unlike its wall
    time, this barely moves with the other work on the machine."""
    import qa

    bot = qa.load(index)
    for q in qs:
        bot.ask(q)
    start = time.process_time()
    for _ in range(5):
        for q in qs:
            bot.ask(q)
    return (time.process_time() - start) / (5 * len(qs)) * 1000


def children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


# ---- the load generator ------------------------------------------------------------------------------


def request(port: int, body: bytes) -> bytes:
    return (f"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, the server keeps the connection) of one HTTP/1.1 response."""
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, body, headers.get("connection", "").lower() != "close"


async def drive(port: int, clients: int, per_client: int, bodies: list[bytes], timeout: float = 60) -> dict:
    """clients connections at once, each sending per_client questions in turn; latencies and errors."""
    latencies: list[float] = []
    errors: list[str] = []

    async def client(n: int) -> None:
        conn = None
        for i in range(per_client):
            payload = request(port, bodies[(n * per_client + i) % len(bodies)])
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                writer.write(payload)
                status, body, keep = await asyncio.wait_for(read_response(reader), timeout)
                latencies.append(time.perf_counter() - start)
                if status != 200 or "text" not in json.loads(body):
                    errors.append(f"HTTP {status}: {body[:120]!r}")
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                keep = False
            if not keep and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {"requests": clients * per_client, "seconds": elapsed, "rps": clients * per_client / elapsed,
            "p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "max": max(ms, default=float("nan")), "errors": len(errors), "error_kinds": sorted(set(errors))[:3]}


# ---- one configuration -------------------------------------------------------------------------------


def run(index: Path, workers: int, args, bodies: list[bytes]) -> dict:
    port = args.port
    log = open(Path(tempfile.gettempdir()) / f"api_load-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index), "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:  # up, and every worker loaded (a worker's first answer waits for its index)
            try:
                with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/ask",
                                                                   data=bodies[0]), timeout=60) as r:
                    if r.status == 200 and len(children(proc.pid)) >= workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"app.py --workers {workers} did not start; see {log.name}")
            time.sleep(0.5)
        asyncio.run(drive(port, args.clients, 2, bodies))  # warm every worker and connection path
        load = [round(x, 2) for x in os.getloadavg()]
        pids = [p for p in children(proc.pid) if "python" in Path(f"/proc/{p}/cmdline").read_text()]
        server_cpu, client_cpu = cpu_seconds(proc.pid, *pids), time.process_time()
        result = asyncio.run(drive(port, args.clients, args.questions, bodies))
        result["server_cpu_ms"] = (cpu_seconds(proc.pid, *pids) - server_cpu) / result["requests"] * 1000
        result["client_cpu_ms"] = (time.process_time() - client_cpu) / result["requests"] * 1000
        result["load_avg"] = load
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
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--questions", type=int, default=20, help="questions per client (default: 20)")
    p.add_argument("--port", type=int, default=7871)
    args = p.parse_args(argv)
    set_env()
    tmp = None
    index = args.index
    if index is None:
        import qa

        tmp = Path(tempfile.mkdtemp(prefix="api-load-"))
        index = tmp / "index"
        qa.build_index(corpus_dir=ROOT / "corpus", index_dir=index)
    qs = questions()
    bodies = [json.dumps({"question": q}).encode() for q in qs]
    info = machine()
    print(f"{info['date']}, {info['cpu']} ({info['cores']} cores), Python {info['python']}, commit {info['commit']}")
    print(f"{args.clients} clients × {args.questions} questions through POST /api/ask\n")
    print("| workers | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | bot.ask ms | req/s × ask "
          "| CPU ms per request: server / bot.ask / client | load avg (1 min) | app RSS / PSS MB "
          "| each worker RSS / PSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|")
    for n in args.workers:
        ask_ms = ask_median_ms(index, qs)  # the engine's own speed in the same minute as the load
        ask_cpu = ask_cpu_ms(index, qs)
        r = run(index, n, args, bodies)
        each = ", ".join(f"{m['Rss']:.0f} / {m['Pss']:.0f}" for m in r["workers_mem"]) or "-"
        print(f"| {n} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | "
              f"{r['max']:.0f} | {r['errors']} | {ask_ms:.1f} | {r['rps'] * ask_ms / 1000:.2f} | "
              f"{r['server_cpu_ms']:.1f} / {ask_cpu:.1f} / {r['client_cpu_ms']:.1f} | {r['load_avg'][0]} | "
              f"{r['app']['Rss']:.0f} / {r['app']['Pss']:.0f} | {each} |", flush=True)
        for kind in r["error_kinds"]:
            print(f"  error: {kind}")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
