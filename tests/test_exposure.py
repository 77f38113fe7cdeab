"""What the running app accepts from whoever reaches it, through real HTTP.

Nothing in the app takes a file, so uploads are refused before their body is read; every request body
is capped (qa.server.MAX_BODY_BYTES) and a larger one is refused as soon as its size is known; the app's
folders (its working folder and its temporary folder, TMPDIR) do not grow under 1,000 requests. The
routes tried are those of the app's own route table, and the README documents every one of them.
"""

from __future__ import annotations

import json
import re
import select
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import copy_index
from served_app import ROOT, raw_request, serve

HUGE = 100 * 1024 * 1024
MARK = b"qa-upload-marker-"  # in every uploaded body: a file holding it means the body reached the disk
HANG_GUARD = 30  # seconds; a server that waits for the whole body makes the read time out


@pytest.fixture(scope="module")
def app(seed_index, tmp_path_factory):
    """`python app.py` in its own working folder, with its own TMPDIR so that everything it writes is seen."""
    workdir = tmp_path_factory.mktemp("exposed-app")
    copy_index(seed_index, workdir / "index")
    (workdir / "tmp").mkdir()
    with serve(workdir=workdir, env={"TMPDIR": str(workdir / "tmp")}) as served:
        yield served


@pytest.fixture(scope="module")
def route_table(seed_bot):
    """(path, methods) of every route Gradio mounts for this app, from the app's own route table."""
    from gradio.routes import App
    from starlette.routing import Mount

    from qa import api, server, ui
    from qa.engine import Engine

    def walk(routes, prefix=""):
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's include_router: Gradio's /gradio_api routes
                yield from walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif isinstance(r, Mount):  # the JSON API
                yield from walk(r.routes, prefix + r.path)
            else:
                yield prefix + r.path, sorted(getattr(r, "methods", None) or ["GET"])

    engine = Engine(lambda: seed_bot)
    json_api = api.build_api(engine)
    yield list(walk(App.create_app(ui.build_demo(engine), app_kwargs=server.app_kwargs(json_api)).routes))
    engine.close()


def _concrete(path: str) -> str:
    """A route path with its parameters filled in: /gradio_api/file={path_or_url:path} -> /gradio_api/file=x."""
    return re.sub(r"\{[^}]*\}", "x", path)


def _multipart(name: str, size: int) -> tuple[str, bytes]:
    boundary = "qa-boundary-7c1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    body += (MARK * (size // len(MARK) + 1))[:size] + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def _app_files(app) -> dict[str, int]:
    """Every file under the app's working folder and TMPDIR, with its size; the test's own logs left out."""
    folder = app.log.parent
    return {str(p): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and p.suffix != ".log" and "guard" not in p.parts and "__pycache__" not in p.parts}


def _holding_mark(app) -> list[str]:
    return [f for f in _app_files(app) if MARK in Path(f).read_bytes()[:4096]]


def test_uploads_are_refused_and_their_body_never_reaches_the_disk(app):
    kind, body = _multipart("blob.bin", 5 * 1024 * 1024)
    for path in ("/gradio_api/upload", "/gradio_api/upload?upload_id=x", "/upload", "/gradio_api/process_recording",
                 "/gradio_api/stream/x", "/gradio_api/component_server"):
        code, reply = raw_request(app.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n", body)
        assert code == 403, (path, code, reply[:200])
        assert "takes no uploads" in json.loads(reply)["error"]
    small_kind, small = _multipart("tiny.txt", 100)  # a tiny upload too: the refusal is not about size
    code, _ = raw_request(app.port, f"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: {small_kind}\r\n"
                                 f"Content-Length: {len(small)}\r\nConnection: close\r\n\r\n", small)
    assert code == 403
    assert _holding_mark(app) == []
    assert "Traceback" not in app.output()


def _refused_early(port: int, method: str, path: str, chunked: bool) -> tuple[int, int]:
    """Send up to 100 MB to path, stopping as soon as the server answers; (status, bytes sent)."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}"
    piece = b"0" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        sent = 0
        while sent < HUGE:
            readable, writable, _ = select.select([s], [s], [], HANG_GUARD)
            if readable or not writable:
                break
            try:
                sent += s.send(frame)
            except (BrokenPipeError, ConnectionResetError):  # the server answered and closed
                break
        s.settimeout(HANG_GUARD)
        try:
            head = s.recv(65536)
        except ConnectionResetError:
            head = b""
    assert head.startswith(b"HTTP/1.1 "), (method, path, chunked, sent, head[:100])
    return int(head.split()[1]), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100MB_body_to_any_route_is_refused_early(app, route_table, chunked):
    from qa.server import MAX_BODY_BYTES

    tried = 0
    for path, methods in route_table:
        for method in {"POST" if "POST" in methods else methods[0], "PUT"}:
            if method == "HEAD":
                continue
            code, sent = _refused_early(app.port, method, _concrete(path), chunked)
            if chunked:  # no size announced: a route that reads the body stops at the cap, others never read it
                assert 200 <= code < 500, (method, path, code)
            else:
                assert code in (403, 413), (method, path, code)
            # The kernel's socket buffers take a few MB before anyone reads; reading the body would take all 100.
            assert sent < 20 * MAX_BODY_BYTES, (method, path, sent)
            tried += 1
    assert tried >= 60 and any(p == "/api/ask" for p, _ in route_table)  # Gradio 6.31 mounts ~80 routes
    assert raw_request(app.port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def test_disk_use_does_not_grow_under_1000_requests(app):
    from served_app import client as make_client

    before = _app_files(app)
    kind, upload = _multipart("again.bin", 200_000)
    chat = json.dumps({"data": ["How many member parliaments does the IPU have?", []]}).encode()
    requests = {  # what each kind of request must get
        ("POST /gradio_api/upload", kind, upload): {403},
        ("POST /gradio_api/call/chat", "application/json", chat): {200},
        ("GET /config", "", b""): {200},
        ("GET /gradio_api/file=index/manifest.json", "", b""): {403, 404},
        ("POST /gradio_api/call/chat", "application/json", b"x" * 2_000_000): {413},
    }
    kinds = list(requests)

    def send(i: int) -> tuple[int, bytes]:
        line, content_type, body = kinds[i % len(kinds)]
        code, reply = raw_request(app.port, f"{line} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n", body)
        if code == 200 and line.endswith("call/chat"):  # the answer, read as an API caller does
            event = json.loads(reply)["event_id"]
            return raw_request(app.port, f"GET /gradio_api/call/chat/{event} HTTP/1.1\r\nHost: x\r\n"
                                      f"Connection: close\r\n\r\n")
        return code, reply

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(send, range(1000)))
    for i, (code, reply) in enumerate(replies):
        assert code in requests[kinds[i % len(kinds)]], (kinds[i % len(kinds)][0], code, reply[:200])
    assert all(b"179 national member parliaments" in reply for i, (_, reply) in enumerate(replies) if i % 5 == 1)
    assert "179" in make_client(app.url).predict("How many member parliaments does the IPU have?", [], api_name="/chat")
    after = _app_files(app)
    assert after == before, {k: after.get(k) for k in set(after) ^ set(before) | {k for k in after if after[k] != before.get(k)}}
    assert _holding_mark(app) == []


def test_the_readme_documents_every_route(route_table):
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme[readme.index("## Security"):]
    missing = [path for path, _ in route_table if f"`{path}`" not in section]
    assert not missing, f"routes the README's security section does not list: {missing}"
