"""Where answers are computed: worker processes that each hold the read-only index, or this process's threads.

An ask is CPU-bound, partly Python (the GIL) and partly onnxruntime; one process does not use two cores
(measured on the seed index, the same minute: two threads of one process 25.6 asks/s, two processes
39.6). So the app answers in `workers` processes, by default one per core. Each loads the index folder
itself (no staleness check: the app did that), reads it and never writes it, and follows its rebuilds
(`qa.server.Reloader`: each process notices the new manifest on its next question). Workers are started
with spawn, not fork (the app's process runs threads), and import neither gradio nor torch.

Both the JSON API (qa.api) and the chat UI (qa.ui) send their work here, into one first-come first-served
line: a module-level function `fn(bot, *args)`, pickled by name, runs where the bot is. Calls that wait
meanwhile are taken in batches, and the questions of a batch are encoded in one call of the encoder (a
function says what it will encode with `encodes`): one query's encode reads all the model's weights for a
dozen tokens, and a batch of eight reads them once for all. Under 50 API clients on 2 cores this took the
server's CPU per request from 36 to 20 ms and its throughput from 55 to 95 requests/s (docs/SERVING.md).
Each call comes back with the id of the process that ran it, counted in `answered` (and /api/health).

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
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import QAError

if TYPE_CHECKING:
    from .bot import Bot

logger = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable)
THREADS = 2  # workers=0: asks at once in this process
# Most calls one worker answers at once. Their query vectors come out of one onnxruntime call: mpnet, CPU time
# per query, alone 24 ms, 4 at once 14 ms, 8 at once 11 ms (the weights are read once for them all).
BATCH = 8
# While another batch is being answered, a taker waits up to this long for its batch to fill. Without it, a
# busy app fell into a state where the idle taker took each question as it came: batches of 1-3, each a full
# encode, the more CPU they took the slower the app's process handed questions over. 50 chat sessions, same
# minute: p95 3.7 and 4.2x the queueing floor without, 2.1 and 2.2x with; a question alone waits nothing.
LINGER = 0.02
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_worker_bot: Callable[[], "Bot"] | None = None  # in a worker process: its bot, following rebuilds


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def capacity(workers: int) -> int:
    """The most calls the engine is given at once: two batches per worker process (or per ask thread without
    workers), one being answered and the next one waiting. Gradio's queue lets this many chat jobs run, each
    only awaiting the engine. With one batch per worker, Gradio released its jobs a few at a time and the
    batches held 4.8 calls on average (50 chat sessions, 2 workers); with two, nearly all held 8, and the
    server's CPU per request fell from 32 to 29 ms at 58-59 instead of 53 requests/s."""
    return 2 * BATCH * (workers or THREADS)


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


def encodes(texts: Callable[..., list[str]]) -> Callable[[F], F]:
    """Mark fn(bot, *args) as encoding texts(bot, *args): the engine encodes the texts of a batch's jobs in one
    onnxruntime call before running them (Bot.encoding). A wrong list costs speed, never an answer: a text
    not encoded ahead is encoded when it is asked for."""
    def mark(fn: F) -> F:
        fn.encodes = texts  # type: ignore[attr-defined]
        return fn
    return mark


def answer_batch(bot: "Bot", jobs: list[tuple[Callable, tuple]]) -> list[tuple[bool, Any]]:
    """Each job fn(bot, *args), one after another, the texts they declare (`encodes`) encoded first in one
    call: each job's (True, result) or (False, the exception it raised)."""
    texts: list[str] = []
    for fn, args in jobs:
        try:
            texts += getattr(fn, "encodes", lambda *_: [])(bot, *args)
        except Exception:  # the job itself will raise it, and say why
            pass
    results: list[tuple[bool, Any]] = []
    with bot.encoding(texts):
        for fn, args in jobs:
            try:
                results.append((True, fn(bot, *args)))
            except Exception as e:  # sent back to its caller; a bug's traceback is logged here, where it happened
                if not isinstance(e, QAError):
                    logger.exception("%s failed", _name(fn))
                results.append((False, e))
    return results


def _name(fn: Callable) -> str:
    """What a call is counted and logged as: its function's name (a partial or a callable object: its type's)."""
    return getattr(fn, "__name__", type(fn).__name__)


def _in_worker(jobs: list[tuple[Callable, tuple]]) -> tuple[int, list[tuple[bool, Any]]]:
    return os.getpid(), answer_batch(_worker_bot(), jobs)


def _started() -> int:
    return os.getpid()


