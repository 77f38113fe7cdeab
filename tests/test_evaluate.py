"""The evaluator itself, on a stub bot whose answers are known: every metric must count what it says.

The quality tests lean on these numbers; a `contains` that always said yes would pass them all.
"""

from __future__ import annotations

import json

import pytest

from qa.answer import Answer, Quote
from qa.corpus import read_document
from qa.errors import QAError
from qa.evaluate import evaluate, format_report, load_items, load_suite, split_of

TEXT_A = "Alpha Org\n\nAlpha Org was founded in 1901. It has 42 members.\n\nIts office is in Oslo.\n"
TEXT_B = "Beta Org\n\nBeta Org was founded in 1950. It has 7 members.\n"


def quote(doc: str, text: str, piece: str, source: str) -> Quote:
    start = text.index(piece)
    return Quote(piece, source, source, "", start, start + len(piece), 1.0)


class StubBot:
    """Answers each question from a script; records the history it was given."""

    def __init__(self, corpus, script: dict[str, Answer]):
        self.docs = {p.name: read_document(p, p.name) for p in corpus.iterdir()}
        self.script, self.histories = script, {}

    def document(self, source):
        return self.docs[source]

    def ask(self, question, history=None):
        self.histories[question] = [dict(m) for m in history or []]
        return self.script[question]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT_A, "utf-8")
    (folder / "b.txt").write_text(TEXT_B, "utf-8")
    return folder


def q(piece: str, source: str = "a.txt") -> Quote:
    return quote(source, TEXT_A if source == "a.txt" else TEXT_B, piece, source)


def items_and_script():
    founded_a, members_a, office = "Alpha Org was founded in 1901.", "It has 42 members.", "Its office is in Oslo."
    founded_b = "Beta Org was founded in 1950."
    items = [
        # first quote right, right document
        {"id": "f1", "kind": "fact", "turns": ["When was Alpha founded?"], "expect": ["1901"], "source": "a.txt"},
        # answer only in the second quote: hit@3, not hit@1; first quote from the wrong document
        {"id": "f2", "kind": "paraphrase", "turns": ["How big is Alpha?"], "expect": ["42 members"], "source": "a.txt"},
        # declined although answerable
        {"id": "f3", "kind": "fact", "turns": ["Where is Alpha?"], "expect": ["Oslo"], "source": "a.txt"},
        # uncertain, but the right quote: a hit, and counted as uncertain
        {"id": "f4", "kind": "broad", "turns": ["Tell me about Alpha"], "expect": ["Oslo"]},
        # a follow-up: only the last turn is scored, and it is asked with the history
        {"id": "u1", "kind": "followup", "turns": ["Tell me about Beta", "When was it founded?"], "expect": ["1950"],
         "source": "b.txt"},
        # off-topic: uncertain is not enough, declined is right
        {"id": "o1", "kind": "offtopic", "turns": ["Best pizza?"], "expect": None},
        {"id": "o2", "kind": "offtopic", "turns": ["Who won the cup?"], "expect": None},
        # unanswerable: uncertain counts as caught, answered does not
        {"id": "n1", "kind": "unanswerable", "turns": ["Alpha's budget?"], "expect": None},
        {"id": "n2", "kind": "unanswerable", "turns": ["Beta's budget?"], "expect": None},
    ]
    script = {
        "When was Alpha founded?": Answer("", [q(founded_a)], query="q1"),
        "How big is Alpha?": Answer("", [q(founded_b, "b.txt"), q(members_a)], query="q2"),
        "Where is Alpha?": Answer("", [], True, query="q3"),
        "Tell me about Alpha": Answer("", [q(office)], outcome="uncertain"),
        "Tell me about Beta": Answer("BETA REPLY", [q(founded_b, "b.txt")]),
        "When was it founded?": Answer("", [q(founded_b, "b.txt")], query="When was Beta founded?"),
        "Best pizza?": Answer("", [], True),
        "Who won the cup?": Answer("", [q(office)], outcome="uncertain"),
        "Alpha's budget?": Answer("", [q(members_a)], outcome="uncertain"),
        "Beta's budget?": Answer("", [q(founded_b, "b.txt")]),
    }
    return items, script


def test_every_metric_counts_what_it_names(corpus):
    items, script = items_and_script()
    bot = StubBot(corpus, script)
    m = evaluate(bot, items, corpus_dir=corpus).metrics()
    assert m["items"] == 9
    assert m["hit@1"] == pytest.approx(3 / 5)  # f1, f4, u1
    assert m["hit@3"] == pytest.approx(4 / 5)  # and f2
    assert m["doc@1"] == pytest.approx(2 / 4)  # f1, u1 of f1, f2, f3, u1 (f4 names no document)
    assert m["declined"] == pytest.approx(1 / 5)
    assert m["uncertain"] == pytest.approx(1 / 5)
    assert m["offtopic_declined"] == pytest.approx(1 / 2)
    assert m["unanswerable_caught"] == pytest.approx(1 / 2)
    assert m["unanswerable_declined"] == 0.0
    assert m["answered"] == pytest.approx(3 / 5)  # f1, f2, u1
    assert m["answered_right"] == pytest.approx(2 / 4)  # f1, u1 of f1, f2, u1, n2
    assert m["uncertain_right"] == round(1 / 3, 3)  # f4 of f4, o2, n1
    assert m["verbatim"] == 1.0
    # the first quotes of the answerable items: f1 30 chars, f2 29, f4 22, u1 29
    assert m["median_first_quote_chars"] == 29
    # fact kinds only (not the broad f4): f1 30 chars, f2 29, u1 29
    assert m["median_fact_quote_chars"] == 29


