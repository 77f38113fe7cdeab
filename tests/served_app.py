"""The one place tests start app.py and talk to it: the server, gradio_client, and Chromium.

`serve()` runs app.py in a subprocess in a chosen working folder, with the environment a user has and
(by default) a guard that records every non-loopback connection or name lookup the server attempts
(netguard.py, installed by a sitecustomize.py). The benchmarks in bench/ start the app with it too
(bench/measure.py puts this folder on sys.path). `ChatPage` is a Chromium tab on it, driven by Playwright; the
`browser` fixture in conftest.py launches Debian's Chromium (never `playwright install`: it downloads
browsers).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 180  # a hang guard, not a timing: a stale index is rebuilt before the server starts


def write_guard(folder: Path) -> Path:
    """A folder holding the network guard (netguard.py) and a sitecustomize.py that installs it at
    interpreter start: put the folder first on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("netguard.py"), folder / "netguard.py")
    (folder / "sitecustomize.py").write_text("import netguard\n\nnetguard.install()\n", "utf-8")
    return folder


def status(url: str, timeout: float = 5) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """One raw HTTP/1.1 exchange: (status, body). The server may answer before the body is all sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):  # it answered and closed: the answer is queued
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:  # after the answer, for the unsent rest of the body
            pass
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@dataclass
class App:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    net_log: Path | None
    copier: threading.Thread | None = None  # copies the app's output into log

    def output(self) -> str:
        if self.copier is not None and self.proc.poll() is not None:
            self.copier.join(timeout=15)  # the last lines the app wrote before it exited
        return self.log.read_text("utf-8", errors="replace")

    def workers(self) -> list[int]:
        """The process ids of the app's worker processes (qa.engine), from /proc: its children that
        multiprocessing spawned, not its resource tracker."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return sorted(int(p) for p in children
                      if "spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"))

    def attempts(self) -> list[str]:
        """Non-loopback connections and lookups the server attempted (the guard refused them)."""
        if self.net_log is None or not self.net_log.exists():
            return []
        return self.net_log.read_text("utf-8").splitlines()


def app_env(guard: Path | None = None, net_log: Path | None = None) -> dict[str, str]:
    """The environment a user has: none of the HF_/TRANSFORMERS_/GRADIO_ settings (app.py sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "GRADIO_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (guard, ROOT) if p)
    env["PYTHONUNBUFFERED"] = "1"  # the log shows what the server printed so far
    if net_log is not None:
        env["QA_NET_GUARD_LOG"] = str(net_log)
    return env


_RUNNING = re.compile(r"Running on local URL:  (http://127\.0\.0\.1:(\d+)/)")


def start(*args: str, workdir: Path, env: dict[str, str], log: Path, app: Path = ROOT / "app.py",
          port: int = 0) -> tuple[subprocess.Popen, re.Match | None, threading.Thread]:
    """`python app.py --port port *args` in workdir, its output copied to log (by the thread returned);
    returns once it says where it listens ((proc, the match of that line, …)) or has exited ((proc, None, …)).

    Port 0 lets the app take a free port itself and say which: a port picked here and closed before
    the app binds it could be taken by then. `app` may be another checkout's app.py (a benchmark's baseline).
    """
    proc = subprocess.Popen([sys.executable, str(app), "--port", str(port), *args], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**env, "PYTHONUNBUFFERED": "1"})  # the line saying where it listens comes at once
    found: list[re.Match] = []
    ready = threading.Event()

    def copy() -> None:  # runs until the app exits, so the log keeps growing while tests run
        with open(log, "wb") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if not found and (m := _RUNNING.search(line.decode("utf-8", "replace"))):
                    found.append(m)
                    ready.set()
        ready.set()

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()
    if not ready.wait(STARTUP_SECONDS):
        stop(proc)
        raise AssertionError(f"app.py did not say where it listens within {STARTUP_SECONDS} s:\n"
                             f"{log.read_text('utf-8', errors='replace')}")
    return proc, (found[0] if found else None), copier


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serve(*args: str, workdir: Path, guard: bool = True, env: dict[str, str] | None = None,
          app: Path = ROOT / "app.py", port: int = 0) -> Iterator[App]:
    """`python app.py --port port *args` in workdir (its log there too), with env added to a user's; yields
    once it listens and answers 200; always stops it."""
    log = Path(tempfile.mkstemp(dir=workdir, prefix="app-", suffix=".log")[1])
    net_log = log.with_suffix(".net.log") if guard else None
    env = {**app_env(write_guard(workdir / "guard") if guard else None, net_log), **(env or {})}
    proc, running, copier = start(*args, workdir=workdir, env=env, log=log, app=app, port=port)
    try:
        if running is None:
            proc.wait(timeout=15)
            copier.join(timeout=15)
            raise AssertionError(f"app.py exited with {proc.returncode}:\n{log.read_text('utf-8', errors='replace')}")
        served = App(running.group(1), int(running.group(2)), proc, log, net_log, copier)
        assert status(served.url, timeout=30) == 200, served.output()
        yield served
    finally:
        stop(proc)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
BOX, BOT, USER = "textarea[data-testid='textbox']", "[data-testid='bot']", "[data-testid='user']"
PANEL = "#qa-context"
ANSWER_TIMEOUT = 30_000  # ms; a hang guard, not a timing


class ChatPage:
    """A browser tab on the app, ready once the question box and the context panel are on the page.

    Records every dialog (there must be none). `init_script` runs in every frame before the page's own.
    """

    def __init__(self, browser, url: str, width: int = 1280, height: int = 900, init_script: str | None = None):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.dialogs: list[str] = []
        self.page.on("dialog", self._on_dialog)
        if init_script:
            self.page.add_init_script(init_script)
        self.page.goto(url, wait_until="load")
        self.box = self.page.locator(BOX).first
        self.box.wait_for()
        self.page.locator(PANEL).wait_for(state="attached")  # Gradio mounts components one by one

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ask(self, question: str):
        """Type a question, send it, and return the new bot message."""
        n = self.page.locator(BOT).count()
        self.box.fill(question)
        self.box.press("Enter")
        return self.wait_for_reply(n)

    def wait_for_reply(self, before: int):
        from playwright.sync_api import expect

        expect(self.page.locator(BOT)).to_have_count(before + 1, timeout=ANSWER_TIMEOUT)
        return self.page.locator(BOT).nth(before)

    def close(self) -> None:
        self.page.close()


def client(url: str, **kwargs):
    """A gradio_client Client that sends no telemetry (its analytics_enabled defaults to on)."""
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, **kwargs)
