"""Building an index and answering from it open no network connection.

Two proofs. The strong one runs the command line, as a user would, in a process that has no
network at all: `unshare -n` gives it a fresh network namespace without even a loopback
interface, so native code could not reach out either. The second works anywhere: in this
process, sockets refuse (and record) every connection and name lookup that is not local while
the library builds, loads and answers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import qa

from conftest import ROOT, SEED_FILE
from netguard import guards

ADDRESS_QUESTION = "What is the address of the Inter-Parliamentary Union?"


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _no_network(*command: str, cwd) -> subprocess.CompletedProcess:
    # No HF_* / TRANSFORMERS_* variables: the library must stay offline by itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PYTHON"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(["unshare", "-n", sys.executable, *command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="unshare -n is not permitted here (needs root or user namespaces)")
def test_command_line_builds_and_answers_without_a_network(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)

    probe = _no_network("-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)", cwd=tmp_path)
    assert probe.returncode != 0 and "unreachable" in probe.stderr  # the namespace really has no network

    # The full build, ONNX export included, as `make run` does it.
    build = _no_network("-m", "qa", "build", "--corpus", str(corpus), "--index", str(index), cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    [line] = build.stdout.splitlines()
    assert line.startswith(f"built {index}/: 1 documents, ") and " reused, flat, " in line

    ask = _no_network("-m", "qa", "ask", ADDRESS_QUESTION, "--index", str(index), "--json", cwd=tmp_path)
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert not answer["abstained"]
    assert any("Chem. du Pommier 5" in q["text"] for q in answer["quotes"])


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every non-local connection or name lookup attempted while the fixture is active (each one fails)."""
    attempts: list = []
    for name, guarded in guards(attempts.append).items():
        monkeypatch.setattr(socket.socket if name.startswith("connect") else socket, name, guarded)

    # The guard itself works: an outside address is refused and recorded.
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("huggingface.co", 443), timeout=5)
    assert attempts == [("192.0.2.1", 80), "huggingface.co"]
    attempts.clear()
    return attempts


def test_build_load_and_ask_make_no_connection(connections, seed_index, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    report = qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    assert report.documents == 1 and report.chunks > 0

    for index in (tmp_path / "index", seed_index):  # sentence-transformers, then the ONNX query encoder
        bot = qa.load(index)
        assert "Chem. du Pommier 5" in bot.retrieve(ADDRESS_QUESTION)[0].text
        answer = bot.ask(ADDRESS_QUESTION)
        assert not answer.abstained and "Chem. du Pommier 5" in answer.quotes[0].text
    assert connections == []
