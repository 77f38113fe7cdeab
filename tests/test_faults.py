"""Damaged indexes, a build killed at random points, and a rebuild while the app serves.

Loads run in subprocesses, so a crash of the interpreter (faiss reading a crafted file, say) shows
as a signal in the return code instead of taking the test run down. tests/test_index.py covers
damaged manifests in process; here the damage reaches the parsers too (the manifest's hash is
updated to match the damaged file), and the command line and the app must turn every fault into
one line that names the fix. Timeouts are hang guards, not performance claims.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.index import MANIFEST, SENTENCE_DESIGN, load_index, read_manifest

from conftest import DATA, SEED_FILE, copy_index
from served_app import ROOT, app_env, client as make_client, serve
from stopping import stopping_env, wait_stopped

QUESTION = "How many member parliaments does the IPU have?"
FIX = "run: python -m qa build"


class OtherModel:
    """Stands for an index built with a model this machine does not have."""

    name, dim = "other-org/other-model", 32

    def embed(self, texts):
        rows = [np.random.default_rng(list(hashlib.sha256(t.encode()).digest())).standard_normal(self.dim)
                for t in texts]
        m = np.array(rows, dtype=np.float32).reshape(len(rows), self.dim)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def _manifest(index: Path) -> dict:
    return json.loads((index / MANIFEST).read_text("utf-8"))


def _write_manifest(index: Path, manifest: dict) -> None:
    (index / MANIFEST).write_text(json.dumps(manifest), "utf-8")


def _replace_file(key: str, damage, rehash: bool):
    """Damage one data file; with rehash the manifest vouches for the damaged bytes, so parsers see them."""

    def apply(index: Path) -> None:
        manifest = _manifest(index)
        path = index / manifest["files"][key]["name"]
        data = damage(path.read_bytes())
        path.write_bytes(data)
        if rehash:
            manifest["files"][key]["sha256"] = hashlib.sha256(data).hexdigest()
            _write_manifest(index, manifest)

    return apply


def _flip(data: bytes) -> bytes:
    b = bytearray(data)
    for i in range(0, min(len(b), 96), 5):
        b[i] ^= 0x5A
    return bytes(b)


def _half(data: bytes) -> bytes:
    """The first half, cut inside a record: a cut that falls between two JSON lines leaves a shorter,
    well-formed file, a different fault (the counts disagree)."""
    cut = len(data) // 2
    while cut > 1 and data[cut - 1 : cut] in (b"\n", b"}"):
        cut -= 1
    return data[:cut]


def _noise(data: bytes) -> bytes:
    return random.Random(len(data)).randbytes(len(data))


def _edit(change):
    def apply(index: Path) -> None:
        manifest = _manifest(index)
        change(manifest)
        _write_manifest(index, manifest)

    return apply


def _other_index(other: Path):
    """Put another index's data file (same corpus, another model) in place of ours, hash updated."""

    def apply(index: Path) -> None:
        theirs = read_manifest(other)["files"]["vectors"]
        ours = _manifest(index)
        shutil.copy(other / theirs["name"], index / ours["files"]["vectors"]["name"])
        ours["files"]["vectors"]["sha256"] = theirs["sha256"]
        _write_manifest(index, ours)

    return apply


FAULTS = {
    "manifest-missing": (lambda i: (i / MANIFEST).unlink(), "no index in"),
    "manifest-empty": (lambda i: (i / MANIFEST).write_bytes(b""), "unreadable"),
    "manifest-random-bytes": (lambda i: (i / MANIFEST).write_bytes(random.Random(1).randbytes(4000)), "unreadable"),
    "manifest-truncated": (lambda i: (i / MANIFEST).write_bytes((i / MANIFEST).read_bytes()[:300]), "unreadable"),
    "manifest-another-model-384d": (_edit(lambda m: m.update(model={"name": "sentence-transformers/all-MiniLM-L6-v2",
                                                                     "dim": 384})), "disagree"),
    "vectors-truncated": (_replace_file("vectors", _half, rehash=False), "does not match its manifest"),
    "chunks-corrupted": (_replace_file("chunks", _flip, rehash=False), "does not match its manifest"),
}
for _key in ("documents", "chunks", "vectors", "sentences", *(("plain",) if SENTENCE_DESIGN.endswith("plain") else ())):
    FAULTS[f"{_key}-truncated-rehashed"] = (_replace_file(_key, _half, rehash=True), "unreadable")
    FAULTS[f"{_key}-random-bytes-rehashed"] = (_replace_file(_key, _noise, rehash=True), "unreadable")
    FAULTS[f"{_key}-header-flipped-rehashed"] = (_replace_file(_key, _flip, rehash=True), "unreadable")


@pytest.fixture(scope="module")
def other_model_index(seed_corpus, tmp_path_factory) -> Path:
    """The seed corpus indexed by a model that is not installed (and so without an ONNX encoder)."""
    index = tmp_path_factory.mktemp("other-model") / "index"
    qa.build_index(corpus_dir=seed_corpus, index_dir=index, embedder=OtherModel())
    return index


def _ask(index: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**app_env(), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qa", "ask", QUESTION, "--index", str(index)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _assert_one_clear_line(result: subprocess.CompletedProcess, expect: str) -> None:
    assert result.returncode == 1, f"return code {result.returncode} (negative = killed by a signal): {result.stderr}"
    assert "Traceback" not in result.stderr and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and expect in line and FIX in line, line


def test_every_fault_is_one_clear_line_from_the_command_line(seed_index, other_model_index, tmp_path):
    faults = dict(FAULTS)
    faults["another-model-index"] = (lambda i: (shutil.rmtree(i), shutil.copytree(other_model_index, i)),
                                     "was built with model 'other-org/other-model', which is not available")
    faults["manifest-of-another-model"] = (lambda i: shutil.copy(other_model_index / MANIFEST, i / MANIFEST),
                                           "is missing")
    faults["vectors-of-another-model-rehashed"] = (_other_index(other_model_index), "disagree")
    indexes = {}
    for name, (damage, _) in faults.items():
        indexes[name] = tmp_path / name
        copy_index(seed_index, indexes[name])
        damage(indexes[name])
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(faults, pool.map(lambda i: _ask(i, tmp_path), indexes.values())))
    for name, result in results.items():
        _assert_one_clear_line(result, faults[name][1])
    # the same faults, in process: each one a QAError subclass
    for name in ("manifest-missing", "vectors-truncated", "sentences-random-bytes-rehashed", "another-model-index"):
        with pytest.raises(qa.QAError) as e:
            qa.load(indexes[name], check_stale=False)
        assert type(e.value) is not qa.QAError and FIX in str(e.value)
    with pytest.raises(qa.StaleIndexError):
        qa.load(indexes["another-model-index"], check_stale=False)


def _start(index: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "app.py"), "--index", str(index), "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=app_env(), timeout=300)


@pytest.mark.parametrize("fault", ["none", "manifest-missing", "manifest-random-bytes", "vectors-truncated",
                                   "chunks-random-bytes-rehashed", "another-model-index"])
