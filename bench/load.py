"""Load on the running app: `python bench/load.py [--sessions 50] [--turns 10] [--requests 5000]
[--app-workers N] [--parts load overload memory] [--client rest|gradio_client] [--app PATH]`.

Starts the real app (`python app.py --index I --port P [--workers N]`) and drives it:

  load      --sessions concurrent sessions, each asking --turns questions through /chat (Gradio's REST
            API from one asyncio thread, or one gradio_client each with --client gradio_client), follow-ups
            sent with the history as the chat keeps it; latency p50/p95, p95 against the queueing
            floor (sessions x the in-process bot.ask median of the same minute / cores), every reply
            compared with bot.ask in this process given the same history (they must be identical), and
            the memory of each of the app's processes (RSS / PSS) after the load.
  overload  --overload callers at once, more than the bounded queue holds (qa.server.QUEUE_SIZE):
            the excess must get a clear "queue is full" error (QueueError / HTTP 503), nothing
            else may fail, the server must stay up and answer a canary question right after.
  memory    the RSS of the app and its workers (/proc/<pid>/smaps_rollup) after warm-up and after
            --requests more /chat requests (Gradio's REST API, --workers threads, each call its own
            session), replies
            again compared with bot.ask; growth must stay within --max-growth MB.

Prints the figures and writes them to bench/load_results.md, the report with its checks, and, when all
three parts ran on this checkout's app, as the index's model's run of the "load" part of
bench/results.json, in place of that model's last run (--no-write: print only). Exits 1 if a
check fails. Without --index it builds the seed corpus into a temporary folder first. The default
run takes a few minutes on a 2-core machine. --app runs another checkout's app.py (e.g. an older
commit unpacked with `git archive <commit> | tar -x -C DIR`) for a before/after in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import ROOT, app_processes, ask_median_ms, child_env, cpu_per_request, dev_items, index_model, latency_ms, \
    machine, memory_line, proc_status, queueing_floor_ms, save_run, set_env
from served_app import client, serve, status

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "load_results.md"
CANARY = ("How many member parliaments does the IPU have?", "179 national member parliaments")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", type=Path, help="index folder to serve (default: build corpus/ into a temporary folder)")
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus", help="corpus to build when --index is not given")
    p.add_argument("--sessions", type=int, default=50, help="load: concurrent sessions (default: 50)")
    p.add_argument("--turns", type=int, default=10, help="load: questions per session (default: 10)")
    p.add_argument("--overload", type=int, default=0,
                   help="overload: simultaneous callers (default: 3 x the queue size + the concurrency limit)")
    p.add_argument("--requests", type=int, default=5000, help="memory: requests after warm-up (default: 5000)")
    p.add_argument("--warmup", type=int, default=0,
                   help="memory: requests before the first reading (default: the app's session capacity + 200,"
                        " so Gradio's session store is full, as in a server that has run a while)")
    p.add_argument("--workers", type=int, default=4, help="memory: client threads (default: 4)")
    p.add_argument("--max-growth", type=float, default=50.0, help="memory: allowed RSS growth in MB (default: 50)")
    p.add_argument("--port", type=int, default=0, help="port for the app (default: a free one)")
    p.add_argument("--app-workers", type=int, default=None,
                   help="the app's --workers (default: the app's own default, one per core)")
    p.add_argument("--client", choices=["rest", "gradio_client"], default="rest",
                   help="load: how sessions call /chat (default: rest, see run_load)")
    p.add_argument("--parts", nargs="+", choices=["load", "overload", "memory"], default=["load", "overload", "memory"],
                   help="which parts to run (default: all; the report and its checks need all three)")
    p.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app.py to run (default: this checkout's)")
    p.add_argument("--no-write", action="store_true", help=f"print only; leave {RESULTS_MD.name} and results.json alone")
    return p


# ---- questions ------------------------------------------------------------------------------------


def conversations() -> list[list[str]]:
    """The dev set's conversations, follow-ups included."""
    return [item["turns"] for item in dev_items()]


def session_plan(offset: int, turns: int) -> list[list[str]]:
    """`turns` questions as conversations, starting at a different conversation for each session."""
    base = conversations()
    plan, count, i = [], 0, offset
    while count < turns:
        convo = base[i % len(base)][: turns - count]
        plan.append(convo)
        count += len(convo)
        i += 1
    return plan


