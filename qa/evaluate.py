"""Run a question set (the format of shared/eval/dev.jsonl) and compute its metrics.

Follow-ups are asked turn by turn with the bot's own earlier answers as history.
Texts are compared after collapsing whitespace and lower-casing.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import QAError


@dataclass(slots=True)
class ItemResult:
    id: str
    kind: str
    question: str
    query: str
    expect: list[str] | None
    abstained: bool
    quotes: list[str]
    hit1: bool
    hit3: bool
    verbatim: bool
    latency_ms: float


@dataclass(slots=True)
class Report:
    items: list[ItemResult] = field(default_factory=list)

    def metrics(self, kind: str | None = None) -> dict:
        items = [i for i in self.items if kind is None or i.kind == kind]
        answerable = [i for i in items if i.expect is not None]
        unanswerable = [i for i in items if i.expect is None]
        first = [len(i.quotes[0]) for i in items if i.quotes]
        share = lambda xs, f: round(sum(map(f, xs)) / len(xs), 3) if xs else None
        return {
            "items": len(items),
            "hit@1": share(answerable, lambda i: i.hit1),
            "hit@3": share(answerable, lambda i: i.hit3),
            "abstention": share(unanswerable, lambda i: i.abstained),
            "false_abstention": share(answerable, lambda i: i.abstained),
            "verbatim": share([i for i in items if i.quotes], lambda i: i.verbatim),
            "median_first_quote_chars": statistics.median(first) if first else None,
            "median_latency_ms": round(statistics.median(i.latency_ms for i in items), 2) if items else None,
        }

    def misses(self) -> list[ItemResult]:
        return [i for i in self.items if (i.expect is None) != i.abstained or (i.expect is not None and not i.hit1)]

    def as_dict(self) -> dict:
        kinds = sorted({i.kind for i in self.items})
        return {
            "overall": self.metrics(),
            "by_kind": {k: self.metrics(k) for k in kinds},
            "misses": [
                {"id": i.id, "kind": i.kind, "query": i.query, "expect": i.expect, "abstained": i.abstained,
                 "first_quote": i.quotes[0] if i.quotes else None}
                for i in self.misses()
            ],
        }


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_items(path: str | Path) -> list[dict]:
    items = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise QAError(f"{path}:{n} is not JSON ({e.msg})") from e
    return items


def evaluate(bot, items: list[dict]) -> Report:
    report = Report()
    for item in items:
        history: list[dict] = []
        for turn in item["turns"]:
            started = time.perf_counter()
            answer = bot.ask(turn, history=history)
            latency = (time.perf_counter() - started) * 1000
            history += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer.text}]
        expect = item.get("expect")
        texts = [q.text for q in answer.quotes]
        contains = lambda t: expect is not None and any(_norm(e) in _norm(t) for e in expect)
        verbatim = all(bot.data.documents[q.source].text[q.start : q.end] == q.text for q in answer.quotes)
        report.items.append(ItemResult(
            item["id"], item["kind"], item["turns"][-1], answer.query, expect, answer.abstained, texts,
            bool(texts) and contains(texts[0]), any(contains(t) for t in texts[:3]), verbatim, latency,
        ))
    return report


_RATES = ("hit@1", "hit@3", "abstention", "false_abstention", "verbatim")
_COUNTS = ("items", "median_first_quote_chars", "median_latency_ms")


def _cell(name: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if name in _RATES else f"{value:g}"


def format_report(report: Report) -> str:
    """The metrics as a Markdown table, overall and per kind, then the misses."""
    data = report.as_dict()
    cols = ["items", *_RATES, "median_first_quote_chars", "median_latency_ms"]
    lines = ["| kind | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for name, m in [("overall", data["overall"]), *data["by_kind"].items()]:
        lines.append(f"| {name} | " + " | ".join(_cell(c, m[c]) for c in cols) + " |")
    if data["misses"]:
        lines.append("\nmisses:")
        for m in data["misses"]:
            quote = (m["first_quote"] or "")[:120].replace("\n", " ")
            lines.append(f"- {m['id']} ({m['kind']}) {m['query']!r} abstained={m['abstained']} first quote: {quote!r}")
    return "\n".join(lines)