def test_app_without_its_corpus_refuses_to_start_with_one_clear_message(seed_index, other_model_index, tmp_path, fault):
    """`--corpus` names a folder that is not there (a typo, say): whether the index is sound or not."""
    index = tmp_path / "index"
    if fault == "another-model-index":
        shutil.copytree(other_model_index, index)
    else:
        copy_index(seed_index, index)
        if fault != "none":
            FAULTS[fault][0](index)
    result = _start(index, "--corpus", str(tmp_path / "gone"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Running on" not in result.stdout
    error = result.stderr.splitlines()[-1]
    assert error.startswith(f"error: corpus folder {tmp_path / 'gone'} does not exist — "), error
    assert error.endswith("create it and put documents in it (.txt, .md, .pdf, .docx, .html, .htm)"), error


def test_app_on_a_taken_port_or_a_bad_host_says_so_in_one_line(seed_index, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "taken": ((), port, "Address already in use — another program listens on that port: pass another --port"),
            "foreign": (("--host", "198.51.100.7"), 0, "that is not an address of this machine: pass --host 127.0.0.1"),
            "unknown": (("--host", "no-such-host.invalid"), 0, "that is not an address of this machine"),
        }
        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(cases, pool.map(
                lambda case: subprocess.run([sys.executable, str(ROOT / "app.py"), "--index", str(seed_index),
                                             "--port", str(case[1]), *case[0]],
                                            capture_output=True, text=True, cwd=tmp_path, env=app_env(), timeout=300),
                cases.values())))
    for name, result in results.items():
        host = cases[name][0][1] if cases[name][0] else "127.0.0.1"
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "Running on" not in result.stdout, name
        error = result.stderr.splitlines()[-1]
        assert error.startswith(f"error: cannot serve on {host}:{cases[name][1]}: ") and cases[name][2] in error, error


def test_a_fresh_start_builds_the_index_and_serves(seed_corpus, tmp_path):
    """`python app.py` in a folder holding corpus/ and no index yet, as on a new machine (`make run`)."""
    shutil.copytree(seed_corpus, tmp_path / "corpus")
    with serve(workdir=tmp_path) as app:
        assert "179 national member parliaments" in make_client(app.url).predict(QUESTION, [], api_name="/chat")
        log = app.output()
        assert app.attempts() == []
    assert "WARNING qa.server: no index in index/" in log and "building the index from corpus/" in log
    assert "Traceback" not in log
    bot = qa.load(tmp_path / "index", corpus_dir=tmp_path / "corpus")
    assert bot.data.encoder_dir is not None  # the fast query encoder was exported too


def test_app_rebuilds_a_damaged_index_from_its_corpus_and_serves(seed_index, seed_corpus, tmp_path):
    index = tmp_path / "index"
    copy_index(seed_index, index)
    FAULTS["vectors-truncated"][0](index)
    with serve("--index", str(index), "--corpus", str(seed_corpus), workdir=tmp_path) as app:
        assert "179 national member parliaments" in make_client(app.url).predict(QUESTION, [], api_name="/chat")
        log = app.output()
    assert "does not match its manifest (damaged?); building the index from" in log and "Traceback" not in log
    assert load_index(index).manifest["counts"] == read_manifest(seed_index)["counts"]


# ---- a build killed with SIGKILL ---------------------------------------------------------------------


def _corpus(folder: Path, version: int) -> Path:
    """Version 1: the seed and two documents. Version 2: the seed edited, one kept, one removed, one added."""
    folder.mkdir(parents=True)
    seed = SEED_FILE.read_text("utf-8")
    general = DATA / "general"
    if version == 1:
        (folder / SEED_FILE.name).write_text(seed, "utf-8")
        shutil.copy(general / "git.md", folder / "git.md")
        shutil.copy(DATA / "messy" / "cafe-notes.md", folder / "cafe-notes.md")
    else:
        (folder / SEED_FILE.name).write_text(seed + "\nIn 2031 the IPU opened a lantern museum in Lausanne.\n", "utf-8")
        shutil.copy(general / "git.md", folder / "git.md")
        shutil.copy(general / "zstd.md", folder / "zstd.md")
    return folder


def _version(index: Path, versions: dict[int, dict]) -> int:
    """Which complete version the index folder holds: it must load and verify as one of them."""
    data = load_index(index, verify=True)
    hashes = {source: d.sha256 for source, d in data.documents.items()}
    [version] = [v for v, expected in versions.items() if hashes == expected]
    assert {s: e["sha256"] for s, e in data.manifest["documents"].items()} == hashes
    return version


def _hashes(corpus: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_text("utf-8").encode()).hexdigest() for p in sorted(corpus.iterdir())}


# The random kill moments come from this seed; a failure names it, and QA_FAULT_SEED=<n> replays one.
SEED = int(os.environ.get("QA_FAULT_SEED", "14"))


