"""Shared fixtures: the seed corpus indexed once per session with the real packaged model."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

for _key, _value in {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = ROOT / "corpus"
SEED_FILE = SEED_CORPUS / "inter-parliamentary-union.txt"
DATA = Path(__file__).resolve().parent / "data"
DEV_SET = DATA / "dev.jsonl"


def copy_index(source: Path, target: Path) -> Path:
    """A copy of an index folder in which the ONNX query encoder is hard-linked, not copied.

    The encoder is ~420 MB with mpnet and is never written once exported; the suite copies the seed
    index dozens of times, and full copies filled the CI machine's disk. Everything else is copied,
    so a test may damage any other file without touching the source.
    """
    def copy(src: str, dst: str) -> str:
        if Path(src).parent.name.startswith("encoder."):
            try:
                os.link(src, dst)
                return dst
            except OSError:  # another file system
                pass
        return shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=copy)
    return target


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory) -> Path:
    """A private copy of the seed corpus (tests never write into the work tree)."""
    folder = tmp_path_factory.mktemp("seed-corpus")
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    return folder


@pytest.fixture(scope="session")
def seed_index(seed_corpus, tmp_path_factory) -> Path:
    """The seed corpus built once, with the ONNX query encoder."""
    import qa

    folder = tmp_path_factory.mktemp("seed-index") / "index"
    qa.build_index(corpus_dir=seed_corpus, index_dir=folder)
    return folder


@pytest.fixture(scope="session")
def seed_bot(seed_index):
    import qa

    return qa.load(seed_index)


@pytest.fixture(scope="session")
def seed_app(seed_index, tmp_path_factory):
    """`python app.py` on the seed index, with the network guard, shared by the API and browser tests."""
    from served_app import serve

    with serve("--index", str(seed_index), workdir=tmp_path_factory.mktemp("seed-app")) as app:
        yield app


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright."""
    from served_app import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        # A failure, not a skip: a skipped browser suite would let a broken install step pass.
        pytest.fail(f"Debian's Chromium is not at {CHROMIUM}: run `make system-packages` (`make test` does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


NOBODY = 65534  # Debian's `nobody` / `nogroup`


class OtherUser:
    """Runs commands as an unprivileged user who owns none of the test's files: `nobody` (through
    util-linux's setpriv) when the tests run as root, as CI does, else the current, unprivileged user.

    Its folder can be reached by anyone (pytest's tmp_path cannot: /tmp/pytest-of-root is 0700).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.prefix = (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
                       if os.geteuid() == 0 else [])

    def share(self, path: Path) -> Path:
        """A copy of path in the folder, with the same modes (copytree copies them)."""
        target = self.folder / path.name
        shutil.copytree(path, target)
        return target

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        env = {**os.environ, "HOME": str(self.folder), "PYTHONPATH": str(ROOT)}
        return subprocess.run([*self.prefix, *args], cwd=self.folder, env=env, capture_output=True, text=True,
                              timeout=300)


@pytest.fixture
def other_user():
    folder = Path(tempfile.mkdtemp(prefix="qa-other-user-"))
    folder.chmod(0o755)
    try:
        yield OtherUser(folder)
    finally:
        shutil.rmtree(folder)
