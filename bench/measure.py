"""Small measuring tools shared by the benchmarks: timers, percentiles, memory, the machine's state, and
saving figures as parts of bench/results.json, the one file docs/generate.py reads them from."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEV_SET = ROOT / "tests" / "data" / "dev.jsonl"
RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "results.md"
# tests/served_app.py starts app.py and waits for it, for the tests and the benchmarks alike.
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))

# What every process started by a benchmark sees: offline, quiet, and qa importable from the work tree.
CHILD_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ) | CHILD_ENV | extra
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def set_env() -> None:
    for key, value in CHILD_ENV.items():
        os.environ.setdefault(key, value)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def ms(seconds: float) -> float:
    return seconds * 1000.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: list[float]) -> dict:
    """median, p95, min and count of a list of timings (any unit)."""
    return {
        "median": statistics.median(values) if values else float("nan"),
        "p95": percentile(values, 95),
        "min": min(values) if values else float("nan"),
        "n": len(values),
    }


def latency_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies given in seconds, in ms (nan for none)."""
    values = [x * 1000 for x in seconds]
    return {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95), "p99_ms": percentile(values, 99),
            "max_ms": max(values, default=float("nan"))}


@contextmanager
def stopwatch():
    """with stopwatch() as t: ...; t() is the elapsed seconds (frozen at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


class Timed:
    """Wraps a method of a class so every call's duration is recorded; undone by .restore()."""

    def __init__(self, cls: type, method: str):
        self.cls, self.method, self.calls, self.cpu_calls = cls, method, [], []
        self.original = getattr(cls, method)
        original, calls, cpu_calls = self.original, self.calls, self.cpu_calls

        def timed(obj, *args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original(obj, *args, **kwargs)
            finally:
                calls.append(time.perf_counter() - start)
                cpu_calls.append(time.process_time() - cpu)

        setattr(cls, method, timed)

    @property
    def seconds(self) -> float:
        return sum(self.calls)

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the process (all its threads) during the calls: less sensitive to other jobs than wall time."""
        return sum(self.cpu_calls)

    def restore(self) -> None:
        setattr(self.cls, self.method, self.original)


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MB, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out


def tree_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time so far of processes (all their threads), from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    """What the figures were measured on, including how busy the CPU was."""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "qa"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return {
        "cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "commit": commit + (" + uncommitted changes in qa/" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def read_results() -> dict:
    """bench/results.json: every part saved so far, by name ({} before the first)."""
    return json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}


def write_results(results: dict) -> None:
    """results as bench/results.json, and bench/results.md rendered from it (bench/report.py)."""
    from report import render

    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    RESULTS_MD.write_text(render(results))


def save(part: str, value: dict) -> None:
    """value, stamped with machine(), as `part` of bench/results.json; every other part kept as it is."""
    # Read again just before writing: another run (a long scale run, say) may have saved its part meanwhile.
    results = read_results()
    results[part] = value | {"machine": machine()}
    write_results(results)


def save_run(part: str, run: dict) -> None:
    """run, stamped with machine(), in place of the same model's run in `part` of bench/results.json
    ({"runs": [...]}, one run per model); the other models' runs keep their own figures and machine."""
    results = read_results()
    runs = results.get(part, {}).get("runs", [])
    models = [r.get("model") for r in runs]
    run = run | {"machine": machine()}
    if run["model"] in models:
        runs[models.index(run["model"])] = run  # in its place: the tables keep their order
    else:
        runs.append(run)
    results[part] = results.get(part, {}) | {"runs": runs}
    write_results(results)


def index_model(index: Path) -> str:
    """The short name of the model an index folder was built with (from its manifest)."""
    from qa.index import read_manifest

    return Path(read_manifest(index)["model"]["name"]).name


def busy_share(seconds: float = 5.0) -> float:
    """Share of all CPUs used by processes at normal priority over the next `seconds`.

    /proc/stat counts niced processes apart, so a benchmark's own background build (run with
    `nice`) does not count: what is left is other people's work competing with a measurement.
    """
    def sample() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]

    a = sample()
    time.sleep(seconds)
    b = sample()
    d = [y - x for x, y in zip(a, b)]
    user, _nice, system, *rest = d
    total = sum(d[:8])
    return (user + system + rest[2] + rest[3]) / total if total else 0.0  # + irq, softirq


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def app_processes(pid: int) -> list[dict]:
    """The app (pid) and its child processes, each {"pid", "role", "rss", "pss"} (MB, /proc/<pid>/smaps_rollup).

    role: "app", "worker" (qa.engine's, spawned by multiprocessing) or "tracker" (multiprocessing's resource
    tracker). RSS counts shared pages (libraries, the page cache) in every process; PSS splits them between
    the processes sharing them, so the PSS of all processes adds up to what the app takes from the machine.
    """
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    out = []
    for p in pids:
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
            sizes = {}
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    sizes[key.lower()] = int(value.split()[0]) / 1024
        except OSError:  # it ended meanwhile
            continue
        role = "app" if p == pid else "tracker" if "resource_tracker" in cmdline else "worker"
        out.append({"pid": p, "role": role, **sizes})
    return out


def worker_pids(pid: int) -> list[int]:
    """The app's (pid) worker processes."""
    return [p["pid"] for p in app_processes(pid) if p["role"] == "worker"]


@contextmanager
def cpu_per_request(pid: int, requests: int) -> Iterator[dict[str, float]]:
    """CPU ms per request over the block, in the dict yielded (filled when the block ends): of the app (pid)
    and its workers ("server_cpu_ms") and of this process, the clients ("client_cpu_ms"). On a shared
    machine it says where a request's cost goes better than latency does."""
    pids = [pid, *worker_pids(pid)]
    server, client, out = cpu_seconds(*pids), time.process_time(), {}
    yield out
    out["server_cpu_ms"] = (cpu_seconds(*pids) - server) / requests * 1000
    out["client_cpu_ms"] = (time.process_time() - client) / requests * 1000


def memory_line(processes: list[dict]) -> str:
    """"app 218 / 174, 2 workers 557 / 512 + 557 / 512, tracker 13 / 7; total 1345 / 1205 MB (RSS / PSS)"."""
    parts = []
    for role in ("app", "worker", "tracker"):
        mine = [p for p in processes if p["role"] == role]
        if mine:
            label = f"{len(mine)} workers" if role == "worker" and len(mine) > 1 else role
            parts.append(f"{label} " + " + ".join(f"{p['rss']:.0f} / {p['pss']:.0f}" for p in mine))
    rss, pss = sum(p["rss"] for p in processes), sum(p["pss"] for p in processes)
    return f"{', '.join(parts)}; total {rss:.0f} / {pss:.0f} MB"


def queueing_floor_ms(clients: int, ask_ms: float, cores: int | None = None) -> float:
    """The wait of the last of `clients` simultaneous questions if the cores did nothing but answer, one
    in-process ask at a time each: clients x ask / cores. A p95 below it is impossible."""
    return clients * ask_ms / (cores or os.cpu_count() or 1)


def dev_items(path: Path = DEV_SET) -> list[dict]:
    """The dev set's items: {"turns": [a question and its follow-ups], …}."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def ask_median_ms(index: Path, questions: list[str], rounds: int, check_stale: bool = True) -> float:
    """bot.ask in this process, median over the questions asked `rounds` times after a first, uncounted
    round: the unit of the queueing floor."""
    import qa

    bot = qa.load(index, check_stale=check_stale)
    for q in questions:
        bot.ask(q)
    times = []
    for _ in range(rounds):
        for q in questions:
            began = time.perf_counter()
            bot.ask(q)
            times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000
