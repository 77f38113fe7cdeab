"""Command line: `python -m qa build | ask | eval`. Parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    """Everything runs offline: no model hub, no telemetry, no analytics."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qa", description="An offline bot that answers by quoting its corpus.")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="chunk, embed and index a corpus folder")
    b.add_argument("--corpus", default="corpus", help="folder of .txt/.md documents (default: corpus)")
    b.add_argument("--index", default="index", help="index folder to write (default: index)")
    b.add_argument("--model", default=None, help="sentence-transformers model name or local path")
    b.add_argument("--no-onnx", action="store_true", help="leave the fast ONNX query encoder out of the index")

    a = sub.add_parser("ask", help="ask one question")
    a.add_argument("question")
    a.add_argument("--index", default="index")
    a.add_argument("--json", action="store_true", help="print text, quotes with offsets, abstained, query")

    e = sub.add_parser("eval", help="run a question set, or a folder of them, and print their metrics")
    e.add_argument("file", help="JSON lines in the format of shared/eval/dev.jsonl, or a folder of sets with a "
                                "corpora.json naming each set's corpus folder")
    e.add_argument("--index", default="index", help="the index to ask (a single set without --corpus)")
    e.add_argument("--corpus", default=None, help="build (or update) an index of this folder and ask it")
    e.add_argument("--model", default=None, help="the model to build with (with --corpus or a folder of sets)")
    e.add_argument("--cache", default=None, help="where evaluation indexes are kept (default: ~/.cache/qa/eval)")
    e.add_argument("--split", default="all", choices=["all", "tune", "test"])
    e.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "bm25"])
    e.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from .errors import QAError

    try:
        return {"build": _build, "ask": _ask, "eval": _eval}[args.command](args)
    except QAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _build(args) -> int:
    from .build import build_index
    from .models import DEFAULT_MODEL

    report = build_index(
        corpus_dir=args.corpus, index_dir=args.index, model=args.model or DEFAULT_MODEL,
        query_encoder=not args.no_onnx, progress=sys.stderr.isatty(),
    )
    for _, reason in report.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    print(f"built {args.index}/: {report.summary()}")
    return 0


def _ask(args) -> int:
    from .bot import load
    from .render import UNCERTAIN, plain

    answer = load(args.index).ask(args.question)
    if args.json:
        print(json.dumps(asdict(answer), ensure_ascii=False, indent=2))
    elif answer.abstained:
        print(plain(answer.text))
    else:
        if answer.outcome == "uncertain":
            print(UNCERTAIN)
        for q in answer.quotes:
            print(f"{q.citation} ({q.source}:{q.start}-{q.end})\n  “{q.text}”")
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from .bot import load
    from .evaluate import evaluate, format_report, load_items, load_suite, table

    split = None if args.split == "all" else args.split
    if Path(args.file).is_dir():
        suite = load_suite(args.file)
        results = {}
        for name, corpus in suite.items():
            index = _eval_index(args, name, corpus)
            results[name] = evaluate(load(index, mode=args.mode), load_items(Path(args.file, f"{name}.jsonl")),
                                     corpus_dir=corpus, split=split)
        if args.json:
            print(json.dumps({n: r.as_dict(split) for n, r in results.items()}, indent=2, ensure_ascii=False))
            return 0
        for half in ("test", "tune") if split is None else (split,):
            rows = [(name, r.metrics(split=half)) for name, r in results.items()]
            print(f"\n{half} half\n\n" + table(rows, label="set"))
        return 0
    index = _eval_index(args, Path(args.corpus).name, Path(args.corpus)) if args.corpus else args.index
    report = evaluate(load(index, mode=args.mode), load_items(args.file), corpus_dir=args.corpus, split=split)
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0


def _eval_index(args, name: str, corpus) -> str:
    """An index of corpus for evaluation, kept in the cache and updated incrementally."""
    from .evaluate import eval_index

    folder, report = eval_index(name, corpus, args.model, args.cache)
    print(f"{name}: {folder}: {report.summary()}", file=sys.stderr)
    return str(folder)
