"""The command line as a person uses it: plain `qa ask` output, a bad --model, and Ctrl-C.

(--json output, eval and damaged indexes: tests/test_answer.py, tests/test_faults.py.)
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from conftest import SEED_FILE
from served_app import app_env
from stopping import stopping_env, wait_stopped


def test_plain_ask_prints_each_quote_with_where_it_is(seed_index, capsys):
    from qa.cli import main

    assert main(["ask", "How many member parliaments does the IPU have?", "--index", str(seed_index)]) == 0
    out, err = capsys.readouterr()
    quotes = re.findall(r"^(.+) \((.+):(\d+)-(\d+)\)\n  “(.*)”$", out, re.M)
    assert quotes and len(out.splitlines()) == 2 * len(quotes), out
    text = SEED_FILE.read_text("utf-8")
    for citation, source, start, end, quoted in quotes:
        assert source == SEED_FILE.name and text[int(start) : int(end)] == quoted
    assert quotes[0][0] == "Inter-Parliamentary Union" and "179 national member parliaments" in quotes[0][4]
    assert err == ""


def test_plain_ask_says_when_the_documents_do_not_answer_in_plain_text(seed_index, capsys):
    from qa.cli import main

    assert main(["ask", "What is the tallest mountain in the world?", "--index", str(seed_index)]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("My documents do not answer that")
    assert "You could ask about: Digital Activities, Capacity development" in out
    assert "*" not in out and "\\" not in out  # Markdown is for the chat UI, not a terminal


def test_build_with_an_unknown_model_is_one_line_naming_the_fix(tmp_path, seed_corpus, capsys):
    from qa.cli import main

    index = tmp_path / "index"
    assert main(["build", "--corpus", str(seed_corpus), "--index", str(index), "--model", "no-such-org/no-model"]) == 1
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert out == "" and line.startswith("error: model 'no-such-org/no-model' is neither the packaged")
    assert "leave out --model" in line
    assert not (index / "manifest.json").exists()


def test_ctrl_c_during_a_build_exits_130_quietly_and_leaves_no_half_index(tmp_path, seed_corpus):
    """SIGINT, as a terminal sends on Ctrl-C, arrives while the build writes its first data file."""
    index = tmp_path / "index"
    env = stopping_env(tmp_path / "hook", "first-write", app_env())
    proc = subprocess.Popen([sys.executable, "-m", "qa", "build", "--corpus", str(seed_corpus), "--index", str(index),
                             "--no-onnx"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            # as from a terminal: an ignored SIGINT is inherited, and an earlier test in the
                            # session (a server run in-process) may have left the test process ignoring it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_stopped(proc.pid) is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and out == ""
    assert not (index / "manifest.json").exists()
    assert [p.name for p in index.iterdir() if p.name.endswith(".tmp")] == []  # its temporary file was removed


@pytest.mark.parametrize("argv", [["eval", "x.jsonl", "--mode", "semantic"], ["build", "--no-such-flag"]])
def test_bad_arguments_are_a_usage_error(argv, capsys):
    from qa.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "usage: qa" in capsys.readouterr().err
