"""The server: what runs the app, apart from what it shows (qa.ui) and what it answers (qa.api, qa.engine).

- `import_gradio`: `import gradio` without the type stubs Gradio regenerates on every import.
- `load_or_build` and `ensure_index`: the index checked, and built first when missing, stale or damaged.
- `Reloader`: the bot on an index folder, following rebuilds (in this process or in each worker).
- `Guard`: ASGI middleware in front of Gradio that refuses unused routes, remote files and large bodies.
- `launch`: Gradio's server with safe defaults (127.0.0.1, no share link, no monitoring, a bounded queue).

Nothing here lays out a page or answers a question. Gradio, FastAPI and the index are imported inside
the functions that need them.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.abc
import importlib.machinery
import json
import logging
import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IndexCorruptError, IndexNotFoundError, QAError, StaleIndexError

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

    from .bot import Bot

logger = logging.getLogger(__name__)

QUEUE_SIZE = 64
# Gradio keeps a copy of the page's config (~35 KB) plus the conversation for every session, API calls
# included, and by default up to 10,000 of them: hundreds of MB. The least recently used go first.
SESSIONS = 1000


# ---- the index ------------------------------------------------------------------------------------


def load_or_build(index_dir: str | Path = "index", corpus_dir: str | Path | None = None) -> "Bot":
    """Load the index; build it first when it is missing, stale or damaged (and log that).

    corpus_dir defaults to the folder the index was built from, else `corpus`. The pages freed while
    loading go back to the system (release_memory).
    """
    from . import build_index, load

    try:
        bot = load(index_dir, corpus_dir=corpus_dir)
    except (IndexNotFoundError, StaleIndexError, IndexCorruptError) as e:
        source = Path(corpus_dir) if corpus_dir is not None else _recorded_corpus(index_dir)
        why = str(e).split(" — run:")[0]
        logger.warning("%s; building the index from %s/ …", why, source)
        report = build_index(corpus_dir=source, index_dir=index_dir)
        logger.info("built %s/: %s", index_dir, report.summary())
        bot = load(index_dir, corpus_dir=source)
    release_memory()
    return bot


def _recorded_corpus(index_dir: str | Path) -> Path:
    from .index import read_manifest

    try:
        recorded = read_manifest(index_dir).get("corpus_dir")
    except QAError:
        recorded = None
    return Path(recorded) if recorded and Path(recorded).is_dir() else Path("corpus")


class Reloader:
    """The bot on an index folder, swapped for the new one when a rebuild replaces its manifest.

    Each request costs one stat of manifest.json (a rebuild replaces it atomically, so its inode
    changes). One request loads the new index while the others keep using the old bot, which also
    stays in service if the new index cannot be loaded.
    """

    def __init__(self, bot: "Bot", index_dir: str | Path):
        self.bot, self.folder = bot, Path(index_dir)
        self._stamp = _manifest_stamp(self.folder)
        self._lock = threading.Lock()

    def __call__(self) -> "Bot":
        stamp = _manifest_stamp(self.folder)
        if stamp == self._stamp or stamp is None or not self._lock.acquire(blocking=False):
            return self.bot
        try:
            if stamp != self._stamp:
                from . import load

                self._stamp = stamp  # a broken index is tried once, not on every request
                try:
                    self.bot = load(self.folder, check_stale=False)
                    counts = self.bot.manifest.get("counts", {})
                    logger.info("reloaded %s/ in process %d: %s documents, %s chunks", self.folder, os.getpid(),
                                counts.get("documents"), counts.get("chunks"))
                except Exception as e:  # whatever the failure, the previous bot still answers
                    logger.warning("%s/ changed but cannot be loaded (%s); still serving the previous index",
                                   self.folder, e)
        finally:
            self._lock.release()
        release_memory()  # the previous bot's pages, and those freed while loading the new one
        return self.bot


def _manifest_stamp(folder: Path) -> tuple[int, int, int] | None:
    from .index import MANIFEST

    try:
        st = os.stat(folder / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def ensure_index(index_dir: str | Path = "index", corpus_dir: str | Path | None = None) -> None:
    """load_or_build for a process that does not answer (its workers do): the index checked, built if it must
    be, and not kept.

    The check names the reference encoder, which loads on first use (never, here): the index, its files and
    its corpus are checked as `load` checks them without the ~450 MB model (0.6 s instead of 1.2 s).
    Whatever that finds, load_or_build then decides as it always does.
    """
    from . import load

    try:
        load(index_dir, corpus_dir=corpus_dir, encoder="sentence-transformers")
    except QAError:  # missing, stale, damaged, a corpus that is not there, a model only the ONNX encoder has
        bot = load_or_build(index_dir, corpus_dir)
        del bot
    release_memory()


def release_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim), after loading or dropping a bot.

    Loading the ONNX encoder parses the whole model file and frees the copy afterwards; glibc keeps those
    pages: a worker holds ~750 MB after loading, ~545 MB after this (mpnet, the seed index). No-op elsewhere.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# ---- Gradio -----------------------------------------------------------------------------------------


class _NoStubWriting(importlib.abc.MetaPathFinder):
    """Loads gradio.component_meta with its `create_or_modify_pyi` made a no-op.

    Gradio 6 regenerates a .pyi type stub for each of its ~80 component classes on every import,
    by parsing their source files: about 60% of `import gradio` here (1.5 of 2.5 s), and a write
    into site-packages. Stubs are for type checkers; a running app has no use for them.
    """

    TARGET = "gradio.component_meta"

    def find_spec(self, name, path, target=None):
        if name != self.TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


def import_gradio():
    """`import gradio`, without its stub writing (see _NoStubWriting); the module.

    The finder stays installed: removing it while another thread imports could make that thread's
    import skip a finder. It answers for one module name only and costs nothing otherwise.
    """
    if "gradio" not in sys.modules:
        if not any(isinstance(f, _NoStubWriting) for f in sys.meta_path):
            sys.meta_path.insert(0, _NoStubWriting())
        import gradio  # noqa: F401
    return sys.modules["gradio"]


# ---- in front of Gradio -----------------------------------------------------------------------------


# Gradio's file route fetches a URL given in place of a path (/gradio_api/file=https://…), looking
# its host up over DNS-over-HTTPS: an offline app must not make requests on a caller's behalf.
_REMOTE_FILE = re.compile(r"/gradio_api/file[=/][a-z][a-z0-9+.-]*:", re.I)
# Routes Gradio mounts for features this app does not have. Each takes a body to disk or to another
# host, or changes the app: file uploads (unlimited: 300 MB was written in 1.1 s), recordings, streamed
# media input, component server calls, the Spaces proxy, run history, vibe editing, dev reload.
_UNUSED_ROUTE = re.compile(
    r"/(gradio_api/)?(upload|upload_progress|process_recording|stream/|component_server|proxy=|"
    r"run-history/|vibe-|undo-vibe-|dev/reload)", re.I)
MAX_BODY_BYTES = 1 << 20  # the largest legitimate body is a 2,000-character question with 40 messages


class Guard:
    """ASGI middleware in front of Gradio: refuses what this app never serves before Gradio reads it.

    Unused routes (see _UNUSED_ROUTE) and file requests naming a URL get 403 without their body being
    read; a body over MAX_BODY_BYTES gets 413 — at once when Content-Length says so, else as soon as the
    streamed bytes pass the cap (the app then sees the client gone). Refusals are JSON, like the API's.
    """

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if _REMOTE_FILE.match(path):
            return await refuse(send, 403, "This app serves no remote files.")
        if _UNUSED_ROUTE.match(path):
            return await refuse(send, 403, "This app takes no uploads, recordings or streams; "
                                           "ask questions with POST /api/ask.")
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await refuse(send, 413, self._too_large())
        await _Capped(self, scope, receive, send).run()

    def _too_large(self) -> str:
        return f"The request body is over {self.max_body:,} bytes; a question is at most 2,000 characters."


class _Capped:
    """One request whose streamed body is counted; past the cap, 413 and a disconnect for the app."""

    def __init__(self, guard: Guard, scope, receive, send):
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.received, self.started, self.refused = 0, False, False

    async def run(self):
        await self.guard.app(self.scope, self.receive, self.send)

    async def receive(self):
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.guard.max_body:
                self.refused = True
                if not self.started:
                    await refuse(self._send, 413, self.guard._too_large())
                return {"type": "http.disconnect"}
        return message

    async def send(self, message):
        if self.refused:  # the refusal was the response
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def refuse(send, status: int, message: str) -> None:
    """A complete JSON error response: {"error": message}."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