def test_follow_ups_are_asked_with_the_bots_own_history(corpus):
    items, script = items_and_script()
    bot = StubBot(corpus, script)
    evaluate(bot, items)
    assert bot.histories["Tell me about Beta"] == []
    assert bot.histories["When was it founded?"] == [
        {"role": "user", "content": "Tell me about Beta"}, {"role": "assistant", "content": "BETA REPLY"}]


def test_misses_are_the_items_a_user_would_call_wrong(corpus):
    items, script = items_and_script()
    report = evaluate(StubBot(corpus, script), items)
    assert [i.id for i in report.misses()] == ["f2", "f3", "o2", "n2"]
    text = format_report(report)
    assert "| overall | 9 | 60% | 29 | 80% | 50% |" in text
    assert "f2 (paraphrase) 'q2' answered from b.txt" in text and "n2 (unanswerable)" in text


def test_a_quote_that_is_not_the_text_at_its_offsets_is_not_verbatim(corpus):
    items, script = items_and_script()
    wrong = Quote("Alpha Org was founded in 1902.", "a.txt", "a", "", 10, 40, 1.0)
    script["When was Alpha founded?"] = Answer("", [wrong])
    report = evaluate(StubBot(corpus, script), items)
    assert report.metrics()["verbatim"] == round(6 / 7, 3)  # of the 7 answers with quotes
    assert not report.items[0].verbatim


def test_verbatim_is_also_checked_against_the_file_on_disk(corpus):
    """An index that drifted from its corpus quotes text the user's file no longer says."""
    items, script = items_and_script()
    bot = StubBot(corpus, script)  # holds the documents as they were
    (corpus / "a.txt").write_text(TEXT_A.replace("1901", "1911"), "utf-8")
    assert evaluate(bot, items).metrics()["verbatim"] == 1.0
    drifted = evaluate(bot, items, corpus_dir=corpus)
    assert not drifted.items[0].verbatim and drifted.metrics()["verbatim"] < 1.0


def test_an_answer_span_must_be_covered_not_only_its_words(corpus):
    """SQuAD-style items give where the answer is: "1901" in another sentence is not the answer."""
    start = TEXT_A.index("1901")
    item = {"id": "s1", "kind": "fact", "turns": ["When was Alpha founded?"], "expect": ["1901"], "source": "a.txt",
            "spans": [[start, start + 4]]}
    elsewhere = TEXT_A + "The 1901 rules still apply.\n"
    (corpus / "a.txt").write_text(elsewhere, "utf-8")
    bot = StubBot(corpus, {})
    far = elsewhere.index("The 1901 rules")
    far_quote = Quote("The 1901 rules still apply.", "a.txt", "a", "", far, far + 27, 1.0)
    for quotes, hit1, hit3 in (([q("Alpha Org was founded in 1901.")], True, True), ([far_quote], False, False),
                               ([far_quote, q("Alpha Org was founded in 1901.")], False, True)):
        bot.script = {"When was Alpha founded?": Answer("", quotes)}
        result = evaluate(bot, [item]).items[0]
        assert (result.hit1, result.hit3) == (hit1, hit3)


def test_items_of_a_group_share_their_half(corpus):
    from qa.evaluate import item_split

    items = [{"id": f"g-{n}", "group": "Force", "kind": "fact", "turns": ["q"], "expect": ["x"]} for n in range(40)]
    assert {item_split(i) for i in items} == {split_of("Force")}
    assert {item_split({"id": f"g-{n}"}) for n in range(40)} == {"tune", "test"}


def test_halves_are_fixed_by_the_id_and_both_are_used():
    ids = [f"x-{n:03}" for n in range(200)]
    halves = [split_of(i) for i in ids]
    assert halves == [split_of(i) for i in ids]  # stable
    assert 70 < halves.count("test") < 130
    # pinned: a change of the hash would move items between halves after the thresholds were fitted
    assert [split_of(f"ipu-00{n}") for n in range(1, 5)] == ["tune", "tune", "tune", "test"]


def test_a_split_runs_only_its_items(corpus):
    items, script = items_and_script()
    report = evaluate(StubBot(corpus, script), items, split="test")
    assert report.items and {i.split for i in report.items} == {"test"}
    assert {i.id for i in report.items} == {i["id"] for i in items if split_of(i["id"]) == "test"}


@pytest.mark.parametrize("line, problem", [
    ('{"id": "a", "kind": "fact", "turns": ["q?"], "expect": ["x"]', "not JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"kind": "fact", "turns": ["q?"], "expect": ["x"]}', "needs a text 'id'"),
    ('{"id": "a", "kind": "fact", "turns": [], "expect": ["x"]}', "'turns' must be"),
    ('{"id": "a", "kind": "fact", "turns": ["q?"], "expect": "x"}', "'expect' must be"),
    ('{"id": "a", "kind": "fact", "turns": ["q?"], "expect": []}', "'expect' must be"),
])
def test_a_malformed_item_is_named_by_its_line(tmp_path, line, problem):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "ok", "kind": "fact", "turns": ["q?"], "expect": null}\n\n' + line + "\n", "utf-8")
    with pytest.raises(QAError, match=f"set.jsonl:3.*{problem}"):
        load_items(path)


def test_a_suite_maps_each_set_to_its_corpus(tmp_path, corpus):
    (tmp_path / "one.jsonl").write_text("", "utf-8")
    (tmp_path / "corpora.json").write_text(json.dumps({"one": "corpus"}), "utf-8")
    assert load_suite(tmp_path) == {"one": corpus.resolve()}
    (tmp_path / "corpora.json").write_text(json.dumps({"one": "corpus", "two": "corpus"}), "utf-8")
    with pytest.raises(QAError, match="two.jsonl does not exist"):
        load_suite(tmp_path)
