"""How qa's modules import each other: the serving modules one way, and no cycle at import time.

The UI (qa.ui) lays out answers; the JSON API (qa.api) parses requests; qa.engine runs the asks of both in
worker processes; qa.server is what every front end stands on (guard, launch, reload, the gradio import).
So qa.server and qa.engine import neither front end, and qa.api does not import the UI, not even inside a
function: a worker process that answers the API must not need the UI's module to do it.
"""

from __future__ import annotations

import ast
from pathlib import Path

QA = Path(__file__).resolve().parent.parent / "qa"


def imports(path: Path, module_level_only: bool) -> set[str]:
    """The qa modules a file imports ("ui", "server", …): at module level (outside `if TYPE_CHECKING:`),
    or anywhere."""
    tree = ast.parse(path.read_text("utf-8"))
    nodes = []
    if module_level_only:
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes.extend(ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                         else [])
    else:
        nodes = list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qa":
            parts = node.module.split(".")
            found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
    modules = {p.stem for p in QA.glob("*.py")}
    return (found & modules) - {path.stem}


def test_the_serving_modules_import_one_way():
    anywhere = {name: imports(QA / f"{name}.py", module_level_only=False) for name in ("server", "engine", "api", "ui")}
    assert not anywhere["server"] & {"ui", "api", "engine"}, anywhere["server"]
    assert not anywhere["engine"] & {"ui", "api"}, anywhere["engine"]
    assert "ui" not in anywhere["api"], anywhere["api"]


def test_no_import_cycle_at_module_level():
    graph = {p.stem: imports(p, module_level_only=True) for p in QA.glob("*.py")}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for nxt in sorted(graph.get(name, ())):
            assert state.get(nxt) != "open", " -> ".join(path + [name, nxt])
            if nxt not in state:
                visit(nxt, path + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
