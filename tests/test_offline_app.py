"""The app starts and answers 100 questions in a process tree that has no network at all.

tests/test_offline.py proves that building and asking from the command line need no network. Here
the rest: `python app.py` and a gradio_client driving it both run under `unshare -n` (a fresh
network namespace with only a loopback interface), with a guard loaded as sitecustomize.py into
both processes that records any attempt at a non-loopback connection or name lookup. Either layer
alone would catch a hidden network call; the test fails on any recorded attempt, on any failed
request, and on any answer that differs from the library's in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DEV_SET, copy_index
from served_app import ROOT, app_env, status, write_guard

QUESTIONS = 100


def conversations(n: int = QUESTIONS) -> list[list[str]]:
    """The dev set's conversations (follow-ups included), repeated until they hold n questions."""
    base = [json.loads(line)["turns"] for line in DEV_SET.read_text("utf-8").splitlines() if line.strip()]
    out, count = [], 0
    while count < n:
        for turns in base:
            turns = turns[: n - count]
            if turns:
                out.append(turns)
                count += len(turns)
    return out


def drive(index: str, workdir: str, port: int) -> None:
    """Inside the namespace: start the app, ask every conversation, write what came back to results.json."""
    from gradio_client import Client

    folder = Path(workdir)
    env = app_env(folder / "guard", folder / "net.log")
    with open(folder / "app.log", "wb") as log:
        app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", index, "--port", str(port)],
                               cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    results: dict = {"replies": [], "errors": []}
    try:
        deadline = time.monotonic() + 180
        while status(url, timeout=2) != 200:
            if app.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"app.py did not start (exit code {app.poll()})")
            time.sleep(0.2)
        client = Client(url, verbose=False, analytics_enabled=False)
        for turns in conversations():
            history: list[dict] = []
            for turn in turns:
                try:
                    reply = client.predict(turn, history, api_name="/chat")
                except Exception as e:  # recorded, and the test fails on it
                    results["errors"].append(f"{turn}: {type(e).__name__}: {e}")
                    continue
                results["replies"].append([turn, history, reply])
                history = history + [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
        results["retrieve"] = client.predict("address", 1, api_name="/retrieve")
        results["remote_file"] = status(url + "gradio_api/file=https://huggingface.co/robots.txt")
    finally:
        app.terminate()
        app.wait(timeout=30)
        (folder / "results.json").write_text(json.dumps(results), "utf-8")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="unshare -n is not permitted here (needs root or user namespaces)")
def test_app_starts_and_answers_100_questions_without_a_network(seed_index, seed_bot, tmp_path):
    index = tmp_path / "index"
    copy_index(seed_index, index)
    write_guard(tmp_path / "guard")
    env = app_env(tmp_path / "guard", tmp_path / "net.log")
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).parent)
    env["HF_HUB_OFFLINE"] = "1"  # for gradio_client in the driver; app.py gets none of these
    script = f"import test_offline_app as t; t.drive({str(index)!r}, {str(tmp_path)!r}, 7860)"
    # Only loopback exists in the new namespace, and it starts down.
    run = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"', sys.executable,
                          script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = (tmp_path / "app.log").read_text("utf-8", errors="replace") if (tmp_path / "app.log").exists() else ""
    assert run.returncode == 0, run.stderr[-3000:] + log[-3000:]
    results = json.loads((tmp_path / "results.json").read_text("utf-8"))

    assert results["errors"] == []
    assert len(results["replies"]) == QUESTIONS
    for question, history, reply in results["replies"]:
        assert reply == seed_bot.ask(question, history=history).text, question
    assert sum("179 national member parliaments" in r for _, _, r in results["replies"]) >= 4
    assert "Chem. du Pommier 5" in results["retrieve"][0]["text"]
    assert results["remote_file"] == 403
    assert "Traceback" not in log and "Running on local URL:  http://127.0.0.1:7860" in log
    attempts = (tmp_path / "net.log").read_text("utf-8") if (tmp_path / "net.log").exists() else ""
    assert attempts == "", f"attempted connections or lookups:\n{attempts}"


def test_the_guard_records_and_refuses_what_it_must(tmp_path):
    """The guard used above and in test_hardening: outside connections and lookups fail and are recorded."""
    env = app_env(write_guard(tmp_path / "guard"), tmp_path / "net.log")
    code = ("import socket\n"
            "for target in [('192.0.2.1', 80), ('huggingface.co', 443), ('127.0.0.1', 9)]:\n"
            "    try: socket.create_connection(target, timeout=5)\n"
            "    except OSError as e: print(type(e).__name__)\n")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["OSError", "gaierror", "ConnectionRefusedError"], run.stderr
    recorded = [line.split(" ", 1)[1] for line in (tmp_path / "net.log").read_text("utf-8").splitlines()]
    assert recorded == ["('192.0.2.1', 80)", "'huggingface.co'"]