def _build(corpus: Path, index: Path, stop_at: str | None = None) -> subprocess.Popen:
    env = stopping_env(index.parent / "stopping", stop_at, app_env()) if stop_at else app_env()
    return subprocess.Popen([sys.executable, "-m", "qa", "build", "--corpus", str(corpus), "--index", str(index),
                             "--no-onnx"], cwd=index.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _state(index: Path, before: set[str], inode: int) -> dict:
    """What a build has done to the folder so far: written new data files? replaced the manifest?"""
    names = {p.name for p in index.iterdir()} - before - {".build.lock"}  # the lock is no data
    return {"new_data": bool(names),
            "manifest_replaced": (index / MANIFEST).stat().st_ino != inode}


def _kill(proc: subprocess.Popen, index: Path, at: float | None) -> dict:
    """SIGKILL proc at `at` seconds after its start, or (at=None) once it has stopped itself; the folder's
    state is noted while the build is stopped, so it is exactly the state it is killed in."""
    before, inode = {p.name for p in index.iterdir()}, (index / MANIFEST).stat().st_ino
    if at is None:
        proc.returncode = wait_stopped(proc.pid)  # the build stops itself (see stopping.py)
        stopped = proc.returncode is None
    else:
        try:
            proc.wait(timeout=at)
            stopped = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGSTOP)
            stopped = True
    if not stopped:
        return {"killed": False, "finished": proc.returncode == 0, **_state(index, before, inode)}
    state = _state(index, before, inode)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"killed": proc.returncode == -signal.SIGKILL, **state}


@pytest.mark.slow
def test_a_build_killed_at_any_point_leaves_the_old_or_the_new_index(tmp_path):
    print(f"kill moments seeded with {SEED}: QA_FAULT_SEED={SEED} replays them")  # shown when the test fails
    v1, v2 = _corpus(tmp_path / "v1", 1), _corpus(tmp_path / "v2", 2)
    versions = {1: _hashes(v1), 2: _hashes(v2)}
    old = tmp_path / "old" / "index"
    qa.build_index(corpus_dir=v1, index_dir=old, query_encoder=False)
    assert _version(old, versions) == 1

    # One full build of version 2 over a copy of version 1 measures how long a build takes here.
    reference = tmp_path / "reference" / "index"
    shutil.copytree(old, reference)
    started = time.monotonic()
    build = subprocess.run(_build(v2, reference).args, env=app_env(), capture_output=True, text=True, timeout=600)
    duration = time.monotonic() - started
    assert build.returncode == 0, build.stderr
    assert _version(reference, versions) == 2

    # Seeded random moments, one in each of 6 equal slices of the build's duration; then the two moments
    # that matter most, where the build stops itself (tests/stopping.py): new data files written but the
    # manifest not yet replaced, and just after it was (old generations are about to be removed).
    rng = random.Random(SEED)
    slices = 6
    moments = [(f"at {t:.2f}s", t, None)
               for t in (duration * (0.05 + (i + rng.random()) * 0.95 / slices) for i in range(slices))]
    moments += [("data written", None, "before-manifest"), ("manifest replaced", None, "after-manifest")]

    def run(n: int, label: str, at: float | None, stop_at: str | None) -> tuple[str, dict, int]:
        index = tmp_path / f"kill-{n}" / "index"
        shutil.copytree(old, index)
        outcome = _kill(_build(v2, index, stop_at), index, at)
        # Whatever moment it died at, the folder holds a whole index: the one its manifest names.
        version = _version(index, versions)
        assert version == (2 if outcome["manifest_replaced"] else 1), (label, outcome, f"seed {SEED}")
        assert outcome["killed"] or outcome["finished"], (label, outcome, f"seed {SEED}")
        return label, outcome, version

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(run, range(len(moments)), *zip(*moments)))
    killed = [(label, version) for label, outcome, version in runs if outcome["killed"]]
    assert len(killed) >= slices, (runs, f"seed {SEED}")
    outcomes = {label: (outcome, version) for label, outcome, version in runs}
    assert outcomes["data written"] == ({"killed": True, "new_data": True, "manifest_replaced": False}, 1), runs
    assert outcomes["manifest replaced"] == ({"killed": True, "new_data": True, "manifest_replaced": True}, 2), runs

    # After a kill the next build completes and answers from the new text.
    index = tmp_path / f"kill-{len(moments) - 2}" / "index"  # killed with the new data files written
    report = qa.build_index(corpus_dir=v2, index_dir=index, query_encoder=False)
    assert report.documents == 3 and _version(index, versions) == 2
    bot = qa.load(index, check_stale=False)
    assert "lantern museum in Lausanne" in bot.ask("When did the IPU open a lantern museum?").text


