"""Where answers are computed: worker processes that each hold the read-only index, or this process's threads.

An ask is CPU-bound, partly Python (the GIL) and partly onnxruntime; one process does not use two cores
(measured on the seed index, the same minute: two threads of one process 25.6 asks/s, two processes
39.6). So the app answers in `workers` processes, by default one per core. Each loads the index folder
itself (no staleness check: the app did that), reads it and never writes it, and follows its rebuilds
(`qa.server.Reloader`: each process notices the new manifest on its next question). Workers are started
with spawn, not fork (the app's process runs threads), and import neither gradio nor torch.

Both the JSON API (qa.api) and the chat UI (qa.ui) send their work here, into one first-come first-served
pool: a module-level function `fn(bot, *args)`, pickled by name, runs where the bot is. Each call comes back
with the id of the process that ran it, counted in `answered` (and shown by /api/health).

The trade-off is memory: each worker holds its own query encoder (~450 MB of ~545 MB with mpnet); the
app's own process then holds none. `workers=0` answers in two threads of this process instead, with the
bot it is given: the least memory, about one core.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
from collections import Counter, defaultdict
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import QAError

if TYPE_CHECKING:
    from .bot import Bot

logger = logging.getLogger(__name__)

T = TypeVar("T")
THREADS = 2  # workers=0: asks at once in this process
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_worker_bot: Callable[[], "Bot"] | None = None  # in a worker process: its bot, following rebuilds


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _start_worker(index_dir: str, log_level: int | None) -> None:
    """Runs once in each worker process: bound to the app's life, logging like the app's, the index loaded."""
    global _worker_bot
    _exit_with_parent()
    if log_level is not None:
        logging.basicConfig(level=logging.WARNING,
                            format=f"%(asctime)s %(levelname)s %(name)s [worker {os.getpid()}]: %(message)s")
        logging.getLogger("qa").setLevel(log_level)
    from . import load
    from .server import Reloader, release_memory

    _worker_bot = Reloader(load(index_dir, check_stale=False), index_dir)
    release_memory()
    logger.info("loaded %s/", index_dir)  # the format names the worker


def _exit_with_parent() -> None:
    """Ask Linux to end this process when the app's process ends, even by SIGKILL (which leaves the pool no
    chance to stop its workers): otherwise each orphan would keep its ~550 MB. No-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the app ended before the call: nobody is left to send the signal
        os._exit(0)


def _in_worker(fn: Callable[..., T], args: tuple) -> tuple[int, T]:
    return os.getpid(), fn(_worker_bot(), *args)


def _started() -> int:
    return os.getpid()


class Engine:
    """Runs fn(bot, *args) in `workers` processes, each with its own bot on index_dir; or, with workers=0,
    in THREADS threads of this process with current() (a Reloader or any function giving the bot)."""

    def __init__(self, current: Callable[[], "Bot"] | None = None, index_dir: str | Path | None = None,
                 workers: int = 0, log_level: int | None = None):
        if workers < 0:
            raise ValueError(f"workers must be 0 (this process) or more, not {workers}")
        if workers and index_dir is None:
            raise ValueError("worker processes need the index folder to load")
        if not workers and current is None:
            raise ValueError("without worker processes, give current: the bot to ask")
        self.current, self.workers, self.log_level = current, workers, log_level
        self.index_dir = str(index_dir) if index_dir is not None else None
        self.answered: dict[int, Counter] = defaultdict(Counter)
        self._pool = self._new_pool()

    def _new_pool(self) -> Executor:
        if not self.workers:
            return ThreadPoolExecutor(THREADS, thread_name_prefix="qa-ask")
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self.index_dir, self.log_level))
        for _ in range(self.workers):  # start them all now (the spawn context starts one per waiting task)
            pool.submit(_started)
        return pool

    def _job(self, fn: Callable, args: tuple) -> tuple[Callable, tuple]:
        if self.workers:
            return _in_worker, (fn, args)
        # current() too runs in the thread: after a rebuild, that thread loads the new index
        return (lambda: (os.getpid(), fn(self.current(), *args))), ()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(bot, *args) where the bots are; fn must be a module-level function (workers get it by name)."""
        job, job_args = self._job(fn, args)
        pool = self._pool
        loop = asyncio.get_running_loop()
        try:
            pid, result = await loop.run_in_executor(pool, job, *job_args)
        except BrokenProcessPool:  # a worker died (killed, out of memory): start new ones, answer this
            logger.warning("a worker process died; starting %d new ones", self.workers)
            if self._pool is pool:
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            pid, result = await loop.run_in_executor(self._pool, job, *job_args)
        self.answered[pid][fn.__name__] += 1
        return result

    def run_now(self, fn: Callable[..., T], *args: Any) -> T:
        """run, blocking: for start-up work such as the UI's examples (waits for a worker to be ready)."""
        job, job_args = self._job(fn, args)
        try:
            pid, result = self._pool.submit(job, *job_args).result()
        except BrokenProcessPool as e:
            raise QAError(f"the worker processes could not load the index in {self.index_dir}/ (their error is in "
                          "the log above) — fix it, or rebuild it with: python -m qa build") from e
        self.answered[pid][fn.__name__] += 1
        return result

    def manifest(self) -> dict:
        """The manifest of the index being served (read from its folder, so it follows rebuilds)."""
        if self.current is not None:
            return self.current().manifest
        from .index import read_manifest

        return read_manifest(self.index_dir)

    def answered_by(self) -> dict[str, dict[str, int]]:
        """Calls answered, by process id and function: {"1234": {"ask_json": 10, "turn": 3}}."""
        return {str(pid): dict(counts) for pid, counts in sorted(self.answered.items())}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
