"""The JSON API (`/api/ask`, `/api/retrieve`, `/api/health`, `/api/docs`) through real HTTP against
`python app.py`: its contract, and a 4xx JSON message that says what to fix for every bad input."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import fields

import pytest

from qa.answer import Answer, Quote
from served_app import ROOT, raw_request

SEED_TEXT = (ROOT / "corpus" / "inter-parliamentary-union.txt").read_text("utf-8")
ANSWERABLE = "How many member parliaments does the IPU have?"


def post(app, path: str, body: bytes | dict, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{app.url}api/{path}", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        assert e.headers.get("Content-Type", "").startswith("application/json"), raw[:300]
        return e.code, json.loads(raw)


def get(app, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{app.url}api/{path}", timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_ask_returns_every_field_of_answer(seed_app):
    code, answer = post(seed_app, "ask", {"question": ANSWERABLE})
    assert code == 200
    assert set(answer) == {f.name for f in fields(Answer)}  # whatever Answer gains is served too
    assert "179 national member parliaments" in answer["text"] and answer["abstained"] is False
    assert answer["query"] == ANSWERABLE and answer["quotes"]
    for q in answer["quotes"]:
        assert set(q) == {f.name for f in fields(Quote)}
        assert SEED_TEXT[q["start"] : q["end"]] == q["text"] and isinstance(q["score"], float)


def test_ask_as_the_readme_shows_it_with_curl_form_encoding(seed_app):
    code, answer = post(seed_app, "ask", f'{{"question": "{ANSWERABLE}"}}'.encode(),
                        content_type="application/x-www-form-urlencoded")  # what `curl -d` sends
    assert code == 200 and "179" in answer["quotes"][0]["text"]


def test_ask_follows_up_with_history_and_abstains_off_topic(seed_app):
    history = [{"role": "user", "content": "What is the World e-Parliament Report?"},
               {"role": "assistant", "content": "According to …"}]
    code, answer = post(seed_app, "ask", {"question": "Who publishes it?", "history": history})
    assert code == 200 and "following on from: What is the World e\\-Parliament Report?" in answer["text"]
    assert any("publishes the annual World E-Parliament Report" in q["text"] for q in answer["quotes"])
    code, answer = post(seed_app, "ask", {"question": "What is the tallest mountain in the world?"})
    assert code == 200 and answer["abstained"] is True and answer["outcome"] == "declined" and answer["quotes"] == []
    assert answer["text"].startswith("My documents do not")


def test_retrieve_returns_k_passages_with_offsets(seed_app):
    code, body = post(seed_app, "retrieve", {"question": "World e-Parliament Report", "k": 3})
    assert code == 200 and len(body["passages"]) == 3
    for p in body["passages"]:
        assert set(p) == {"text", "source", "title", "section", "start", "end", "score", "page"}
        assert SEED_TEXT[p["start"] : p["end"]] == p["text"]
    assert any("World e-Parliament Report" in p["text"] for p in body["passages"])
    assert len(post(seed_app, "retrieve", {"question": "parliaments"})[1]["passages"]) == 5  # k defaults to 5


def test_health_describes_the_index_and_the_workers(seed_app, seed_index):
    from qa.engine import default_workers

    post(seed_app, "ask", {"question": ANSWERABLE})
    code, raw = get(seed_app, "health")
    health = json.loads(raw)
    manifest = json.loads((seed_index / "manifest.json").read_text("utf-8"))
    answered, batches = health.pop("answered_by"), health.pop("batches")
    assert code == 200 and health == {
        "status": "ok", "workers": default_workers(), "index_format": manifest["format_version"],
        "model": "sentence-transformers/all-mpnet-base-v2", "documents": 1,
        "chunks": manifest["counts"]["chunks"], "built_at": manifest["built_at"],
    }
    # by process id: the app's worker processes, and what each answered (the page's examples, this ask…)
    assert {int(pid) for pid in answered} <= set(seed_app.workers()) and len(seed_app.workers()) == default_workers()
    assert sum(calls.get("ask_json", 0) for calls in answered.values()) >= 1
    # every call answered was in one batch, of 1 to BATCH calls
    from qa.engine import BATCH

    assert sum(int(n) * k for n, k in batches.items()) == sum(sum(c.values()) for c in answered.values())
    assert batches and all(1 <= int(n) <= BATCH for n in batches)


def test_openapi_schema_and_docs_page(seed_app):
    code, raw = get(seed_app, "openapi.json")
    schema = json.loads(raw)
    assert code == 200 and set(schema["paths"]) == {"/ask", "/retrieve", "/health"}
    shapes = schema["components"]["schemas"]
    assert set(shapes["AskRequest"]["properties"]) == {"question", "history"}
    assert set(shapes["Answer"]["properties"]) == {f.name for f in fields(Answer)}
    assert schema["paths"]["/ask"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"] \
        == "#/components/schemas/AskRequest"
    code, page = get(seed_app, "docs")
    assert code == 200 and b"/api/openapi.json" in page


LONG_HISTORY = [{"role": "user", "content": "What is the IPU?"}] * 41
# name: (endpoint, body, status, what the message must say)
BAD = {
    "not-json": ("ask", b'{"question": ', 400, "the body is not JSON"),
    "not-utf8": ("ask", b'{"question": "How many \xff\xfe parliaments?"}', 400, "the body is not UTF-8"),
    "utf16": ("ask", '{"question": "hi"}'.encode("utf-16"), 400, "not UTF-8"),
    "empty-body": ("ask", b"", 400, "the body is not JSON"),
    "array": ("ask", b'["How many?"]', 422, "must be a JSON object"),
    "missing": ("ask", {"history": []}, 422, "question is missing"),
    "misspelt": ("ask", {"questoin": ANSWERABLE}, 422, "questoin is not a field"),
    "null": ("ask", {"question": None}, 422, "question must be text"),
    "number": ("ask", {"question": 42}, 422, "question must be text"),
    "list": ("ask", {"question": ["How", "many"]}, 422, "question must be text"),
    "empty": ("ask", {"question": ""}, 422, "The question is empty"),
    "invisible": ("ask", {"question": " \u200b\u202e\t "}, 422, "The question is empty"),
    "too-long": ("ask", {"question": "x" * 2001}, 422, "the limit is 2,000"),
    "history-not-list": ("ask", {"question": ANSWERABLE, "history": "earlier"}, 422, "history must be a list"),
    "history-role": ("ask", {"question": ANSWERABLE, "history": [{"role": "system", "content": "x"}]}, 422,
                     "history.0.role must be 'user' or 'assistant'"),
    "history-content": ("ask", {"question": ANSWERABLE, "history": [{"role": "user", "content": {"x": 1}}]}, 422,
                        "history.0.content must be text"),
    "history-junk": ("ask", {"question": ANSWERABLE, "history": ["junk"]}, 422, "history.0 must be a JSON object"),
    "history-too-long": ("ask", {"question": ANSWERABLE, "history": LONG_HISTORY}, 422,
                         "history has 41 items; the limit is 40"),
    "message-too-long": ("ask", {"question": ANSWERABLE, "history": [{"role": "user", "content": "y" * 4001}]},
                         422, "history.0.content is over 4,000 characters"),
    "k-zero": ("retrieve", {"question": ANSWERABLE, "k": 0}, 422, "k must be between 1 and 50"),
    "k-huge": ("retrieve", {"question": ANSWERABLE, "k": 10_000}, 422, "k must be between 1 and 50"),
    "k-text": ("retrieve", {"question": ANSWERABLE, "k": "3"}, 422, "k must be a whole number"),
    "retrieve-empty": ("retrieve", {"question": "   "}, 422, "The question is empty"),
    "retrieve-missing": ("retrieve", {}, 422, "question is missing"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_a_4xx_json_message_saying_what_to_fix(seed_app, name):
    endpoint, body, status, message = BAD[name]
    code, reply = post(seed_app, endpoint, body)
    assert code == status and set(reply) == {"error"}, (code, reply)
    assert message in reply["error"] and "Traceback" not in reply["error"]


def test_a_body_over_the_cap_and_odd_requests_get_json_errors(seed_app):
    body = json.dumps({"question": "x" * 2_000_000}).encode()
    code, reply = raw_request(seed_app.port, f"POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                                             "Connection: close\r\n\r\n", body)
    assert code == 413 and "2,000 characters" in json.loads(reply)["error"]
    assert get(seed_app, "ask")[0] == 405 and "see /api/docs" in json.loads(get(seed_app, "ask")[1])["error"]
    assert get(seed_app, "nothing-here")[0] == 404
    # JSON may carry a lone surrogate as an escape: it is dropped, and the question answered
    code, answer = post(seed_app, "ask", b'{"question": "How many \\ud800member parliaments\\udfff does the IPU have?"}')
    assert code == 200 and "179" in answer["text"]
    assert "Traceback" not in seed_app.output() and seed_app.attempts() == []