# ---- a rebuild while the app serves --------------------------------------------------------------------


NEW_DOC = """# Harbour Lantern Society

The Harbour Lantern Society was founded in 1897 by the lighthouse keeper Agathe Marrow.
Its lantern festival takes place every August on the north pier of Port Elms.
"""


@pytest.mark.slow
def test_a_rebuild_while_the_app_serves_fails_no_query_and_is_picked_up(seed_index, seed_corpus, tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(seed_corpus, corpus)
    copy_index(seed_index, index)
    new_question = "Who founded the Harbour Lantern Society?"
    with serve("--index", str(index), "--corpus", str(corpus), workdir=tmp_path) as app:
        client = make_client(app.url)
        assert client.predict(new_question, [], api_name="/chat").startswith("My documents do not")

        replies: list[tuple[str, str]] = []
        failures: list[str] = []
        stop = threading.Event()
        replied = threading.Condition()

        def ask_forever() -> None:
            own = make_client(app.url)
            while not stop.is_set():
                for question in (QUESTION, new_question):
                    try:
                        reply = own.predict(question, [], api_name="/chat")
                        own.predict(question, 2, api_name="/retrieve")
                    except Exception as e:  # any failure at all is what this test is about
                        reply = None
                        failures.append(f"{question}: {type(e).__name__}: {e}")
                    with replied:
                        if reply is not None:
                            replies.append((question, reply))
                        replied.notify_all()

        askers = [threading.Thread(target=ask_forever) for _ in range(2)]
        for t in askers:
            t.start()
        try:
            (corpus / "harbour-lantern.md").write_text(NEW_DOC, "utf-8")
            during = len(replies)
            qa.build_index(corpus_dir=corpus, index_dir=index)  # the ONNX encoder is reused, not exported again
            (corpus / "harbour-lantern.md").write_text(NEW_DOC + "\nThe society's museum opened in 1923.\n", "utf-8")
            qa.build_index(corpus_dir=corpus, index_dir=index)  # a second generation: the first one's files go
            with replied:  # the timeouts are hang guards: each wait ends on the reply it waits for
                assert replied.wait_for(lambda: any(q == new_question and "Agathe Marrow" in r
                                                    for q, r in replies[during:]), timeout=120), \
                    "the app never answered from the rebuilt index"
                asked = len(replies)
                assert replied.wait_for(lambda: len(replies) >= asked + 8 or failures, timeout=120)  # and keeps answering
        finally:
            stop.set()
            for t in askers:
                t.join(timeout=120)
        assert failures == []
        assert len(replies) - during >= 10  # the loop really ran through the rebuilds
        for question, reply in replies:
            assert reply.startswith(("According to", "My documents do not", "I am not sure")), reply
            if question == QUESTION:
                assert "179 national member parliaments" in reply
        assert "Agathe Marrow" in client.predict(new_question, [], api_name="/chat")
        assert "1923" in client.predict("When did the Harbour Lantern Society museum open?", [], api_name="/chat")
        log = app.output()
        assert app.attempts() == []
    assert re.search(r"INFO qa\.server( \[worker \d+\])?: reloaded ", log) and "Traceback" not in log


def test_the_app_keeps_its_bot_when_a_new_index_cannot_be_loaded(seed_index, seed_bot, tmp_path, caplog):
    from qa.server import Reloader

    index = tmp_path / "index"
    copy_index(seed_index, index)
    current = Reloader(seed_bot, index)
    assert current() is seed_bot  # nothing changed: no reload
    good = (index / MANIFEST).read_bytes()
    (index / MANIFEST).write_bytes(good[: len(good) // 2])  # a new manifest, and a broken one
    assert current() is seed_bot and current() is seed_bot  # tried once, kept the old bot
    assert "changed but cannot be loaded" in caplog.text and caplog.text.count("cannot be loaded") == 1
    (index / MANIFEST).unlink()
    assert current() is seed_bot  # no manifest at all: keep serving
    (index / MANIFEST).write_bytes(good)  # a good index again (a new file): reloaded
    fresh = current()
    assert fresh is not seed_bot and "179" in fresh.ask(QUESTION).text