class Expected:
    """bot.ask in this process, on the same index, memoised by (question, history)."""

    def __init__(self, index: Path):
        import qa

        self.bot = qa.load(index, check_stale=False)
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, question: str, history: list[dict]) -> str:
        key = json.dumps([question, history])
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self.bot.ask(question, history=history).text
            return self._cache[key]


# ---- the three parts ------------------------------------------------------------------------------


def run_load(url: str, pid: int, expected: Expected, sessions: int, turns: int, via: str = "rest") -> dict:
    """Concurrent sessions, each a client asking its conversations in order, history included.

    via "rest": each session an asyncio coroutine calling Gradio's REST API (call_chat's two requests, with
    httpx, all on one thread); via "gradio_client": each a gradio_client Client on its own thread. The
    second is what a Python caller would use, but on 2 cores its 50 clients took 63 ms of CPU per request
    against the server's 29, so it measured the clients more than the app.

    Also the CPU time per request of the server (pid) and of this process's clients: on a shared
    machine it says where the cost goes better than latency does."""
    latencies: list[float] = []
    errors: list[str] = []
    mismatches: list[str] = []
    lock = threading.Lock()

    def record(question: str, history: list[dict], began: float, reply: str) -> None:
        ok = reply == expected(question, history)
        with lock:
            latencies.append(time.perf_counter() - began)
            if not ok:
                mismatches.append(question)

    def failed(question: str, e: Exception) -> None:
        with lock:
            errors.append(f"{question}: {type(e).__name__}: {e}")

    def turn(history: list[dict], question: str, reply: str) -> list[dict]:
        return history + [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]

    for convo in conversations():  # bot.ask's replies, computed before the clock starts
        history = []
        for question in convo:
            history = turn(history, question, expected(question, history))

    async def session(ask, n: int) -> None:
        """Session n's conversations in order; ask(n, question, history) is how it calls /chat."""
        for convo in session_plan(n, turns):
            history: list[dict] = []
            for question in convo:
                began = time.perf_counter()
                try:
                    reply = await ask(n, question, history)
                except Exception as e:
                    failed(question, e)
                    continue
                record(question, history, began, reply)
                history = turn(history, question, reply)

    if via == "gradio_client":
        with ThreadPoolExecutor(8) as pool:
            clients = list(pool.map(lambda _: client(url), range(sessions)))
        threads = ThreadPoolExecutor(sessions)  # each session's blocking predict on a thread of its own

        async def sessions_at_once() -> None:
            loop = asyncio.get_running_loop()

            async def ask(n: int, question: str, history: list[dict]) -> str:
                return await loop.run_in_executor(threads, lambda: clients[n].predict(question, history, api_name="/chat"))

            await asyncio.gather(*(session(ask, n) for n in range(sessions)))
    else:
        import httpx

        async def sessions_at_once() -> None:
            limits = httpx.Limits(max_connections=2 * sessions, max_keepalive_connections=2 * sessions)
            async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
                ask = lambda n, question, history: call_chat_async(http, question, history)  # noqa: E731
                await asyncio.gather(*(session(ask, n) for n in range(sessions)))

    with cpu_per_request(pid, sessions * turns) as cpu:
        began = time.perf_counter()
        asyncio.run(sessions_at_once())
        wall = time.perf_counter() - began
    if via == "gradio_client":
        threads.shutdown()
        for c in clients:
            c.close()
    with urllib.request.urlopen(url + "api/health", timeout=60) as r:
        batches = json.loads(r.read()).get("batches", {})  # of the whole run so far, warm-up included
    return {
        "batches": batches,
        "sessions": sessions, "turns": turns, "requests": sessions * turns, "answered": len(latencies),
        "errors": errors, "mismatches": mismatches, "seconds": wall, **latency_ms(latencies),
        "per_second": len(latencies) / wall if wall else float("nan"), **cpu, "client": via,
        "load_avg": round(os.getloadavg()[0], 2), "processes": app_processes(pid),
    }


def run_overload(url: str, expected: Expected, callers: int) -> dict:
    """Many callers at once: the queue takes what it holds, the rest are told it is full."""
    from gradio_client.utils import QueueError

    # The longest accepted question keeps the workers busy a little longer than a short one.
    question = ("What does the IPU encourage parliaments to use in legislative work? " * 40)[:2000]
    answer = expected(question, [])
    overloaded = client(url, max_workers=callers + 8)
    jobs = [overloaded.submit(question, [], api_name="/chat") for _ in range(callers)]
    answered, busy, errors, wrong = 0, 0, [], 0
    for job in jobs:
        try:
            reply = job.result(timeout=600)
        except QueueError:
            busy += 1
            continue
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            continue
        answered += 1
        wrong += reply != answer
    up = status(url)
    canary = client(url).predict(CANARY[0], [], api_name="/chat")
    overloaded.close()
    return {"callers": callers, "answered": answered, "busy": busy, "errors": errors, "wrong": wrong,
            "status_after": up, "canary_ok": CANARY[1] in canary}