class Engine:
    """Runs fn(bot, *args) in `workers` processes, each with its own bot on index_dir; or, with workers=0,
    in THREADS threads of this process with current() (a Reloader or any function giving the bot).

    Calls wait in one first-come first-served line. One thread per worker (or per ask thread) takes from it
    whatever waits, up to BATCH calls and its share of the line, runs them as one batch where the bot is,
    and takes again: alone, a question is answered as soon as it comes; under load (another batch being
    answered), a taker waits up to LINGER for a full batch, and the batch's query vectors come out of one call.
    """

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
        self.batches: Counter = Counter()  # batches run, by their number of calls
        self._pool = self._new_pool() if workers else None
        self._line: deque[tuple[Callable, tuple, Future]] = deque()
        self._changed = threading.Condition()
        self._idle = self._takers = workers or THREADS
        self._closed = False
        for n in range(self._takers):
            threading.Thread(target=self._take_and_answer, name=f"qa-engine-{n}", daemon=True).start()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self.index_dir, self.log_level))
        for _ in range(self.workers):  # start them all now (the spawn context starts one per waiting task)
            pool.submit(_started)
        return pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(bot, *args) where the bots are; fn must be a module-level function (workers get it by name)."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def submit(self, fn: Callable[..., T], *args: Any) -> "Future[T]":
        """fn(bot, *args) put in line; its future."""
        future: Future = Future()
        with self._changed:
            if self._closed:
                raise QAError("the app is stopping: no more questions are answered")
            self._line.append((fn, args, future))
            self._changed.notify()
        return future

    def run_now(self, fn: Callable[..., T], *args: Any) -> T:
        """run, blocking: for start-up work such as the UI's examples (waits for a worker to be ready)."""
        try:
            return self.submit(fn, *args).result()
        except BrokenProcessPool as e:
            raise QAError(f"the worker processes could not load the index in {self.index_dir}/ (their error is in "
                          "the log above) — fix it, or rebuild it with: python -m qa build") from e

    def _take(self) -> list[tuple[Callable, tuple, Future]] | None:
        """The next batch: its share of the line (the line split between the idle takers), at most BATCH
        calls, none cancelled meanwhile; None once the engine is closed."""
        with self._changed:
            while True:
                while not self._line and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return None
                if len(self._line) < BATCH and self._idle < self._takers:
                    # another batch is being answered: the app is busy, and more questions are on their way
                    deadline = time.monotonic() + LINGER
                    while len(self._line) < BATCH and not self._closed and (left := deadline - time.monotonic()) > 0:
                        self._changed.wait(left)
                    if self._closed:
                        return None
                share = min(BATCH, -(-len(self._line) // self._idle))
                batch = []
                while self._line and len(batch) < share:
                    job = self._line.popleft()
                    if job[2].set_running_or_notify_cancel():  # False: its caller went away
                        batch.append(job)
                if batch:
                    self._idle -= 1
                    return batch

    def _take_and_answer(self) -> None:
        """A taker thread's life. Whatever goes wrong with a batch, its calls get an answer or an error, and the
        thread goes on taking: a taker that died would leave its batch's callers waiting for ever."""
        while (batch := self._take()) is not None:
            try:
                pid, results = self._answer([(fn, args) for fn, args, _ in batch])
                with self._changed:
                    self.batches[len(batch)] += 1
                    for fn, *_ in batch:
                        self.answered[pid][_name(fn)] += 1
                for (*_, future), (ok, value) in zip(batch, results):
                    future.set_result(value) if ok else future.set_exception(value)
            except BaseException as e:  # the whole batch failed: a broken pool twice, the engine closed
                if isinstance(e, RuntimeError) and self._closed:  # the pool refused work while shutting down
                    e = QAError("the app is stopping: no more questions are answered")
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(e)
            finally:
                with self._changed:
                    self._idle += 1

    def _answer(self, jobs: list[tuple[Callable, tuple]]) -> tuple[int, list[tuple[bool, Any]]]:
        if not self.workers:
            # current() runs here: after a rebuild, this thread loads the new index
            return os.getpid(), answer_batch(self.current(), jobs)
        try:
            return self._in_pool(jobs)
        except BrokenProcessPool:  # a worker died (killed, out of memory): new ones were started, ask again
            if len(jobs) == 1:
                return self._in_pool(jobs)
        # one at a time: a call that kills its worker again fails alone, not with its batch-mates
        pid, results = os.getpid(), []
        for job in jobs:
            try:
                pid, [result] = self._in_pool([job])
            except BrokenProcessPool as e:
                result = (False, e)
            results.append(result)
        return pid, results

    def _in_pool(self, jobs: list[tuple[Callable, tuple]]) -> tuple[int, list[tuple[bool, Any]]]:
        """jobs answered in a worker; when the pool breaks under them, new workers are started and the
        BrokenProcessPool raised."""
        pool = self._pool
        try:
            return pool.submit(_in_worker, jobs).result()
        except BrokenProcessPool:
            with self._changed:
                if self._closed:
                    raise
                if self._pool is pool:
                    logger.warning("a worker process died; starting %d new ones", self.workers)
                    self._pool = self._new_pool()
                    pool.shutdown(wait=False, cancel_futures=True)
            raise

    def manifest(self) -> dict:
        """The manifest of the index being served (read from its folder, so it follows rebuilds)."""
        if self.current is not None:
            return self.current().manifest
        from .index import read_manifest

        return read_manifest(self.index_dir)

    def answered_by(self) -> dict[str, dict[str, int]]:
        """Calls answered, by process id and function: {"1234": {"ask_json": 10, "turn": 3}}."""
        with self._changed:  # the taker threads count while the event loop reads
            return {str(pid): dict(counts) for pid, counts in sorted(self.answered.items())}

    def batch_sizes(self) -> dict[str, int]:
        """Batches answered, by their number of calls: {"1": 40, "8": 12}."""
        with self._changed:
            return {str(n): k for n, k in sorted(self.batches.items())}

    def close(self) -> None:
        """Stop taking calls; those still in line fail with QAError."""
        with self._changed:
            self._closed = True
            waiting, self._line = list(self._line), deque()
            self._changed.notify_all()
        for *_, future in waiting:
            if future.set_running_or_notify_cancel():
                future.set_exception(QAError("the app is stopping: no more questions are answered"))
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
