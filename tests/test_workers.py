"""The app's worker processes (qa.engine): two workers answer both the JSON API and the chat against one
index folder, each follows a rebuild of it, and none imports gradio or torch.

Which process answered is read from /api/health's `answered_by` (process id -> calls, by function), and the
ids are checked against /proc: they are the app's own children, the processes multiprocessing spawned.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from conftest import copy_index
from served_app import client as make_client, serve

QUESTION = "How many member parliaments does the IPU have?"
NEW_DOC = ("Harbour Council of Quillon\n\nThe Harbour Council of Quillon has 43 elected members. "
           "It meets every second Tuesday in the old lighthouse.\n")
NEW_QUESTION = "How many elected members does the Harbour Council of Quillon have?"
HEAVY = ("gradio", "gradio_client", "torch", "sentence_transformers", "transformers")


def ask(url: str, question: str) -> dict:
    request = urllib.request.Request(url + "api/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:  # a hang guard, not a timing
        return json.loads(r.read())


def answered_by(url: str) -> dict[int, dict[str, int]]:
    with urllib.request.urlopen(url + "api/health", timeout=60) as r:
        health = json.loads(r.read())
    return {int(pid): calls for pid, calls in health["answered_by"].items()}


def grew(before: dict, after: dict, pid: int, call: str) -> int:
    return after.get(pid, {}).get(call, 0) - before.get(pid, {}).get(call, 0)


def heavy_modules(bot) -> list[str]:
    """Run in a worker: the heavy packages it has imported."""
    return sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)


def test_two_workers_answer_the_api_and_the_chat_and_both_follow_a_rebuild(seed_corpus, seed_index, tmp_path):
    import qa

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(seed_corpus, corpus)
    copy_index(seed_index, index)
    with serve("--index", str(index), "--corpus", str(corpus), "--workers", "2", workdir=tmp_path) as app:
        workers = app.workers()
        assert len(workers) == 2 and app.proc.pid not in workers

        # the JSON API: 16 questions, 8 at a time
        before = answered_by(app.url)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: ask(app.url, QUESTION), range(16)))
        assert all("179 national member parliaments" in r["text"] for r in replies)
        after = answered_by(app.url)
        assert set(after) == set(workers)  # no other process answered (the app's own holds no bot)
        assert all(grew(before, after, pid, "ask_json") > 0 for pid in workers), after

        # the chat, through gradio_client: 16 questions submitted at once
        client = make_client(app.url)
        jobs = [client.submit(QUESTION, [], api_name="/chat") for _ in range(16)]
        assert all("179 national member parliaments" in job.result(timeout=120) for job in jobs)
        before, after = after, answered_by(app.url)
        assert all(grew(before, after, pid, "chat_reply") > 0 for pid in workers), after
        assert sum(grew(before, after, pid, "chat_reply") for pid in workers) == 16

        # a rebuild of the one index folder: each worker loads it on its next question
        assert not any(q["source"] == "harbour-council.txt" for q in ask(app.url, NEW_QUESTION)["quotes"])
        (corpus / "harbour-council.txt").write_text(NEW_DOC, "utf-8")
        qa.build_index(corpus_dir=corpus, index_dir=index)
        before = answered_by(app.url)
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: ask(app.url, NEW_QUESTION), range(16)))
        jobs = [client.submit(NEW_QUESTION, [], api_name="/chat") for _ in range(8)]
        chats = [job.result(timeout=120) for job in jobs]
        after = answered_by(app.url)
        assert all(r["quotes"] and r["quotes"][0]["source"] == "harbour-council.txt" for r in replies), replies[0]
        assert all("43 elected members" in c for c in chats), chats[0]
        assert all(grew(before, after, pid, "ask_json") > 0 for pid in workers), after
        assert app.workers() == workers  # the same processes, not new ones
        log = app.output()
        assert app.attempts() == []
    reloaded = {int(pid) for pid in re.findall(r"INFO qa\.server \[worker (\d+)\]: reloaded ", log)}
    assert reloaded == set(workers), log
    assert "Traceback" not in log


def test_workers_import_neither_gradio_nor_torch(seed_index):
    from qa.engine import Engine

    engine = Engine(index_dir=seed_index, workers=1)
    try:
        assert engine.run_now(heavy_modules) == []
        assert "179 national member parliaments" in engine.run_now(_ask, QUESTION)
    finally:
        engine.close()


def _ask(bot, question: str) -> str:
    return bot.ask(question).text


FOLLOW_UP = [{"role": "user", "content": "When was the IPU founded?"},
             {"role": "assistant", "content": "It was founded more than 130 years ago."}]


def test_questions_that_wait_are_answered_in_batches_as_one_at_a_time(seed_bot):
    """48 calls at once on two ask threads: taken in batches of up to BATCH, whose questions are encoded in one
    call; each reply is bot.ask's, a follow-up's included, and a bad question fails alone."""
    from qa.api import ask_json
    from qa.engine import BATCH, Engine
    from qa.errors import InvalidQuestionError

    questions = [q for q in dev_questions() for _ in range(2)][:46]
    calls = [(q, []) for q in questions] + [("And where is it based?", FOLLOW_UP), ("", [])]
    expected = [seed_bot.ask(q, history=h).text for q, h in calls[:-1]]
    engine = Engine(lambda: seed_bot)
    encodes = []
    embed = seed_bot.encoder.embed
    seed_bot.encoder.embed = lambda texts: encodes.append(len(texts)) or embed(texts)
    try:
        futures = [engine.submit(ask_json, q, h) for q, h in calls]  # what engine.run awaits
        replies = [f.exception() or f.result() for f in futures]
    finally:
        del seed_bot.encoder.embed
        engine.close()
    assert [r["text"] for r in replies[:-1]] == expected
    assert isinstance(replies[-1], InvalidQuestionError)
    assert max(engine.batches) == BATCH and sum(n * k for n, k in engine.batches.items()) == len(calls)
    assert max(encodes) > 1  # a batch's questions went to the encoder together
    assert seed_bot._encoded == {}  # and nothing of them is kept


def test_a_batch_encodes_each_question_as_alone_to_float_rounding(seed_bot):
    import numpy as np

    texts = dev_questions()[:8]
    alone = np.array([seed_bot.encode(t) for t in texts])
    calls = []
    embed = seed_bot.encoder.embed
    seed_bot.encoder.embed = lambda batch: calls.append(list(batch)) or embed(batch)
    try:
        with seed_bot.encoding(texts):
            together = np.array([seed_bot.encode(t) for t in texts])
    finally:
        del seed_bot.encoder.embed
    assert calls == [texts]  # one call for the eight
    assert np.abs(together - alone).max() < 1e-6


def dev_questions() -> list[str]:
    from conftest import DEV_SET

    return [json.loads(line)["turns"][0] for line in DEV_SET.read_text("utf-8").splitlines() if line.strip()]


def test_a_worker_killed_between_questions_is_replaced_and_the_next_question_answered(seed_index):
    import os
    import signal

    from qa.engine import Engine

    engine = Engine(index_dir=seed_index, workers=1)
    try:
        first = engine.run_now(_pid)
        os.kill(first, signal.SIGKILL)
        assert "179 national member parliaments" in engine.run_now(_ask, QUESTION)
        assert engine.run_now(_pid) != first
    finally:
        engine.close()


def _pid(bot) -> int:
    import os

    return os.getpid()


def test_a_batch_whose_encoding_fails_is_still_answered_and_the_engine_goes_on(seed_bot):
    """The encoder failing on a batch (out of memory, say) costs the batch its shared call, not its answers;
    a callable without a __name__ (a partial) is answered and counted; the takers keep taking."""
    import functools

    from qa.api import ask_json
    from qa.engine import Engine

    questions = dev_questions()[:12]
    expected = [seed_bot.ask(q).text for q in questions]
    embed = seed_bot.encoder.embed

    def no_batches(texts):
        if len(texts) > 1:
            raise MemoryError("no room for a batch")
        return embed(texts)

    engine = Engine(lambda: seed_bot)
    seed_bot.encoder.embed = no_batches
    try:
        futures = [engine.submit(ask_json, q, []) for q in questions]
        assert [f.result(timeout=120)["text"] for f in futures] == expected
        assert "179 national member parliaments" in engine.run_now(functools.partial(_ask), QUESTION)
        assert engine.run_now(_ask, QUESTION) == engine.run_now(_ask, QUESTION)
    finally:
        del seed_bot.encoder.embed
        engine.close()
    assert seed_bot._encoded == {}


def test_a_question_that_kills_its_worker_fails_alone_and_its_batch_mates_are_answered(seed_index):
    import time
    from concurrent.futures.process import BrokenProcessPool

    from qa.engine import Engine

    engine = Engine(index_dir=seed_index, workers=1)
    try:
        engine.run_now(_pid)  # the worker is up
        busy = engine.submit(_sleep, 1.0)  # the one taker is busy: what follows waits in line, one batch
        while not busy.running():
            time.sleep(0.01)
        batch = [engine.submit(_ask, QUESTION), engine.submit(_die), engine.submit(_ask, QUESTION)]
        busy.result(timeout=120)
        assert "179 national member parliaments" in batch[0].result(timeout=300)
        assert isinstance(batch[1].exception(timeout=300), BrokenProcessPool)
        assert "179 national member parliaments" in batch[2].result(timeout=300)
        assert engine.batch_sizes().get("3") == 1
        assert "179 national member parliaments" in engine.run_now(_ask, QUESTION)  # and the engine goes on
    finally:
        engine.close()


def _sleep(bot, seconds: float) -> None:
    import time

    time.sleep(seconds)


def _die(bot) -> None:
    import os

    os._exit(1)
