"""The modules of qa import one way: a stage uses the ones before it, never one after it.

The pipeline, from the bottom: documents are read (corpus, extract), chunked, embedded and indexed;
a question is read, its candidates ranked, quoted, decided on and rendered; the bot composes those
stages; evaluation, the servers and the command line stand on the bot. A module that imports a later
stage (even inside a function) makes the flow circular and the file list stop reading as the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

QA = Path(__file__).resolve().parent.parent / "qa"

# Low to high. Modules of one line may not import each other either way unless listed in order there.
STAGES = [
    ["errors", "english"],
    ["extract", "corpus"],
    ["chunking"],
    ["models"],
    ["embedding"],
    ["index"],
    ["retrieval"],
    ["store"],
    ["vectors"],
    ["build"],
    ["answer", "units", "question"],
    ["ranking"],
    ["quoting"],
    ["decision"],
    ["render"],
    ["conversation"],
    ["bot"],
    ["evaluate"],
    ["server", "engine"],
    ["api", "ui"],
    ["cli", "__main__", "__init__"],
    ["fit_ranker", "fit_decision"],  # maintainers' tools: fit qa/ranker.json and qa/decision.json
]


def _imports(path: Path) -> set[str]:
    """The qa modules a file imports anywhere (inside functions too), but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text("utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif node.module and node.module.split(".")[0] == "qa":
            parts = node.module.split(".")
            found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
    return found - {path.stem}


def test_every_module_has_a_stage():
    modules = {p.stem for p in QA.glob("*.py")}
    placed = {m for line in STAGES for m in line}
    assert modules <= placed, f"place these in STAGES: {sorted(modules - placed)}"


def test_no_module_imports_a_later_stage():
    rank = {m: (i, j) for i, line in enumerate(STAGES) for j, m in enumerate(line)}
    wrong = []
    for path in QA.glob("*.py"):
        for other in _imports(path) & rank.keys():
            if rank[other] >= rank[path.stem]:
                wrong.append(f"{path.stem} imports {other}")
    assert not wrong, wrong
