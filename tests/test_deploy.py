"""deploy/nginx.conf with two replicas of `python app.py` behind Debian's nginx, all on loopback ports.

nginx runs the shipped file itself, with only its ports and log folder substituted, inside a main
config rendered into tmp_path (`nginx -p tmp -c tmp/nginx.conf`: its own pid, logs and temp paths,
nothing under /etc or /var). The access log says which replica answered each request (and "A, B" when
A failed and B answered), so the tests read the spread, the stickiness and the failovers from it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import copy_index
from served_app import ROOT, App, client, serve, status

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx.conf"
STARTUP_SECONDS = 30  # nginx itself; a hang guard, not a timing
ANSWERABLE = "How many member parliaments does the IPU have?"
EXPECTED = "179 national member parliaments"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make system-packages)")

MAIN_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {tmp}/temp/body;
    proxy_temp_path {tmp}/temp/proxy;
    fastcgi_temp_path {tmp}/temp/fastcgi;
    uwsgi_temp_path {tmp}/temp/uwsgi;
    scgi_temp_path {tmp}/temp/scgi;
    include {tmp}/qa.conf;
}}
"""

LOG_LINE = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) \S+ \S+ '
                      r'upstream="(?P<upstream>[^"]*)" upstream_status="[^"]*" affinity=(?P<key>\S+)')


def render(site: str, listen: int, replicas: list[int], logs: Path) -> str:
    """The shipped site file with our ports and log folder; fails if one of those lines moved."""
    def sub(pattern: str, replace, expected: int) -> None:
        nonlocal site
        site, n = re.subn(pattern, replace, site, flags=re.M)
        assert n == expected, f"deploy/nginx.conf: expected {expected} match(es) of {pattern!r}, found {n}"

    # each upstream's run of server lines becomes one line per replica, indented alike
    sub(r"^([ \t]*)server 127\.0\.0\.1:\d+;\n(?:[ \t]*server 127\.0\.0\.1:\d+;\n)*",
        lambda m: "".join(f"{m.group(1)}server 127.0.0.1:{p};\n" for p in replicas), 2)
    sub(r"^([ \t]*)listen 8080;", rf"\g<1>listen 127.0.0.1:{listen};", 1)
    sub(r"/var/log/nginx/", f"{logs}/", 1)
    return site


@dataclass(frozen=True)
class Hit:
    """One line of nginx's access log."""
    method: str
    path: str
    status: int
    upstreams: tuple[int, ...]  # replica ports tried, in order; the last one answered
    key: str


