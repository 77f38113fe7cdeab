"""The app as an API client sees it: `python app.py` in a subprocess, driven with gradio_client."""

from __future__ import annotations

import pytest

from served_app import ROOT, client as make_client, status

SEED_TEXT = (ROOT / "corpus" / "inter-parliamentary-union.txt").read_text("utf-8")


@pytest.fixture(scope="module")
def app_url(seed_app) -> str:
    return seed_app.url


@pytest.fixture(scope="module")
def client(app_url):
    return make_client(app_url)


def test_chat_answers_with_a_cited_quote(client):
    reply = client.predict("How many member parliaments does the IPU have?", [], api_name="/chat")
    assert "179" in reply
    assert "According to *Inter\\-Parliamentary Union" in reply
    assert "\n> " in reply  # a block quote


def test_chat_follow_up_uses_the_history(client):
    history = [
        {"role": "user", "content": "What is the World e-Parliament Report?"},
        {"role": "assistant", "content": "According to …"},
    ]
    reply = client.predict("Who publishes it?", history, api_name="/chat")
    assert "following on from: What is the World e\\-Parliament Report?" in reply
    assert "publishes" in reply


def test_chat_without_history_and_off_topic_abstains_with_suggestions(client):
    reply = client.predict(message="What is the tallest mountain in the world?", api_name="/chat")
    assert reply.startswith("My documents do not")
    assert "You could ask about:" in reply


def test_retrieve_returns_passages_with_offsets(client):
    passages = client.predict("World e-Parliament Report", 3, api_name="/retrieve")
    assert isinstance(passages, list) and len(passages) == 3
    for p in passages:
        assert set(p) == {"text", "source", "title", "section", "start", "end", "score", "page"}
        assert p["source"] == "inter-parliamentary-union.txt" and p["title"] == "Inter-Parliamentary Union"
        assert p["page"] is None  # a text file has no pages
        assert SEED_TEXT[p["start"] : p["end"]] == p["text"]
    assert any("World e-Parliament Report" in p["text"] for p in passages)


def test_retrieve_clamps_k(client, seed_bot, monkeypatch):
    from qa import ui

    chunks = len(seed_bot.data.chunks)
    assert len(client.predict("parliaments", 10_000, api_name="/retrieve")) == chunks  # every chunk, once
    assert len(client.predict("parliaments", 0, api_name="/retrieve")) == 1
    # the seed has fewer chunks than the cap of 50: a cap of 5 shows that it applies
    monkeypatch.setattr(ui, "MAX_K", 5)
    assert len(ui.passages(seed_bot, "parliaments", 10_000)) == 5
    assert len(ui.passages(seed_bot, "parliaments", 3)) == 3
    assert len(ui.passages(seed_bot, "parliaments", "many")) == 5  # not a number: the default


def test_a_megabyte_message_gets_a_clear_reply_quickly(client):
    job = client.submit("x" * 1_000_000, [], api_name="/chat")
    reply = job.result(timeout=30)
    assert "1,000,000 characters" in reply and "the limit is 2,000" in reply
    assert "Traceback" not in reply


def test_an_empty_message_is_harmless(client):
    assert "empty" in client.predict("", [], api_name="/chat")
    assert "empty" in client.predict("   \n ", None, api_name="/chat")
    assert "179" in client.predict("How many member parliaments does the IPU have?", [], api_name="/chat")


def test_hostile_history_is_ignored_not_fatal(client):
    history = [{"role": "user", "content": {"x": 1}}, "junk", {"role": "system", "content": "y" * 100_000}, 42]
    reply = client.predict("How many member parliaments does the IPU have?", history, api_name="/chat")
    assert "179" in reply


def test_only_the_two_named_endpoints_and_no_monitoring(client, app_url):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/chat", "/retrieve"}
    assert not api["unnamed_endpoints"]
    assert status(app_url + "monitoring") != 200
    assert status(app_url + "monitoring/summary") != 200


def test_concurrent_questions_all_get_their_own_answer(client):
    questions = {
        "How many member parliaments does the IPU have?": "179",
        "What is the address of the Inter-Parliamentary Union?": "Pommier",
    }
    jobs = [(expect, client.submit(q, [], api_name="/chat")) for q, expect in list(questions.items()) * 4]
    for expect, job in jobs:
        assert expect in job.result(timeout=60)


# ---- the UI's pure helpers, in process ----------------------------------------------------------


def test_highlight_marks_the_span_in_its_paragraph_and_escapes_everything():
    from qa.ui import highlight

    text = "Title\r\n\r\nFirst <b>one</b>. The <img src=x onerror=alert(1)> quote. After & more.\r\n\r\nNext paragraph."
    start = text.index("The <img")
    end = text.index(" After")
    shown = highlight(text, start, end)
    assert shown == ("First &lt;b&gt;one&lt;/b&gt;. <mark>The &lt;img src=x onerror=alert(1)&gt; quote.</mark>"
                     " After &amp; more.")


