"""Run a question set (the format of shared/eval/dev.jsonl) and compute its metrics.

Follow-ups are asked turn by turn with the bot's own earlier answers as history; the
last turn's answer is scored. Texts are compared after collapsing whitespace and
lower-casing. Every item belongs once and for all to the *tune* or the *test* half of
its set, decided by a hash of its id (`split_of`): weights and thresholds are fitted on
tune, the README reports test.

An item may name the document its answer is in (`"source"`): the first quote's document
is then scored too (`doc@1`), which is what matters in a folder of look-alike files. An item
may also give the answer's character spans in that document (`"spans"`, as the SQuAD set
does): a quote then counts only when it covers one of them, since a short answer ("1997",
"France") occurs in many sentences. Items that share a passage carry a `"group"` (SQuAD's
article): the split hashes the group, so the test half is text that no fit has seen.
An answer has one of three outcomes: "answered", "uncertain" (quoted with a caveat) or
"declined". For an answerable item a decline is a miss; for an unanswerable one,
declining or saying it is uncertain are both honest; an off-topic one must be declined.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .errors import QAError

if TYPE_CHECKING:
    from .bot import Bot

KINDS = ("fact", "paraphrase", "noisy", "broad", "followup", "offtopic", "unanswerable")
SPLITS = ("tune", "test")
# Kinds whose answer is one fact: their quotes should be a sentence, not a paragraph.
FACT_KINDS = ("fact", "paraphrase", "noisy", "followup")


def split_of(key: str) -> str:
    """'tune' or 'test': the half of an item id (or group), fixed by the first byte of its sha256."""
    return SPLITS[hashlib.sha256(key.encode("utf-8")).digest()[0] & 1]


def item_split(item: dict) -> str:
    """The half an item belongs to: its group's when it has one (all questions on one article go
    together), else its own id's."""
    return split_of(item.get("group") or item["id"])


@dataclass(slots=True)
class ItemResult:
    id: str
    kind: str
    question: str
    query: str
    expect: list[str] | None
    outcome: str  # "answered" | "uncertain" | "declined"
    quotes: list[str]
    sources: list[str]  # the document of each quote
    source: str | None  # the document the answer is in, when the item names it
    hit1: bool
    hit3: bool
    verbatim: bool
    latency_ms: float
    split: str = "tune"

    @property
    def abstained(self) -> bool:
        return self.outcome == "declined"

    @property
    def doc1(self) -> bool | None:
        """Whether the first quote comes from the expected document; None when that is not known."""
        if self.source is None or self.expect is None:
            return None
        return bool(self.sources) and self.sources[0] == self.source

    @property
    def right(self) -> bool:
        """What a user would call right: the answer first for an answerable item, no false quote else."""
        if self.expect is not None:
            return self.hit1 and not self.abstained
        return self.abstained if self.kind == "offtopic" else self.outcome != "answered"


@dataclass(slots=True)
class Report:
    items: list[ItemResult] = field(default_factory=list)

    def select(self, kind: str | None = None, split: str | None = None) -> list[ItemResult]:
        return [i for i in self.items if (kind is None or i.kind == kind) and (split is None or i.split == split)]

    def metrics(self, kind: str | None = None, split: str | None = None) -> dict:
        items = self.select(kind, split)
        answerable = [i for i in items if i.expect is not None]
        offtopic = [i for i in items if i.expect is None and i.kind == "offtopic"]
        unanswerable = [i for i in items if i.expect is None and i.kind != "offtopic"]
        named = [i for i in answerable if i.source is not None]
        facts = [len(i.quotes[0]) for i in answerable if i.quotes and i.kind in FACT_KINDS]
        first = [len(i.quotes[0]) for i in answerable if i.quotes]
        answered = [i for i in items if i.outcome == "answered"]
        uncertain = [i for i in items if i.outcome == "uncertain"]
        return {
            "items": len(items),
            "hit@1": _share(answerable, lambda i: i.hit1),
            "hit@3": _share(answerable, lambda i: i.hit3),
            "median_first_quote_chars": statistics.median(first) if first else None,
            "doc@1": _share(named, lambda i: i.doc1),
            "answered": _share(answerable, lambda i: i.outcome == "answered"),
            "uncertain": _share(answerable, lambda i: i.outcome == "uncertain"),
            "declined": _share(answerable, lambda i: i.abstained),
            # of the replies given as answers (or under a caveat), the share whose first quote is right
            "answered_right": _share(answered, lambda i: i.expect is not None and i.hit1),
            "uncertain_right": _share(uncertain, lambda i: i.expect is not None and i.hit1),
            "offtopic_declined": _share(offtopic, lambda i: i.abstained),
            "unanswerable_declined": _share(unanswerable, lambda i: i.abstained),
            "unanswerable_caught": _share(unanswerable, lambda i: i.outcome != "answered"),
            "verbatim": _share([i for i in items if i.quotes], lambda i: i.verbatim),
            "median_fact_quote_chars": statistics.median(facts) if facts else None,
            "median_latency_ms": round(statistics.median(i.latency_ms for i in items), 2) if items else None,
        }

    def misses(self, split: str | None = None) -> list[ItemResult]:
        return [i for i in self.select(split=split) if not i.right]

    def as_dict(self, split: str | None = None) -> dict:
        kinds = sorted({i.kind for i in self.select(split=split)})
        return {
            "overall": self.metrics(split=split),
            "by_kind": {k: self.metrics(k, split) for k in kinds},
            "misses": [
                {"id": i.id, "kind": i.kind, "query": i.query, "expect": i.expect, "outcome": i.outcome,
                 "source": i.source, "first_source": i.sources[0] if i.sources else None,
                 "first_quote": i.quotes[0] if i.quotes else None}
                for i in self.misses(split)
            ],
        }