def call_chat(url: str, question: str, history: list[dict]) -> str:
    """One /chat call over Gradio's REST API (POST, then read the event stream); raises on anything but a reply."""
    body = json.dumps({"data": [question, history]}).encode()
    request = urllib.request.Request(url + "gradio_api/call/chat", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/chat/{event}", timeout=120) as r:
        return chat_reply(r.read().decode("utf-8"))


def chat_reply(stream: str) -> str:
    """The reply in /chat's event stream; raises on anything but a completed call."""
    if not stream.startswith("event: complete\n"):
        raise RuntimeError(stream[:200])
    [data] = [line[6:] for line in stream.splitlines() if line.startswith("data: ")]
    return json.loads(data)[0]


async def call_chat_async(http, question: str, history: list[dict]) -> str:
    """call_chat with an httpx.AsyncClient whose base_url is the app's."""
    posted = await http.post("gradio_api/call/chat", json={"data": [question, history]})
    posted.raise_for_status()
    streamed = await http.get(f"gradio_api/call/chat/{posted.json()['event_id']}")
    return chat_reply(streamed.text)


def run_memory(url: str, pid: int, expected: Expected, requests: int, workers: int, warmup: int) -> dict:
    """RSS after warm-up, then after `requests` more.

    These calls go through Gradio's REST API: gradio_client spends more CPU per call than the server
    does (~36 ms against ~25 ms here), and on a shared 2-core machine that would measure the client.
    Each REST call is a session of its own, so per-session state would show up as growth.
    """
    turns = [(convo, i) for convo in conversations() for i in range(len(convo))]
    errors: list[str] = []
    mismatches = 0
    lock = threading.Lock()

    def work(count: int, offset: int) -> None:
        nonlocal mismatches
        for n in range(count):
            convo, i = turns[(offset + n) % len(turns)]
            history: list[dict] = []
            for earlier in convo[:i]:  # the conversation so far, as the chat would send it
                history += [{"role": "user", "content": earlier},
                            {"role": "assistant", "content": expected(earlier, history)}]
            try:
                reply = call_chat(url, convo[i], history)
            except Exception as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            if reply != expected(convo[i], history):
                with lock:
                    mismatches += 1

    def burst(total: int) -> float:
        began = time.perf_counter()
        share = [total // workers + (w < total % workers) for w in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, share, [w * 7 for w in range(workers)]))
        return time.perf_counter() - began

    def total_rss() -> float:  # the app and its workers
        return sum(p["rss"] for p in app_processes(pid))

    burst(warmup)  # caches, allocator pools, the queue's structures, a full session store
    before = total_rss()
    seconds = burst(requests)
    after = total_rss()
    return {"requests": requests, "warmup": warmup, "workers": workers, "seconds": seconds, "errors": errors,
            "mismatches": mismatches, "rss_warm_mb": before, "rss_after_mb": after,
            "growth_mb": after - before, "peak_mb": proc_status(pid)["VmHWM"]}


# ---- report ---------------------------------------------------------------------------------------


def checks(load: dict, over: dict, memory: dict, max_growth: float) -> list[tuple[str, bool]]:
    return [
        (f"load: {load['answered']}/{load['requests']} answered, 0 errors", not load["errors"]
         and load["answered"] == load["requests"]),
        ("load: every reply identical to bot.ask in process", not load["mismatches"]),
        (f"overload: excess callers told the queue is full ({over['busy']} of {over['callers']})", over["busy"] > 0),
        ("overload: no other error, accepted calls answered correctly", not over["errors"] and not over["wrong"]
         and over["answered"] + over["busy"] == over["callers"]),
        ("overload: server up and canary answered right after", over["status_after"] == 200 and over["canary_ok"]),
        (f"memory: 0 errors and identical replies over {memory['requests']:,} requests",
         not memory["errors"] and not memory["mismatches"]),
        (f"memory: RSS growth {memory['growth_mb']:+.1f} MB within {max_growth:.0f} MB",
         memory["growth_mb"] <= max_growth),
    ]


def markdown(load: dict, over: dict, memory: dict, results: list[tuple[str, bool]], info: dict,
             queue: tuple[int, int]) -> str:
    rows = "\n".join(f"| {'pass' if ok else '**FAIL**'} | {name} |" for name, ok in results)
    return f"""## Load on the running app

Figures from `make load` (`bench/load.py`): the real app (`python app.py`, queue of {queue[0]}, {queue[1]} \
requests at a time) on the seed index, driven from the same machine. The machine is \
shared with other jobs, so latencies move between runs; the checks do not depend on them.

### Concurrent sessions

| sessions × questions | answered | errors | replies ≠ bot.ask | p50 | p95 | p95 ÷ floor | max | throughput | req/s × ask | CPU per request: server / clients |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| {load['sessions']} × {load['turns']} | {load['answered']} | {len(load['errors'])} | {len(load['mismatches'])} \
| {load['p50_ms']:.0f} ms | {load['p95_ms']:.0f} ms | {load['p95_ms'] / load['floor_ms']:.2f} | {load['max_ms']:.0f} ms \
| {load['per_second']:.1f} req/s | {load['per_second'] * load['ask_ms'] / 1000:.2f} \
| {load['server_cpu_ms']:.1f} / {load['client_cpu_ms']:.1f} ms |

The queueing floor is {load['sessions']} sessions × one in-process `bot.ask` ({load['ask_ms']:.1f} ms, median of the \
same minute) ÷ {info['cores']} cores = {load['floor_ms']:.0f} ms. Memory after the load (RSS / PSS): \
{memory_line(load['processes'])}.

Each session asks conversations from `tests/data/dev.jsonl` in order, follow-ups with the history the chat \
would send; latency is from the call to its reply, queueing included.

### Overload

| callers at once | answered | told "queue is full" | other errors | server after | canary |
|---:|---:|---:|---:|---|---|
| {over['callers']} | {over['answered']} | {over['busy']} | {len(over['errors'])} | HTTP {over['status_after']} \
| {'answered' if over['canary_ok'] else '**not answered**'} |

### Memory

| requests | RSS after warm-up (app + workers) | RSS after | growth | app's peak RSS |
|---:|---:|---:|---:|---:|
| {memory['requests']:,} in {memory['seconds']:.0f} s ({memory['workers']} threads) | {memory['rss_warm_mb']:.0f} MB \
| {memory['rss_after_mb']:.0f} MB | {memory['growth_mb']:+.1f} MB | {memory['peak_mb']:.0f} MB |

RSS of the app and its worker processes, summed (`/proc/<pid>/smaps_rollup`), first after {memory['warmup']:,} requests (enough to fill \
Gradio's store of sessions, which `qa.server` caps), then after {memory['requests']:,} more. These requests use Gradio's REST API \
(`/gradio_api/call/chat`, each call a session of its own), since gradio_client spends more CPU per call \
than the server on this 2-core machine; {len(memory['errors'])} errors, \
{memory['mismatches']} replies different from bot.ask.

### Checks

| result | check |
|---|---|
{rows}

<sub>{info['date']}, {info['cpu']} ({info['cores']} cores, shared), Python {info['python']}, commit {info['commit']}; \
load average at start {', '.join(str(x) for x in info['load_avg'])}</sub>
"""


def load_line(load: dict) -> str:
    return (f"{load['answered']} answered in {load['seconds']:.1f} s ({load['per_second']:.1f} req/s), "
            f"p50 {load['p50_ms']:.0f} ms, p95 {load['p95_ms']:.0f} ms = {load['p95_ms'] / load['floor_ms']:.2f} x the "
            f"floor of {load['floor_ms']:.0f} ms (bot.ask {load['ask_ms']:.1f} ms, req/s x ask "
            f"{load['per_second'] * load['ask_ms'] / 1000:.2f}), batches by size {load['batches']}, {len(load['errors'])} errors, "
            f"{len(load['mismatches'])} mismatches; CPU per request: server {load['server_cpu_ms']:.1f} ms, "
            f"clients {load['client_cpu_ms']:.1f} ms; load average {load['load_avg']}; memory (RSS / PSS) "
            f"{memory_line(load['processes'])}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    set_env()
    from qa.engine import capacity, default_workers
    from qa.server import QUEUE_SIZE, SESSIONS

    jobs = capacity(default_workers() if args.app_workers is None else args.app_workers)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="qa-load-"))
    load = over = memory = None
    try:
        index = args.index
        if index is None:
            import qa

            index = work / "index"
            print(f"building {args.corpus} into {index} …", flush=True)
            qa.build_index(corpus_dir=args.corpus, index_dir=index)
        expected = Expected(index)
        model = index_model(index)
        # the same minute as the load
        ask_ms = ask_median_ms(index, [convo[0] for convo in conversations()], rounds=3, check_stale=False)
        workers = ["--workers", str(args.app_workers)] if args.app_workers is not None else []
        with serve("--index", str(index.resolve()), *workers, workdir=work, guard=False, env=child_env(), app=args.app,
                   port=args.port) as served:
            url, proc = served.url, served.proc
            print(f"{args.app} on {url} (pid {proc.pid}, --workers {args.app_workers if args.app_workers is not None else 'default'})",
                  flush=True)
            if "load" in args.parts:
                print(f"{args.sessions} sessions × {args.turns} questions …", flush=True)
                load = run_load(url, proc.pid, expected, args.sessions, args.turns, args.client)
                load["ask_ms"] = ask_ms
                load["floor_ms"] = queueing_floor_ms(args.sessions, ask_ms)
                print("  " + load_line(load), flush=True)
            if "overload" in args.parts:
                callers = args.overload or 3 * QUEUE_SIZE + jobs
                print(f"overload: {callers} callers at once (queue {QUEUE_SIZE}, {jobs} at a time) …", flush=True)
                over = run_overload(url, expected, callers)
                print(f"  {over['answered']} answered, {over['busy']} told the queue is full, {len(over['errors'])} "
                      f"other errors; server HTTP {over['status_after']}, canary {over['canary_ok']}", flush=True)
            if "memory" in args.parts:
                warmup = args.warmup or SESSIONS + 200
                print(f"memory: {warmup:,} requests to warm up, then {args.requests:,} …", flush=True)
                memory = run_memory(url, proc.pid, expected, args.requests, args.workers, warmup)
                print(f"  RSS of the app and its workers {memory['rss_warm_mb']:.0f} MB -> {memory['rss_after_mb']:.0f} MB "
                      f"({memory['growth_mb']:+.1f} MB) in {memory['seconds']:.0f} s", flush=True)
            alive = proc.poll() is None
        log = served.output()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if None in (load, over, memory):  # a partial run: figures only, no report
        return 0 if alive and "Traceback" not in log else 1
    results = checks(load, over, memory, args.max_growth)
    results.append(("the app ran throughout and logged no traceback", alive and "Traceback" not in log))
    report = markdown(load, over, memory, results, info, (QUEUE_SIZE, jobs))
    print()
    print(report)
    for error in (load["errors"] + over["errors"] + memory["errors"])[:5]:
        print("error:", error, file=sys.stderr)
    if not args.no_write:
        RESULTS_MD.write_text(report, "utf-8")
        print(f"wrote {RESULTS_MD.relative_to(ROOT)}")
        if args.app.resolve() == (ROOT / "app.py").resolve():  # another checkout's figures are not this one's
            save_run("load", saved_run(model, load, over, memory))
            print("saved the load part of bench/results.json")
    return 0 if all(ok for _, ok in results) else 1


def saved_run(model: str, load: dict, over: dict, memory: dict) -> dict:
    """The figures docs/generate.py reads, rounded as the docs show them."""
    return {"model": model, "sessions": load["sessions"], "questions": load["turns"], "answered": load["answered"],
            "errors": len(load["errors"]), "differ_from_ask": len(load["mismatches"]),
            "p50_ms": round(load["p50_ms"]), "p95_ms": round(load["p95_ms"]), "rps": round(load["per_second"], 1),
            "server_cpu_ms": round(load["server_cpu_ms"], 1), "client_cpu_ms": round(load["client_cpu_ms"], 1),
            "client": load["client"], "ask_ms": round(load["ask_ms"], 1), "floor_ms": round(load["floor_ms"]),
            "overload": {"callers": over["callers"], "answered": over["answered"], "queue_full": over["busy"],
                         "other_errors": len(over["errors"])},
            "memory": {"requests": memory["requests"], "before_mb": round(memory["rss_warm_mb"]),
                       "after_mb": round(memory["rss_after_mb"])}}


if __name__ == "__main__":
    sys.exit(main())
