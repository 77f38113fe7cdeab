"""Write the SQuAD 2.0 question set and its corpus from ../shared/squad (run once; the output is checked in).

    python bench/squad_set.py [--source ../shared/squad/squad2-eight-articles.json]

Each article becomes one document, tests/data/corpora/squad/<Title>.txt: its title, a blank line,
then its paragraphs separated by blank lines. Each question becomes an item of
tests/data/sets/squad.jsonl: "fact" with its answers as `expect` and their character spans in the
document as `spans`, or "unanswerable" (SQuAD 2.0's impossible questions; their "plausible answers"
are wrong by design and are left out). `group` is the article: the tune/test split is by article
(qa.evaluate.split_of hashes the group), so the test half is text no fit has seen.

SQuAD 2.0 is by Rajpurkar, Jia and Liang (ACL 2018), released under CC BY-SA 4.0; the attribution
goes with the data (tests/data/corpora/squad-LICENSE.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "squad" / "squad2-eight-articles.json"


def convert(source: Path, corpus: Path, items_file: Path) -> tuple[int, int]:
    """Write the documents and the items; (documents, items)."""
    data = json.loads(source.read_text("utf-8"))["data"]
    corpus.mkdir(parents=True, exist_ok=True)
    items = []
    for article in data:
        title = article["title"].replace("_", " ")
        name = f"{article['title']}.txt"
        text, offsets = title + "\n\n", []
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            assert "\n\n" not in context, name
            offsets.append(len(text))
            text += context + "\n\n"
        text = text.rstrip("\n") + "\n"
        for at, paragraph in zip(offsets, article["paragraphs"]):
            for qa in paragraph["qas"]:
                item = {"id": f"squad-{qa['id']}", "kind": "unanswerable" if qa["is_impossible"] else "fact",
                        "turns": [" ".join(qa["question"].split())], "expect": None, "group": article["title"]}
                if not qa["is_impossible"]:
                    spans = sorted({(at + a["answer_start"], at + a["answer_start"] + len(a["text"]))
                                    for a in qa["answers"]})
                    for s, e in spans:
                        assert text[s:e] in {a["text"] for a in qa["answers"]}, (qa["id"], text[s:e])
                    item |= {"expect": sorted({a["text"] for a in qa["answers"]}), "source": name,
                             "spans": [list(s) for s in spans]}
                items.append(item)
        (corpus / name).write_text(text, "utf-8")
    items_file.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")
    return len(data), len(items)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    args = p.parse_args()
    docs, items = convert(args.source, ROOT / "tests" / "data" / "corpora" / "squad",
                          ROOT / "tests" / "data" / "sets" / "squad.jsonl")
    print(f"{docs} documents, {items} items")


if __name__ == "__main__":
    main()
