"""The docs: generated figures match their data, the README stays short, and relative links resolve.

No model and no app: docs/generate.py reads JSON files only, so this runs in well under a second.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
# [text](target) and ![alt](target); a target may hold one level of balanced parentheses.
LINK = re.compile(r"!?\[[^\]]*\]\(((?:[^()\s]|\([^()\s]*\))+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]


def test_generated_blocks_match_their_data():
    drift = _generator().stale()
    assert not drift, "run: python docs/generate.py\n" + "\n".join(diff for _, diff in drift)


def test_every_generated_block_is_known_and_closed():
    generate = _generator()
    for path in _documents():
        text = path.read_text("utf-8")
        opened = re.findall(r"<!-- generated:([\w-]+) -->", text)
        assert text.count("<!-- /generated -->") == len(opened), f"{path.name}: a generated block is not closed"
        assert set(opened) <= set(generate.BLOCKS), f"{path.name}: unknown blocks {set(opened) - set(generate.BLOCKS)}"


def test_the_generator_renders_metrics_it_does_not_know(tmp_path, monkeypatch):
    generate = _generator()
    data = {"ipu": {"overall": {"items": 4, "hit@1": 0.5, "median_fact_quote_chars": 120, "span_f1": 0.25,
                                "answered_share": 0.75, "median_latency_ms": 3.25, "doc@1": None},
                    "by_kind": {"fact": {"items": 2, "hit@1": 1.0}, "offtopic": {"items": 2, "offtopic_declined": 0.5}},
                    "misses": []}}
    monkeypatch.setattr(generate, "eval_data", lambda split: data)
    lines = generate.eval_half("test")
    assert lines[0] == ("| set | items | hit@1 | median fact quote (chars) | median latency (ms) | span f1 "
                        "| answered share |")
    assert lines[2] == "| ipu | 4 | 50% | 120 | 3.2 | 25% | 75% |"
    kinds = generate.eval_by_kind()
    assert kinds[2].startswith("| fact | 2 (2) | 100% (100%) |"), kinds


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text("utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it to {README_MAX_LINES}, move the rest to docs/"


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces as '-'."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", CODE.sub("", path.read_text("utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.replace("`", "").lower()).replace(" ", "-") for h in headings}


def test_relative_links_point_at_files_that_exist():
    broken = []
    for path in _documents():
        text = CODE.sub("", path.read_text("utf-8"))
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # a URL
            file, _, anchor = target.partition("#")
            linked = (path.parent / file) if file else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken
