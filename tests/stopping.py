"""A subprocess that stops itself (SIGSTOP) at a chosen point of a build, for a test to act at exactly
that moment (kill it, interrupt it) instead of guessing it by time or by polling the folder.

`stopping_env(folder, at)` returns environment additions that install the hook as sitecustomize.py:
- "first-write": before the first index data file is renamed into place (not another library's cache file);
- "before-manifest": data files written, just before the manifest is replaced;
- "after-manifest": just after it was replaced (old generations not yet removed).
"""

from __future__ import annotations

import os
from pathlib import Path

_HOOK = """\
import os, signal

_at = os.environ.get("QA_STOP_AT")
if _at:
    _replace = os.replace
    _first = [True]

    def replace(src, dst, *args, **kwargs):
        manifest = os.path.basename(dst) == "manifest.json"
        # an index data file ("chunks.<hash>.jsonl", …): libraries may replace their own cache files first
        data = os.path.basename(dst).split(".")[0] in ("documents", "chunks", "vectors", "sentences", "encoder",
                                                       "lexicon")
        if (manifest and _at == "before-manifest") or (_first[0] and data and _at == "first-write"):
            _first[0] = False
            os.kill(os.getpid(), signal.SIGSTOP)
        result = _replace(src, dst, *args, **kwargs)
        if manifest and _at == "after-manifest":
            os.kill(os.getpid(), signal.SIGSTOP)
        return result

    os.replace = replace
"""


def stopping_env(folder: Path, at: str, env: dict[str, str]) -> dict[str, str]:
    """env with the hook (written into folder) first on PYTHONPATH, set to stop at `at`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_HOOK, "utf-8")
    path = [str(folder)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    return {**env, "PYTHONPATH": os.pathsep.join(path), "QA_STOP_AT": at}


def wait_stopped(pid: int) -> int | None:
    """Wait until the process stops itself; None then, else (it exited first) its exit code."""
    _, status = os.waitpid(pid, os.WUNTRACED)
    return None if os.WIFSTOPPED(status) else os.waitstatus_to_exitcode(status)
