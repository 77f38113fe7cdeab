"""Throughput of the JSON API: `python bench/api_load.py [--workers 0 2] [--clients 50] [--questions 20]
[--baseline DIR]`.

For each --workers value, starts the real app (`python app.py --workers N`) and drives POST /api/ask
with --clients concurrent clients on this same machine, each sending exactly --questions dev questions
one after another over its own keep-alive connection (an asyncio client writing HTTP/1.1 by hand: it
costs ~0.3 ms of CPU per request, ~4% of the server's, on the same cores; wrk gives no p95 and runs for
a duration, not a count). Prints requests/s, latency p50/p95/p99/max (from the request written to the
reply read: queueing included), errors (non-200, bad JSON, dropped connections), requests/s × the
in-process `bot.ask` median of the same minute (1.0 = one process answering back to back), CPU time per
request of the server (app and workers), of `bot.ask` in process and of this client (CPU time moves far
less than latency with other work on the machine, so it shows where a request's cost goes), the load
average, p95 against the queueing floor (clients x the in-process ask / cores: the p95 if the cores did
nothing but answer), and memory: RSS and PSS (proportional share of pages shared between processes, from
/proc/<pid>/smaps_rollup) of the app, of each worker and in total. With --baseline (a checkout of an
older commit, e.g. `git archive <commit> | tar -x -C DIR`), that checkout's app.py runs too, each
--workers value next to this one's (the order alternating), on the same index: before and after in the
same conditions (`--workers 2 2` gives each order once).
Without --index it builds corpus/ into a temporary folder first. This checkout's rows are saved as the
index's model's run of the "api_load" part of bench/results.json, in place of that model's last run
(--no-write: print only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from measure import ROOT, app_processes, ask_median_ms, child_env, cpu_per_request, dev_items, index_model, latency_ms, \
    machine, memory_line, queueing_floor_ms, save_run, set_env, worker_pids
from served_app import serve


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
    return {"requests": clients * per_client, "seconds": elapsed, "rps": clients * per_client / elapsed,
            **latency_ms(latencies), "errors": len(errors), "error_kinds": sorted(set(errors))[:3]}


# ---- one configuration -------------------------------------------------------------------------------


def run(app: Path, index: Path, workers: int, args, bodies: list[bytes]) -> dict:
    app_args = ["--index", str(index.resolve()), "--workers", str(workers)]
    with tempfile.TemporaryDirectory(prefix="api-load-app-") as tmp, \
            serve(*app_args, workdir=Path(tmp), guard=False, env=child_env(), app=app, port=args.port) as served:
        pid, port = served.proc.pid, served.port
        deadline = time.monotonic() + 120
        while True:  # every worker loaded (a worker's first answer waits for its index)
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{served.url}api/ask", data=bodies[0]),
                                            timeout=60) as r:
                    if r.status == 200 and len(worker_pids(pid)) >= workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or served.proc.poll() is not None:
                raise SystemExit(f"app.py --workers {workers} did not start:\n{served.output()}")
            time.sleep(0.5)
        asyncio.run(drive(port, args.clients, 2, bodies))  # warm every worker and connection path
        load = [round(x, 2) for x in os.getloadavg()]
        with cpu_per_request(pid, args.clients * args.questions) as cpu:
            result = asyncio.run(drive(port, args.clients, args.questions, bodies))
        return result | cpu | {"load_avg": load, "processes": app_processes(pid)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", type=Path)
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="app.py --workers values (default: 0 and one per core)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--questions", type=int, default=20, help="questions per client (default: 20)")
    p.add_argument("--port", type=int, default=7871)
    p.add_argument("--baseline", type=Path, help="a checkout of an older commit whose app.py runs too")
    p.add_argument("--no-write", action="store_true", help="print only; leave results.json alone")
    args = p.parse_args(argv)
    set_env()
    cores = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else [0, cores]
    tmp = None
    index = args.index
    if index is None:
        import qa

        tmp = Path(tempfile.mkdtemp(prefix="api-load-"))
        index = tmp / "index"
        qa.build_index(corpus_dir=ROOT / "corpus", index_dir=index)
    qs = [item["turns"][0] for item in dev_items()]
    bodies = [json.dumps({"question": q}).encode() for q in qs]
    info = machine()
    apps = [("this checkout", ROOT / "app.py")]
    if args.baseline is not None:
        apps.insert(0, (f"baseline {args.baseline.name}", args.baseline / "app.py"))
    print(f"{info['date']}, {info['cpu']} ({info['cores']} cores), Python {info['python']}, commit {info['commit']}")
    print(f"{args.clients} clients × {args.questions} questions through POST /api/ask; queueing floor = "
          f"{args.clients} × bot.ask ÷ {cores} cores\n")
    print("| app | workers | requests | req/s | p50 ms | p95 ms | floor ms | p95 ÷ floor | errors | bot.ask ms "
          "| req/s × ask | CPU ms per request: server / bot.ask / client | load avg (1 min) "
          "| memory MB, RSS / PSS: each process; total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    rows = []
    for i, n in enumerate(workers):
        for label, app in (apps if i % 2 == 0 else apps[::-1]):  # alternate who goes first: no order effect
            ask_ms = ask_median_ms(index, qs, rounds=5)  # the engine's own speed in the same minute as the load
            ask_cpu = ask_cpu_ms(index, qs)
            r = run(app, index, n, args, bodies)
            floor = queueing_floor_ms(args.clients, ask_ms, cores)
            print(f"| {label} | {n} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                  f"{floor:.0f} | {r['p95_ms'] / floor:.2f} | {r['errors']} | {ask_ms:.1f} | "
                  f"{r['rps'] * ask_ms / 1000:.2f} | {r['server_cpu_ms']:.1f} / {ask_cpu:.1f} / {r['client_cpu_ms']:.1f} "
                  f"| {r['load_avg'][0]} | {memory_line(r['processes'])} |", flush=True)
            for kind in r["error_kinds"]:
                print(f"  error: {kind}")
            if app == ROOT / "app.py":
                rows.append(saved_row(n, r, ask_ms, ask_cpu, floor))
    if not args.no_write:
        save_run("api_load", {"model": index_model(index), "clients": args.clients, "questions": args.questions,
                              "rows": rows})
        print("\nsaved this checkout's rows in the api_load part of bench/results.json")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def saved_row(workers: int, r: dict, ask_ms: float, ask_cpu: float, floor_ms: float) -> dict:
    """One --workers value's figures as docs/generate.py reads them (rounded as the docs show them)."""
    mem = lambda p: {"Rss": round(p["rss"]), "Pss": round(p["pss"])}  # noqa: E731
    return {"workers": workers, "rps": round(r["rps"], 1), "p50": round(r["p50_ms"]), "p95": round(r["p95_ms"]),
            "p99": round(r["p99_ms"]), "max": round(r["max_ms"]), "errors": r["errors"], "ask_ms": round(ask_ms, 1),
            "server_cpu_ms": round(r["server_cpu_ms"], 1), "ask_cpu_ms": round(ask_cpu, 1),
            "client_cpu_ms": round(r["client_cpu_ms"], 1), "load_avg": r["load_avg"][:1],
            "app": mem(next(p for p in r["processes"] if p["role"] == "app")),
            "workers_mem": [mem(p) for p in r["processes"] if p["role"] == "worker"],
            "rps_x_ask": round(r["rps"] * ask_ms / 1000, 2), "floor_ms": round(floor_ms)}


if __name__ == "__main__":
    sys.exit(main())