@dataclass
class Deployment:
    url: str
    replicas: list[App]
    nginx: subprocess.Popen
    access_log: Path
    error_log: Path

    def hits(self) -> list[Hit]:
        hits = []
        for line in self.access_log.read_text("utf-8").splitlines():
            m = LOG_LINE.search(line)
            assert m, f"unexpected access log line: {line}"
            ports = tuple(int(a.rsplit(":", 1)[1]) for a in m["upstream"].split(", ") if ":" in a)
            hits.append(Hit(m["method"], m["path"], int(m["status"]), ports, m["key"]))
        return hits

    def logged(self, match: str | Callable[[Hit], bool], count: int) -> list[Hit]:
        """Every logged request for a path (or matching a test), once there are at least `count`: nginx
        writes a line just after its response, so the last ones may still be coming when a client has
        its answer."""
        test = match if callable(match) else lambda h: h.path == match
        deadline = time.monotonic() + 30  # a hang guard, not a timing
        while len(hits := [h for h in self.hits() if test(h)]) < count:
            assert time.monotonic() < deadline, f"nginx logged {len(hits)} of {count} requests for {match}"
            time.sleep(0.02)
        return hits

    def ports(self) -> set[int]:
        return {r.port for r in self.replicas}


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx(tmp: Path, replicas: list[App]) -> Iterator[tuple[str, subprocess.Popen, Path, Path]]:
    """Debian's nginx on a free loopback port, running deploy/nginx.conf in front of replicas.

    nginx cannot take port 0 and say which port it got (as app.py does), so the port is picked here;
    should another process take it before nginx binds it, nginx exits and starts again on another.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "temp").mkdir(exist_ok=True)
    error_log = tmp / "error.log"
    cmd = [NGINX, "-p", str(tmp), "-e", str(error_log), "-c", str(tmp / "nginx.conf")]
    (tmp / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp), "utf-8")
    for _ in range(5):
        port = unused_port()
        (tmp / "qa.conf").write_text(render(SITE.read_text("utf-8"), port, [r.port for r in replicas], tmp), "utf-8")
        checked = subprocess.run([*cmd, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        error_log.write_text("", "utf-8")
        proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + STARTUP_SECONDS
        while status(url + "api/health", timeout=2) != 200 and proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"nginx did not answer:\n{error_log.read_text()}")
            time.sleep(0.1)
        if proc.poll() is None:
            break
        assert "Address already in use" in error_log.read_text(), \
            f"nginx exited with {proc.returncode}:\n{error_log.read_text()}"
    else:
        raise AssertionError(f"nginx found its port taken five times:\n{error_log.read_text()}")
    try:
        yield url, proc, tmp / "qa.access.log", error_log
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown
        proc.wait(timeout=15)


@contextlib.contextmanager
def deployment(tmp: Path, index: Path, *app_args: str, replicas: int = 2) -> Iterator[Deployment]:
    """`replicas` apps on one index folder and nginx in front; everything stopped on exit."""
    with contextlib.ExitStack() as stack:
        apps = []
        for i in range(replicas):
            workdir = tmp / f"replica-{i}"
            workdir.mkdir(parents=True)
            # TMPDIR: Gradio's cache folder of a replica the test kills stays in tmp_path
            # one worker process each: two replicas on two cores, as deploy/nginx.conf advises
            apps.append(stack.enter_context(serve("--index", str(index), "--workers", "1", *app_args, workdir=workdir,
                                                  env={"TMPDIR": str(workdir)})))
        url, proc, access_log, error_log = stack.enter_context(nginx(tmp / "nginx", apps))
        yield Deployment(url, apps, proc, access_log, error_log)


def ask(url: str, question: str = ANSWERABLE, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}api/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode("utf-8", "replace")}


@pytest.fixture(scope="module")
def deployed(seed_index, tmp_path_factory) -> Iterator[Deployment]:
    """Two replicas on the seed index behind nginx, for the tests that change nothing."""
    with deployment(tmp_path_factory.mktemp("deploy"), seed_index) as d:
        yield d


def test_api_requests_are_spread_over_both_replicas(deployed):
    before = len(deployed.logged("/api/ask", 0))  # each test waits for its own lines: none are coming
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ask(deployed.url), range(40)))
    assert all(code == 200 and EXPECTED in body["text"] for code, body in results), results
    asks = deployed.logged("/api/ask", before + 40)[before:]
    assert len(asks) == 40 and all(h.status == 200 for h in asks)
    served = {h.upstreams[-1] for h in asks}
    assert served == deployed.ports(), f"only {served} of {deployed.ports()} answered"


def test_body_over_the_cap_is_refused_by_nginx_with_json(deployed):
    before = len(deployed.logged("/api/ask", 0))
    code, body = ask(deployed.url, "x" * (1 << 20))
    assert code == 413 and json.loads(body["error"])["error"].startswith("The request body is over 1 MiB")
    [hit] = deployed.logged("/api/ask", before + 1)[before:]
    assert hit.status == 413 and hit.upstreams == ()  # no replica saw it


def test_chat_sessions_through_nginx_stay_on_one_replica(deployed):
    """gradio_client sessions (Gradio's queue: join, then an event stream) through nginx, until
    sessions have landed on both replicas; every request of a session reaches the same replica."""
    sessions: dict[str, list[Hit]] = {}  # nginx's affinity cookie -> the session's requests
    for _ in range(24):  # each new session lands on a random replica: ~all of them after a few
        c = client(deployed.url)
        try:
            assert EXPECTED in c.predict(ANSWERABLE, api_name="/chat")
            assert EXPECTED in c.predict(ANSWERABLE, [], api_name="/chat")
        finally:
            c.close()
        key = c.cookies["qa_replica"]  # set by nginx with the page's /config, sent back by gradio_client
        # its two answers came back on event streams (the last line may lag the answer)
        deployed.logged(lambda h: h.key == key and h.path.startswith("/gradio_api/queue/data"), 2)
        sessions[key] = deployed.logged(lambda h: h.key == key, 1)
        if {s[0].upstreams[-1] for s in sessions.values()} == deployed.ports():
            break
    assert {s[0].upstreams[-1] for s in sessions.values()} == deployed.ports(), "all sessions on one replica"
    for session in sessions.values():
        assert len({h.upstreams for h in session}) == 1, f"one session reached two replicas: {session}"
        assert all(h.status == 200 for h in session), session


def test_chat_page_works_through_nginx_in_chromium(deployed, browser):
    from served_app import ChatPage

    page = ChatPage(browser, deployed.url)
    try:
        assert EXPECTED in page.ask(ANSWERABLE).inner_text()
        assert [c["name"] for c in page.page.context.cookies(deployed.url)] == ["qa_replica"]
    finally:
        page.close()


def test_a_replica_killed_mid_load_fails_no_request(seed_index, tmp_path):
    """Eight clients ask without pause; one replica is killed (SIGKILL) while it answers. nginx sends
    the questions it was answering, and the later ones, to the other: not one request fails."""
    with deployment(tmp_path, seed_index) as d:
        victim, survivor = d.replicas
        results: list[tuple[bool, int, dict]] = []  # (sent after the kill, status, body)
        killed, stop = threading.Event(), threading.Event()

        def client_loop() -> None:
            while not stop.is_set():
                after = killed.is_set()
                results.append((after, *ask(d.url)))

        def wait_for(condition, what: str) -> None:
            deadline = time.monotonic() + 120  # a hang guard, not a timing
            while not condition():
                assert time.monotonic() < deadline and not any(f.done() for f in loops), what
                time.sleep(0.05)

        with ThreadPoolExecutor(8) as pool:
            loops = [pool.submit(client_loop) for _ in range(8)]
            try:
                wait_for(lambda: {h.upstreams[-1] for h in d.hits()} == d.ports() and len(results) >= 32,
                         "both replicas answering")
                victim.proc.send_signal(signal.SIGKILL)
                killed.set()
                wait_for(lambda: sum(after for after, *_ in results) >= 48, "48 questions after the kill")
            finally:
                stop.set()
        for f in loops:
            f.result()  # a client that raised fails the test here
        assert victim.proc.wait(timeout=10) == -signal.SIGKILL
        failed = [(code, body) for _, code, body in results if code != 200 or EXPECTED not in body.get("text", "")]
        assert not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
        hits = d.logged("/api/ask", len(results))
        # the questions the victim was answering (or its reused connections were carrying) went on
        retried = [h for h in hits if len(h.upstreams) > 1]
        assert retried, "no request was in flight on the killed replica"
        assert all(h.upstreams == (victim.port, survivor.port) for h in retried), retried


NEW_DOC = ("Harbour Council of Quillon\n\nThe Harbour Council of Quillon has 43 elected members. "
           "It meets every second Tuesday in the old lighthouse.\n")
NEW_QUESTION = "How many elected members does the Harbour Council of Quillon have?"


def test_a_rebuilt_index_is_picked_up_by_every_replica(seed_corpus, seed_index, tmp_path):
    """One index folder shared by both replicas, rebuilt in place with a new document: the next
    questions, on either replica, are answered from it."""
    import qa

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(seed_corpus, corpus)
    copy_index(seed_index, index)
    with deployment(tmp_path / "deploy", index, "--corpus", str(corpus)) as d:
        for _ in range(4):  # both replicas answer from the old index: no such document
            code, body = ask(d.url, NEW_QUESTION)
            assert code == 200 and not any(q["source"] == "harbour-council.txt" for q in body["quotes"])
        (corpus / "harbour-council.txt").write_text(NEW_DOC, "utf-8")
        qa.build_index(corpus_dir=corpus, index_dir=index)
        answered_by: set[int] = set()
        for asked in range(5, 25):  # until both replicas answered; least_conn alternates between idle ones
            code, body = ask(d.url, NEW_QUESTION)
            assert code == 200 and body["quotes"], body
            assert body["quotes"][0]["source"] == "harbour-council.txt" and "43 elected members" in body["text"]
            answered_by.add(d.logged("/api/ask", asked)[asked - 1].upstreams[-1])
            if answered_by == d.ports():
                break
        assert answered_by == d.ports()