def _share(items: list[ItemResult], test: Callable[[ItemResult], bool]) -> float | None:
    return round(sum(bool(test(i)) for i in items) / len(items), 3) if items else None


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def load_items(path: str | Path) -> list[dict]:
    """The items of a JSON-lines question set; QAError naming the line when one is malformed."""
    items = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise QAError(f"{path}:{n} is not JSON ({e.msg})") from e
        problem = _problem(item)
        if problem:
            raise QAError(f"{path}:{n}: {problem}")
        items.append(item)
    return items


def _problem(item) -> str | None:
    """What makes item unusable, or None."""
    if not isinstance(item, dict):
        return "an item must be a JSON object"
    if not isinstance(item.get("id"), str) or not item["id"]:
        return "an item needs a text 'id'"
    turns = item.get("turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        return f"item {item['id']}: 'turns' must be a non-empty list of questions"
    expect = item.get("expect")
    if expect is not None and (not isinstance(expect, list) or not expect
                               or not all(isinstance(e, str) and e.strip() for e in expect)):
        return f"item {item['id']}: 'expect' must be null or a non-empty list of strings"
    if not isinstance(item.get("kind"), str):
        return f"item {item['id']}: 'kind' must be text"
    return None


def holds_answer(item: dict, quote) -> bool:
    """Whether a quote answers an item: covers one of its answer spans when it gives them (the quote
    must be where the answer is), else holds one of its expected strings."""
    if item.get("expect") is None:
        return False
    if item.get("spans"):
        return quote.source == item.get("source") and any(quote.start <= s and e <= quote.end for s, e in item["spans"])
    return any(_norm(e) in _norm(quote.text) for e in item["expect"])


def converse(bot, turns: list[str]) -> tuple[object, dict, list[dict]]:
    """Ask turns in order, each with the conversation so far (the bot's own replies as history): the last
    turn's answer and signals from bot.respond, and the whole conversation as history."""
    answer, signals, history = None, {}, []
    for turn in turns:
        answer, signals = bot.respond(turn, history)
        history += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer.text}]
    return answer, signals, history


def ask_item(bot, item: dict):
    """The last turn's (answer, signals) of an item, its turns asked as a conversation (converse)."""
    return converse(bot, item["turns"])[:2]


def evaluate(bot, items: list[dict], corpus_dir: str | Path | None = None, split: str | None = None) -> Report:
    """Ask every item (of one split, if given) and score the answers.

    Quotes are checked verbatim against the document as the bot holds it, and also against the file
    on disk when corpus_dir is given (the index must not drift from the corpus it claims to quote).
    """
    from .corpus import read_document

    on_disk: dict[str, str | None] = {}

    def disk_text(source: str) -> str | None:
        if source not in on_disk:
            path = Path(corpus_dir, source)
            on_disk[source] = read_document(path, source).text if path.suffix in (".txt", ".md") else None
        return on_disk[source]

    report = Report()
    for item in items:
        half = item_split(item)
        if split is not None and half != split:
            continue
        history: list[dict] = []
        for turn in item["turns"]:
            started = time.perf_counter()
            answer = bot.ask(turn, history=history)
            latency = (time.perf_counter() - started) * 1000
            history += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer.text}]
        expect = item.get("expect")
        texts = [q.text for q in answer.quotes]
        covers = lambda q: holds_answer(item, q)
        verbatim = all(bot.document(q.source).text[q.start : q.end] == q.text for q in answer.quotes)
        if corpus_dir is not None:
            verbatim = verbatim and all(
                (text := disk_text(q.source)) is None or text[q.start : q.end] == q.text for q in answer.quotes
            )
        report.items.append(ItemResult(
            item["id"], item["kind"], item["turns"][-1], answer.query, expect, answer.outcome, texts,
            [q.source for q in answer.quotes], item.get("source"),
            bool(texts) and covers(answer.quotes[0]), any(map(covers, answer.quotes[:3])), verbatim, latency, half,
        ))
    return report