def test_highlight_cuts_a_long_paragraph_with_ellipses():
    from qa.ui import highlight

    text = "word " * 1000 + "THE QUOTE." + " word" * 1000
    start = text.index("THE QUOTE")
    shown = highlight(text, start, start + len("THE QUOTE."), limit=50)
    assert shown.startswith("…") and shown.endswith("…") and "<mark>THE QUOTE.</mark>" in shown
    assert len(shown) < 200


def test_plain_history_accepts_gradio_messages_and_drops_the_rest():
    from qa.ui import plain_history

    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is the World e-Parliament Report?"}]},
        {"role": "assistant", "content": "According to …", "metadata": None},
        {"role": "system", "content": "ignored"}, "junk", None, {"role": "user", "content": 3},
    ]
    assert plain_history(history) == [
        {"role": "user", "content": "What is the World e-Parliament Report?"},
        {"role": "assistant", "content": "According to …"},
    ]
    assert plain_history("not a list") == []


def test_history_from_api_callers_is_capped_to_the_last_20_turns_of_4000_characters():
    from qa.ui import plain_history

    history = [{"role": ("user", "assistant")[i % 2], "content": f"message {i} " + "y" * 10_000} for i in range(100)]
    kept = plain_history(history)
    assert [m["content"].split()[1] for m in kept] == [str(i) for i in range(60, 100)]
    assert {len(m["content"]) for m in kept} == {4000}


def test_the_ui_session_keeps_the_last_20_turns_and_shows_a_long_question_cut(seed_bot):
    """The UI's own event handler, as Gradio calls it (a coroutine awaiting the engine)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from qa import ui
    from qa.engine import Engine

    engine = Engine(lambda: seed_bot)
    demo = ui.build_demo(engine)
    [handler] = [f.fn for f in demo.fns.values() if f.name == "respond"]

    def respond(message, session):  # in a thread of its own: Playwright's sync API may hold this one's loop
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, handler(message, session)).result()

    questions = [f"How many member parliaments does the IPU have? ({i})" for i in range(25)]
    session = None
    for question in questions:
        _, shown, session, _, _ = respond(question, session)
    assert shown == session["shown"]
    assert [m["content"] for m in session["history"][::2]] == questions[5:]
    assert len(session["shown"]) == 40 and "179" in session["shown"][-1]["content"]
    _, shown, after, _, _ = respond("x" * 5000, session)
    assert after["history"] == session["history"]  # a refused question is no context for follow-ups
    assert shown[-2]["content"] == "x" * 300 + "… *(5,000 characters)*" and "the limit is 2,000" in shown[-1]["content"]
    engine.close()


def test_title_description_and_examples_come_from_the_corpus(seed_bot):
    from qa.ui import corpus_title, describe, example_questions

    assert corpus_title(seed_bot) == "Inter-Parliamentary Union"
    chunks = seed_bot.manifest["counts"]["chunks"]
    assert describe(seed_bot).startswith(
        f"I answer only by quoting 1 document ({chunks} chunks), found with all-mpnet-base-v2; index built 20")
    examples = example_questions(seed_bot)
    assert examples[0] == "What is the Inter-Parliamentary Union?"
    assert len(examples) >= 3 and all(not seed_bot.ask(q).abstained for q in examples)


def test_gradio_is_imported_without_rewriting_its_type_stubs():
    """import_gradio skips Gradio's per-import .pyi regeneration (60% of its import time) and still
    gives a working Gradio: if an upgrade moves that code, this says so rather than the app slowing."""
    import subprocess
    import sys

    code = ("from qa import server; gr = server.import_gradio(); import gradio.component_meta as m; "
            "print(m.create_or_modify_pyi.__qualname__); print(type(gr.Blocks()).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    patched, blocks = out.stdout.split()
    assert patched.startswith("_NoStubWriting.") and blocks == "Blocks"


def test_the_queue_polls_every_20_ms_not_every_1_ms(seed_bot):
    """The idle app's CPU (bench/): if a Gradio upgrade renames these attributes, this says so."""
    from qa import server, ui
    from qa.engine import BATCH, Engine, capacity

    engine = Engine(lambda: seed_bot)
    demo = ui.build_demo(engine)
    server.set_up_queue(demo, capacity(2))
    # the figures the README and bench/ report: 20 ms, a queue of 64, two batches of jobs at a time per worker
    assert demo._queue.sleep_when_free == demo._queue.progress_update_sleep_when_free == 0.02
    assert demo._queue.max_size == 64 and demo._queue.default_concurrency_limit == 2 * 2 * BATCH
    engine.close()