QUEUE_POLL_SECONDS = 0.02  # measured: idle 6.6% -> 1.3% of a core; a /chat round trip stays ~77 ms


def set_up_queue(demo: "gr.Blocks", jobs: int = 2) -> None:
    """A bounded queue that runs `jobs` at a time and polls for work every QUEUE_POLL_SECONDS.

    Gradio's queue polls every 1 ms for work and every 10 ms for progress, even with nobody asking:
    5-6% of a core. This app reports no progress, and a request waits at most QUEUE_POLL_SECONDS more.
    """
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=jobs)
    queue = getattr(demo, "_queue", None)
    for name in ("sleep_when_free", "progress_update_sleep_when_free"):
        if isinstance(getattr(queue, name, None), float):
            setattr(queue, name, max(getattr(queue, name), QUEUE_POLL_SECONDS))


PORT_ATTEMPTS = 5  # port 0: free ports tried, in case another process takes one between check and bind


def bindable_port(host: str, port: int) -> int:
    """The port a server can listen on at host now (port 0: a free one the system picks).

    Raises the OSError that says why not: the port is in use (EADDRINUSE), host is no address of this
    machine (EADDRNOTAVAIL), or no address at all (socket.gaierror). Gradio would report each of them
    as "Cannot find empty port".
    """
    host = host.strip("[]")  # "[::1]" as in a URL
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        s.bind((host, port))
        return s.getsockname()[1]


def app_kwargs(api: "FastAPI | None" = None) -> dict:
    """The FastAPI options of the served app: the Guard in front, the JSON API (qa.api) at /api."""
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    return {"middleware": [Middleware(Guard)], "routes": [Mount("/api", app=api)] if api is not None else []}


def launch(demo: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, api: "FastAPI | None" = None,
           jobs: int = 2, css: str | None = None) -> None:
    """Serve the app with safe defaults: local only, bounded queue running `jobs` at once, no monitoring,
    no extra files; with api (qa.api.build_api) mounted at /api and the page's css (qa.ui.CSS).

    Port 0 serves on any free port; the line "Running on local URL" says which. (Gradio binds a port
    by number, so it cannot be handed port 0 itself.)
    """
    set_up_queue(demo, jobs)
    for attempt in range(1 if port else PORT_ATTEMPTS):
        try:
            # quiet: Gradio's own banner suggests share=True (a public tunnel); this app only says where it is.
            demo.launch(
                server_name=host, server_port=bindable_port(host, port), share=False, enable_monitoring=False,
                ssr_mode=False, mcp_server=False, pwa=False, show_error=False, css=css, footer_links=["api"],
                app_kwargs=app_kwargs(api), state_session_capacity=SESSIONS, quiet=True, prevent_thread_lock=True,
            )
            break
        except OSError:
            if port or attempt == PORT_ATTEMPTS - 1:
                raise
    print(f"* Running on local URL:  {demo.local_url}", flush=True)
    demo.block_thread()