_RATES = ("hit@1", "hit@3", "doc@1", "answered", "uncertain", "declined", "answered_right", "uncertain_right",
          "offtopic_declined", "unanswerable_declined", "unanswerable_caught", "verbatim")
COLUMNS = ("items", "hit@1", "median_first_quote_chars", "hit@3", "doc@1", "answered", "uncertain", "declined",
           "answered_right", "uncertain_right", "offtopic_declined", "unanswerable_declined", "unanswerable_caught",
           "verbatim")


def _cell(name: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if name in _RATES else f"{value:g}"


def table(rows: list[tuple[str, dict]], columns=COLUMNS, label: str = "kind") -> str:
    """Metrics dicts as a Markdown table, one row each."""
    lines = [f"| {label} | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {name} | " + " | ".join(_cell(c, m[c]) for c in columns) + " |" for name, m in rows]
    return "\n".join(lines)


def format_report(report: Report, split: str | None = None) -> str:
    """The metrics as a Markdown table, overall and per kind, then the misses."""
    data = report.as_dict(split)
    lines = [table([("overall", data["overall"]), *data["by_kind"].items()])]
    if data["misses"]:
        lines.append("\nmisses:")
        for m in data["misses"]:
            quote = (m["first_quote"] or "")[:120].replace("\n", " ")
            where = f" from {m['first_source']}" if m["source"] and m["first_source"] != m["source"] else ""
            lines.append(f"- {m['id']} ({m['kind']}) {m['query']!r} {m['outcome']}{where}: {quote!r}")
    return "\n".join(lines)


def eval_index(name: str, corpus: str | Path, model: str | None = None, cache: str | Path | None = None):
    """An index of corpus for evaluation, kept in the cache (default: qa/eval under $XDG_CACHE_HOME or
    ~/.cache) as <name>-<model> and updated incrementally: (its folder, the build's report)."""
    from .models import DEFAULT_MODEL
    from .build import build_index

    model = model or DEFAULT_MODEL
    cache = Path(cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qa" / "eval")
    folder = cache / f"{name}-{re.sub(r'[^A-Za-z0-9.-]+', '_', Path(model).name)}"
    return folder, build_index(corpus_dir=corpus, index_dir=folder, model=model)


SUITE_FILE = "corpora.json"


def load_suite(folder: str | Path) -> dict[str, Path]:
    """{set name: corpus folder} from folder/corpora.json; paths in it are relative to that file's folder."""
    folder = Path(folder)
    try:
        mapping = json.loads((folder / SUITE_FILE).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise QAError(f"cannot read {folder / SUITE_FILE} ({e}) — it maps each set name to its corpus folder") from e
    suite = {}
    for name, corpus in mapping.items():
        if not (folder / f"{name}.jsonl").is_file():
            raise QAError(f"{folder / SUITE_FILE} names set {name!r} but {folder / (name + '.jsonl')} does not exist")
        suite[name] = (folder / corpus).resolve()
    return suite


SETS = Path("tests/data/sets")  # the repository's question sets, from its root: the tuning tools' default


def tuning_arguments(description: str, out: Path, rows: str) -> argparse.Namespace:
    """The tuning tools' command line: --model (repeatable; default: both shipped models, as args.models),
    --sets, --cache, --out (the fitted file, default out) and --rows (rows: what is kept there)."""
    from .models import MINILM_MODEL, MPNET_MODEL

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", action="append", help="repeatable; default: both shipped models")
    p.add_argument("--sets", type=Path, default=SETS,
                   help="a folder of question sets with corpora.json (default: %(default)s)")
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--rows", type=Path, default=None, help=rows)
    args = p.parse_args()
    args.models = args.model or [MPNET_MODEL, MINILM_MODEL]
    return args


def suite_bots(folder: str | Path, model: str | None = None, cache: str | Path | None = None,
               **settings) -> Iterator[tuple[str, "Bot", list[dict]]]:
    """Each set of a suite folder (load_suite): its name, a Bot over its corpus's evaluation index
    (eval_index; settings are the Bot's: ranker, scoring, decide), and its items. The tuning tools'
    one way in (qa/fit_ranker.py, qa/fit_decision.py, bench/ablate_rules.py)."""
    from .bot import load

    for name, corpus in load_suite(folder).items():
        bot = load(eval_index(name, corpus, model, cache)[0], **settings)
        yield name, bot, load_items(Path(folder) / f"{name}.jsonl")
