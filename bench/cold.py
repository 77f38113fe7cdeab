"""Cold start and memory: fresh processes, timed from launch.

- `python -m qa ask "…" --index I`: launch to the first byte of the printed answer.
  `-X importtime` shows what the imports cost and proves torch is never imported;
  a second child times the phases of `qa.load` to show what the rest is.
- `python app.py --index I --port P`: launch to the first HTTP 200 on `/`. Whether
  torch got loaded is read from the process's memory map (libtorch mapped or not).
- Memory: the app's resident set (VmRSS) and peak (VmHWM) after answering every
  dev question twice through its `/chat` API; and the same for a bare `qa.load` process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from measure import PYTHON, ROOT, child_env, proc_status, summary
from served_app import App, client, serve

QUESTION = "When was the IPU founded?"
HEAVY = ("torch", "sentence_transformers", "transformers", "gradio")


def _first_output(cmd: list[str], timeout: float = 60) -> tuple[float, float, str]:
    """(seconds to the first stdout byte, seconds to exit, stdout) of a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(1)
    t_first = time.perf_counter() - start
    rest, err = proc.communicate(timeout=timeout)
    t_exit = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return t_first, t_exit, (first + rest).decode()


def importtime(cmd_args: list[str]) -> dict:
    """Top-level imports by cumulative time, and whether any heavy package was imported at all."""
    proc = subprocess.run([PYTHON, "-X", "importtime", *cmd_args], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    top_level: dict[str, int] = {}
    seen: set[str] = set()
    for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \|( +)(\S+)$", proc.stderr, re.M):
        cumulative, indent, name = int(m.group(1)), len(m.group(2)), m.group(3)
        seen.add(name.split(".")[0])
        if indent == 1:
            top_level[name] = top_level.get(name, 0) + cumulative
    top = sorted(top_level.items(), key=lambda kv: -kv[1])[:8]
    return {
        "total_s": sum(top_level.values()) / 1e6,
        "top": [(k, v / 1e6) for k, v in top],
        "heavy_imported": sorted(h for h in HEAVY if h in seen),
    }


# Run in a child: the phases of `python -m qa ask`, timed one by one (what dominates the cold start).
PHASES = r"""
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = time.perf_counter() - t0
import qa.cli, qa.bot, qa.index, qa.embedding, qa.retrieval; mark("imports")
from qa.index import read_manifest, staleness, load_index
m = read_manifest(sys.argv[1]); staleness(m, m.get("corpus_dir")); mark("manifest + staleness check")
data = load_index(sys.argv[1]); mark("load_index (hash check, JSON, faiss)")
enc = qa.bot._encoder(data, "auto"); mark("ONNX session")
bot = qa.bot.Bot(data, enc); mark("Bot() (BM25 over chunks and sentences)")
bot.ask(sys.argv[2]); mark("first ask")
print(json.dumps({"marks": marks, "encoder": type(enc).__name__,
                  "heavy": sorted(m for m in ("torch", "sentence_transformers", "gradio") if m in sys.modules)}))
"""


def cli(index_dir: Path, runs: int = 5) -> dict:
    cmd = [PYTHON, "-m", "qa", "ask", QUESTION, "--index", str(index_dir)]
    _first_output(cmd)  # the page cache holds the files from here on, as on any second start
    firsts, exits = [], []
    for _ in range(runs):
        first, exit_, out = _first_output(cmd)
        firsts.append(first)
        exits.append(exit_)
    phases = _phases(index_dir)
    return {
        "to_answer_s": summary(firsts), "to_exit_s": summary(exits), "answer": out.strip().splitlines()[0][:120],
        "imports": importtime(["-m", "qa", "ask", QUESTION, "--index", str(index_dir)]),
        "phases": phases,
    }


def _phases(index_dir: Path) -> dict | None:
    """The cold path's phases timed one by one; None when qa's internals have moved on (a diagnostic only)."""
    proc = subprocess.run([PYTHON, "-c", PHASES, str(index_dir), QUESTION], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    if proc.returncode:
        print(f"  (phase timing unavailable: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    prev, steps = 0.0, []
    for name, at in result["marks"].items():
        steps.append((name, at - prev))
        prev = at
    return {"steps": steps, "heavy": result["heavy"], "encoder": result["encoder"]}


def _torch_mapped(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@contextmanager
def _served(index_dir: Path) -> Iterator[tuple[App, float]]:
    """app.py on the index, and the seconds from its launch to its first HTTP 200 on `/`; stopped after."""
    with tempfile.TemporaryDirectory(prefix="qa-cold-") as tmp:
        start = time.perf_counter()
        with serve("--index", str(index_dir), workdir=Path(tmp), guard=False, env=child_env()) as app:
            yield app, time.perf_counter() - start


def app(index_dir: Path, runs: int = 3) -> dict:
    """Launch-to-first-200 of app.py, median of runs (a first, uncounted launch warms the page cache)."""
    if not (ROOT / "app.py").is_file():
        return {"missing": True}
    times, torch_loaded = [], False
    for run_no in range(runs + 1):
        with _served(index_dir) as (served, seconds):
            if run_no:
                times.append(seconds)
            torch_loaded |= _torch_mapped(served.proc.pid)
    return {"to_200_s": summary(times), "torch_loaded": torch_loaded}


def app_memory(index_dir: Path, questions: list[str]) -> dict:
    """The app's RSS after start and after answering every question twice through /chat."""
    if not (ROOT / "app.py").is_file():
        return {"missing": True}
    with _served(index_dir) as (served, _):
        pid = served.proc.pid
        out = {"after_start": proc_status(pid)}
        out |= _warm_up(served.url, questions)
        out["after_warm_up"] = proc_status(pid)
        out["torch_loaded"] = _torch_mapped(pid)
        out["idle_cpu_share"] = _idle_cpu(pid)
    return out


def _idle_cpu(pid: int, seconds: float = 10.0) -> float:
    """Share of one core the process uses while nobody talks to it."""
    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = ticks()
    time.sleep(seconds)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds


def _warm_up(url: str, questions: list[str]) -> dict:
    """Every question through the app's /chat API (each twice), as a user's session would."""
    chat = client(url)
    started, answered = time.perf_counter(), 0
    for _ in range(2):
        for q in questions:
            chat.predict(q, [], api_name="/chat")
            answered += 1
    return {"warm_up_requests": answered, "warm_up_s": time.perf_counter() - started}


# Run in a child: the library alone (no UI) after answering every dev question.
LIBRARY_RSS = r"""
import json, sys
import qa
sys.path.insert(0, sys.argv[2])
from measure import dev_items, proc_status
bot = qa.load(sys.argv[1])
for _ in range(2):
    for item in dev_items():
        history = []
        for turn in item["turns"]:
            a = bot.ask(turn, history=history)
            history += [{"role": "user", "content": turn}, {"role": "assistant", "content": a.text}]
print(json.dumps(proc_status()))
"""


def library_memory(index_dir: Path) -> dict:
    proc = subprocess.run([PYTHON, "-c", LIBRARY_RSS, str(index_dir), str(Path(__file__).parent)], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])
