"""The answering method on real data with the real model: quotes, abstention, follow-ups, safety."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import pytest
from markdown_it import MarkdownIt

import qa
from qa.evaluate import evaluate, load_items

from conftest import DATA, DEV_SET, ROOT

GENERAL_CORPUS = DATA / "general"
SETS = DATA / "sets"


@pytest.fixture(scope="session")
def general_bot(tmp_path_factory):
    """Seven licences and READMEs (hard-wrapped, Markdown, long): a corpus the method was not written for."""
    folder = tmp_path_factory.mktemp("general") / "index"
    qa.build_index(corpus_dir=GENERAL_CORPUS, index_dir=folder, query_encoder=False)
    return qa.load(folder)


# The test halves of the question sets on organisation profiles, the product's own kind of corpus
# (tests/data/sets; each set written before it was first run; nothing was fitted on these halves).
# Floors one item under what the shipped model, ranker and decision measured (docs/EVALUATION.md,
# docs/data/eval-test.json), so that a real regression crosses them and one item's noise does not
# (ipu's test half: 40 answerable, 7 off-topic, 15 unanswerable items; profiles': 47, 9, 16). Replies
# quote one passage unless a second is nearly as likely, so hit@3 sits at hit@1. The other sets are
# measured by `make eval` (minutes with mpnet).
FLOORS = {
    #            hit@1  hit@3  declined<=  offtopic>=  unanswerable caught>=
    "ipu":       (0.77, 0.77, 0.05, 0.85, 0.73),
    "profiles":  (0.78, 0.78, 0.05, 0.77, 0.31),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_test_halves_hold_their_figures(name, tmp_path_factory):
    from qa.evaluate import load_suite

    corpus = load_suite(SETS)[name]
    folder = tmp_path_factory.mktemp(name) / "index"
    qa.build_index(corpus_dir=corpus, index_dir=folder, query_encoder=False)
    report = evaluate(qa.load(folder), load_items(SETS / f"{name}.jsonl"), corpus_dir=corpus, split="test")
    m = report.metrics()
    hit1, hit3, declined, offtopic, caught = FLOORS[name]
    assert m["verbatim"] == 1.0
    assert m["hit@1"] >= hit1 and m["hit@3"] >= hit3, (m, report.misses())
    assert m["declined"] <= declined, (m, report.misses())
    assert m["offtopic_declined"] >= offtopic and m["unanswerable_caught"] >= caught, (m, report.misses())
    assert m["median_fact_quote_chars"] <= 320


@pytest.mark.parametrize(
    "question, frame",
    [
        ("How often is the World e-Parliament Conference held?", "often"),
        ("How old is the IPU?", "old"),
        ("In which country is the IPU located?", "located"),
        ("What year was it founded?", "year"),
        ("How many hubs are there?", ""),
        ("Explain how filibusters work", ""),  # the word after "how" is the subject here
        ("How parliaments vote", ""),
    ],
)
def test_words_that_only_frame_the_question_are_not_required(question, frame):
    from qa.question import asked_kind

    assert frame in asked_kind(question) if frame else asked_kind(question) == ""


@pytest.mark.parametrize("question", ["Explain how filibusters work", "Describe how caucuses work",
                                      "How old is the oldest tree on Earth?"])
def test_a_how_question_about_something_else_is_not_answered(seed_bot, question):
    assert seed_bot.ask(question).outcome != "answered"


def test_how_many_prefers_the_number_that_counts_the_thing_asked(seed_bot):
    from qa.units import UnitFacts

    terms = seed_bot.sentence_lexicon.terms
    facts = UnitFacts.of("As of August 2020, eight regional and thematic parliamentary hubs are operating.", terms)
    assert "hub" in facts.counted_terms and facts.number
    facts = UnitFacts.of("Each hub works on remote working methods during COVID-19.", terms)
    assert facts.number and "hub" not in facts.counted_terms
    # a year is a time, not a count: "launched in 2009, trains … teachers" does not say how many
    facts = UnitFacts.of("The Teachers Online programme, launched in 2009, trains school teachers.", terms)
    assert not facts.number and not facts.counted_terms
    facts = UnitFacts.of("More than 35,000 teachers have been trained so far.", terms)
    assert facts.number and "teacher" in facts.counted_terms
    answer = seed_bot.ask("How many parliamentary hubs are there?")
    assert "eight regional and thematic parliamentary hubs" in answer.quotes[0].text


def test_a_hyphenated_compound_meets_its_solid_spelling(seed_bot):
    lexicon = seed_bot.sentence_lexicon
    assert set(lexicon.terms("Who coordinates the hubs?")) & set(lexicon.terms("Each hub is co-ordinated"))
    assert "coordin" in lexicon.terms("co-ordinated") and "co" in lexicon.terms("co-ordinated")


def test_a_name_the_corpus_never_mentions_is_not_paraphrased_away(general_bot):
    assert general_bot.ask("How fast does zstd compress on a Raspberry Pi?").outcome != "answered"
    # nor spelling-corrected into a corpus word ("Apple" is not a typo of "apply")
    assert "Apple" in general_bot.retriever.lexicon.correct("What does the GPL say about Apple devices?")


@pytest.mark.parametrize("question, bot", [
    ("Which Committee Works On Free Speech Online?", "seed"),  # Title Case: capitals say nothing
    ("Is Git licensed under GPL v2?", "general"),  # "v2" may be said as "version 2"
    ("Which compiler standard does man-db need, C 99?", "general"),
])
def test_capitals_and_small_numbers_are_not_taken_for_names(question, bot, seed_bot, general_bot):
    assert not {"seed": seed_bot, "general": general_bot}[bot].ask(question).abstained


def test_every_quote_is_verbatim_and_focused(seed_bot):
    for item in load_items(DEV_SET):
        answer = seed_bot.ask(item["turns"][0])
        assert 1 <= len(answer.quotes) <= 3 or answer.abstained
        for q in answer.quotes:
            assert seed_bot.data.documents[q.source].text[q.start : q.end] == q.text
            assert len(q.text) < 700  # a sentence or two, never a whole section
        assert [q.score for q in answer.quotes] == sorted((q.score for q in answer.quotes), reverse=True)


def test_answer_reads_like_an_answer(seed_bot):
    answer = seed_bot.ask("How many member parliaments does the IPU have?")
    assert not answer.abstained
    assert "According to *Inter\\-Parliamentary Union" in answer.text
    assert "> Today, the IPU comprises 179" in answer.text
    assert answer.quotes[0].citation == "Inter-Parliamentary Union"
    assert answer.query == "How many member parliaments does the IPU have?"


def test_section_appears_in_the_citation(seed_bot):
    answer = seed_bot.ask("How does the IPU support parliaments with the SDGs?")
    assert answer.quotes[0].section == "Digital policy issues › Sustainable development"
    assert "Sustainable development" in answer.text


def test_pronoun_sentence_is_quoted_with_the_one_before(seed_bot):
    """Which of the IPU's aims comes first is ranking (since sentences are also read without their title,
    "One of the IPU's objectives is to promote and protect human rights." does); this is about the quote."""
    answer = seed_bot.ask("What does the IPU promote?")
    quote = next(q.text for q in answer.quotes if "promotes democracy" in q.text)
    assert quote.startswith("Today, the IPU comprises")  # "It promotes…" alone would not say who


def test_declines_off_topic_and_offers_sections(seed_bot):
    for question in ["What is the tallest mountain in the world?", "How do I bake sourdough bread?"]:
        answer = seed_bot.ask(question)
        assert answer.outcome == "declined" and answer.abstained and answer.quotes == []
        assert "do not" in answer.text
        assert "Capacity development" in answer.text  # what it can answer instead


def test_a_question_none_of_whose_words_the_documents_use_is_declined(seed_bot):
    """Arabic, Russian and Chinese questions on an English corpus: the model reads them as noise that
    lands near some passage; not one of their words is in the documents, so nothing is quoted."""
    for question in ["ما هو الاتحاد البرلماني الدولي؟", "Что такое Межпарламентский союз?", "国际议会联盟是什么？"]:
        answer = seed_bot.ask(question)
        assert answer.outcome == "declined" and answer.quotes == [], question
        assert "none of the words of your question occur in them" in answer.text
    # one known word is enough to search ("union"); unknown words in the documents' letters are the
    # decision's to judge (an abbreviation: "HQ"); a follow-up's new words lean on the earlier turn
    assert "none of the words" not in seed_bot.ask("Was ist die Interparlamentarische Union?").text
    assert "none of the words" not in seed_bot.ask("Where is the HQ?").text
    history = [{"role": "user", "content": "What is the World e-Parliament Report?"},
               {"role": "assistant", "content": seed_bot.ask("What is the World e-Parliament Report?").text}]
    assert "none of the words" not in seed_bot.respond("And its periodicity?", history)[0].text


def test_an_uncovered_question_is_not_answered_as_if_it_were(seed_bot):
    """The profile never names the IPU's president: the closest passage may be shown, with a caveat."""
    answer = seed_bot.ask("Who is the President of the IPU?")
    assert answer.outcome in ("uncertain", "declined")
    if answer.outcome == "uncertain":
        assert answer.text.startswith("I am not sure my documents answer this") and answer.quotes
        assert not answer.abstained


@pytest.mark.parametrize("outcome", ["uncertain", "declined"])
def test_a_reply_that_is_not_sure_shows_one_passage_or_none(seed_bot, monkeypatch, outcome):
    """An uncertain reply is the one closest passage under a caveat; a decline of a question the documents
    are about names where they come nearest, and quotes nothing (three unrelated quotes read as noise)."""
    from qa.decision import Decision, SIGNALS

    # whatever the signals: p = 0.5, between the thresholds (uncertain) or under both (declined)
    cut = 0.4 if outcome == "uncertain" else 0.6
    monkeypatch.setattr(seed_bot, "decision", Decision((0.0,) * len(SIGNALS), 0.0, answer=0.9, uncertain=cut))
    answer = seed_bot.ask("Tell me about the IPU's work on gender equality")  # a broad question: several quotes
    assert answer.outcome == outcome
    if outcome == "uncertain":
        assert len(answer.quotes) == 1 and answer.text.startswith("I am not sure my documents answer this")
        assert answer.text.count("According to") == 1 and "Also, from" not in answer.text
    else:
        assert answer.quotes == [] and answer.text.startswith("My documents do not say that")
        assert "The nearest they come: *Inter\\-Parliamentary Union" in answer.text
        assert ">" not in answer.text  # no block quote


def test_outcome_and_abstained_agree():
    from qa.answer import Answer

    assert Answer("x", [], True).outcome == "declined"
    assert Answer("x").outcome == "answered" and not Answer("x", outcome="uncertain").abstained
    with pytest.raises(ValueError, match="outcome"):
        Answer("x", outcome="maybe")


def test_typo_is_corrected_against_the_corpus(seed_bot):
    answer = seed_bot.ask("ipu adress")
    assert answer.query == "ipu address"
    assert "Chem. du Pommier 5" in answer.quotes[0].text


def test_follow_up_uses_the_conversation(seed_bot):
    history = []
    for turn in ["What is the World e-Parliament Report?", "Who publishes it?"]:
        answer = seed_bot.ask(turn, history=history)
        history += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer.text}]
    assert answer.query == "Who publishes it?" and answer.about == "What is the World e-Parliament Report?"
    assert "publishes" in answer.quotes[0].text and "e-parliament report" in answer.quotes[0].text.lower()
    assert "following on from: What is the World e\\-Parliament Report?" in answer.text


def test_a_broad_question_gets_the_paragraph_and_a_fact_question_the_sentence(seed_bot):
    broad = seed_bot.ask("Tell me about the IPU's work on privacy.").quotes[0]
    text = seed_bot.document(broad.source).text
    assert "privacy" in broad.text.lower() and len(broad.text) <= 600
    # sentences of one paragraph: the whole of it, or as much as fits around the best sentence
    assert text[: broad.start].endswith("\n\n") or text[broad.start - 2 : broad.start] in (". ", ".\n")
    assert broad.text.count(". ") >= 1 and "\n\n" not in broad.text
    fact = seed_bot.ask("In which year did the IPU adopt its resolution on privacy?").quotes[0]
    assert "2015" in fact.text  # the sentence that answers, not its paragraph
    assert fact.text.count(". ") <= 1


def test_new_question_and_thanks_are_not_polluted_by_the_old_topic(seed_bot):
    history = [
        {"role": "user", "content": "What is the World e-Parliament Report?"},
        {"role": "assistant", "content": "…"},
    ]
    fresh = seed_bot.ask("How many member parliaments does the IPU have?", history=history)
    assert fresh.query == "How many member parliaments does the IPU have?"
    assert "179" in fresh.quotes[0].text
    thanks = seed_bot.ask("Thanks!", history=history)
    assert thanks.quotes == [] and thanks.query == "Thanks!"


def test_html_and_markdown_in_questions_and_corpus_cannot_inject(tmp_path):
    payloads = "<img src=x onerror=alert(1)> <script>alert(1)</script> [x](javascript:alert(1)) ![y](data:x)"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "payloads.md").write_text(
        "# Payload handbook\n\nThe payload handbook describes hostile markup such as " + payloads + ".\n\n"
        "The handbook was written in 2021 by the security team.\n",
        encoding="utf-8",
    )
    qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    bot = qa.load(tmp_path / "index")
    for question in ["What hostile markup does the payload handbook describe?", payloads]:
        answer = bot.ask(question)
        html = MarkdownIt("commonmark").render(answer.text)
        tags = set(re.findall(r"<([a-z]+)", html))
        assert tags <= {"p", "em", "blockquote", "sub"}, tags  # no img, script, a: only our own markup
    quoted = bot.ask("What hostile markup does the payload handbook describe?")
    assert "<img src=x onerror=alert(1)>" in quoted.quotes[0].text  # the quote itself stays verbatim


@pytest.mark.parametrize("question", ["", "   \n\t ", "\x00\x1b", "\u200b\u200f"])
def test_empty_questions_are_refused_clearly(seed_bot, question):
    with pytest.raises(qa.InvalidQuestionError, match="empty"):
        seed_bot.ask(question)


def test_huge_and_odd_questions(seed_bot):
    with pytest.raises(qa.InvalidQuestionError, match="limit is 2,000"):
        seed_bot.ask("why " * 1000)
    odd = seed_bot.ask("How many member\x00 parliaments\u202e does the IPU have \ud800 🏛️?")
    assert "179" in odd.quotes[0].text
    with pytest.raises(qa.InvalidQuestionError):
        seed_bot.ask(None)  # type: ignore[arg-type]


def test_retrieve_returns_passages_best_first(seed_bot):
    passages = seed_bot.retrieve("What is the address of the Inter-Parliamentary Union?", k=3)
    assert len(passages) == 3
    assert "Chem. du Pommier 5" in passages[0].text
    assert passages[0].score >= passages[1].score >= passages[2].score
    text = seed_bot.data.documents[passages[0].source].text
    assert text[passages[0].start : passages[0].end] == passages[0].text


def test_module_level_functions_use_the_default_index(seed_index, monkeypatch, tmp_path):
    (tmp_path / "index").symlink_to(seed_index, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(qa, "_default", None)
    assert "179" in qa.ask("How many member parliaments does the IPU have?").quotes[0].text
    assert qa.retrieve("address", k=1)[0].source == "inter-parliamentary-union.txt"


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, **kwargs)


def test_import_is_cheap():
    code = "import qa, sys; print(sorted(m for m in ('torch', 'sentence_transformers', 'gradio', 'faiss', 'numpy') if m in sys.modules))"
    assert _run("-c", code).stdout.strip() == "[]"


def test_query_path_needs_no_torch(seed_index):
    code = (
        "import sys, qa; bot = qa.load(sys.argv[1]); a = bot.ask('When was the IPU founded?');"
        "print(type(bot.encoder).__name__, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    assert _run("-c", code, str(seed_index)).stdout.split() == ["OnnxEmbedder", "False", "False"]


def test_cli_ask_json(seed_index):
    result = _run("-m", "qa", "ask", "When did the IPU launch the Centre for Innovation in Parliament?",
                  "--index", str(seed_index), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"text", "quotes", "abstained", "query", "outcome"}
    first = data["quotes"][0]
    assert "2018" in first["text"]
    doc = (ROOT / "corpus" / first["source"]).read_text("utf-8")
    assert doc[first["start"] : first["end"]] == first["text"]


def test_cli_eval_prints_metrics_and_errors_are_one_line(seed_index, tmp_path):
    result = _run("-m", "qa", "eval", str(DEV_SET), "--index", str(seed_index), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["overall"]["verbatim"] == 1.0 and "followup" in report["by_kind"]
    missing = _run("-m", "qa", "ask", "hello?", "--index", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "python -m qa build" in missing.stderr


def test_a_word_longer_than_any_in_the_corpus_is_not_spell_corrected(seed_bot, monkeypatch):
    """One edit cannot reach a corpus word from a 2,000-letter word; generating its ~100k variants took 0.4 s."""
    lexicon = seed_bot.retriever.lexicon
    monkeypatch.setattr(lexicon, "_nearest", lambda word: pytest.fail(f"looked up {word[:20]}…"))
    assert lexicon.correct("x" * 1999) == "x" * 1999
    assert seed_bot.ask("é" * 1999).abstained


def test_a_date_question_whose_best_quote_has_no_date_is_not_answered(general_bot, seed_bot):
    """"When was man-db first released?" used to quote the licence notice (its ZIP code "1301" read as a year)."""
    from qa.english import TIME as _TIME

    assert not _TIME.search("Boston, MA  02110-1301  USA") and _TIME.search("In 2015, the IPU adopted")
    assert _TIME.search("launched in mid-2019") and not _TIME.search("1,500 delegates")
    assert general_bot.ask("When was man-db first released?").outcome != "answered"
    answer = seed_bot.ask("When was the IPU founded?")
    assert not answer.abstained and "more than 130 years ago" in answer.quotes[0].text
    assert not general_bot.ask("When does the GPL terminate my rights?").abstained  # a condition, not a date
    from qa.answer import Quote
    from qa.question import dates_missing

    no_year = [Quote("It was founded by its members.", "a", "a", "", 0, 30, 1.0)]
    assert dates_missing("When was it founded?", no_year) and not dates_missing("Why was it founded?", no_year)


def test_a_key_value_line_whose_key_is_asked_is_the_answer(tmp_path):
    """In a Debian copyright file, a "Source:" line is the answer to a question that names its key."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "corpora" / "copyrights" / "gzip.txt", corpus)
    text = (corpus / "gzip.txt").read_text("utf-8")
    qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    source = qa.load(tmp_path / "index").ask("What is the Source of gzip?").quotes[0]
    assert source.text == "Source: https://ftp.gnu.org/gnu/gzip"
    assert text[source.start : source.end] == source.text


def test_a_lead_in_or_a_title_is_known_as_one():
    """A unit that only announces what follows (a lead-in ending with a colon, a title on a line of its
    own) holds no answer itself: the ranker weighs that (the "introduces" feature)."""
    from qa.units import introduces

    lead_in = "To send first a HEAD and then\n a GET:"
    assert introduces(lead_in + "\n\n    curl -I http://example.com --next http://example.com\n", 0, len(lead_in))
    # a title on a line of its own, numbered or not, introduces too (also in a CRLF file); a sentence,
    # a "Key: value" line, a list item, a command, or a short line inside a paragraph does not
    text = ("Intro.\n\n  A.5. Vote Counting\n\n    1. Each voter's ballot ranks the options.\n\nStatus: open\n\n"
            "It ended.\n\n- configuration files\n\ncurl -I http://example.com\n\nsome words here.\nShort line\nmore.\n")
    span = lambda s, t=text: (t.index(s), t.index(s) + len(s))
    assert introduces(text, *span("Vote Counting"))
    crlf = text.replace("\n", "\r\n")
    assert introduces(crlf, *span("Vote Counting", crlf))
    for unit in ("1. Each voter's ballot ranks the options.", "Status: open", "It ended.", "- configuration files",
                 "curl -I http://example.com", "Short line"):
        assert not introduces(text, *span(unit)), unit


def test_an_indented_block_in_a_quote_reads_as_its_text_not_as_escaped_code():
    """Indented four columns after a blank line, Markdown would make a code block, in which the
    escapes that keep corpus text inert would be shown as backslashes."""
    from qa.answer import Quote
    from qa.render import render

    text = ("To send first a HEAD and then\n a GET:\n\n    curl -I http://example.com --next http://example.com\n"
            "      --trace-time\n\n\tIf you haven't specified an editor, set $EDITOR <b>now</b>.")
    rendered = MarkdownIt("commonmark").render(render([Quote(text, "curl.md", "curl", "", 0, len(text), 1.0)]))
    assert set(re.findall(r"<([a-z]+)", rendered)) <= {"p", "em", "blockquote", "br"}  # no pre/code, no <b>
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "\\" not in shown
    assert "curl -I http://example.com --next http://example.com\n\u00a0\u00a0--trace-time" in shown
    assert "If you haven't specified an editor, set $EDITOR <b>now</b>." in shown


def test_the_same_work_in_two_files_is_one_answer_not_two_rivals(tmp_path):
    """A report published as PDF and as Word, indexed side by side: its sentence is quoted once, and the
    copy does not count as the runner-up (which would say the answer is a toss-up and mark it uncertain)."""
    profile = (ROOT / "corpus" / "inter-parliamentary-union.txt").read_text("utf-8")
    intro = profile[: profile.index("Digital Activities")]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ipu.txt").write_text(intro, "utf-8")
    (corpus / "ipu-copy.md").write_text(intro.replace(". ", ".\n", 3), "utf-8")  # other line breaks, same words
    qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    bot = qa.load(tmp_path / "index")
    answer, signals = bot.respond("How many member parliaments does the IPU have?")
    assert "179 national member parliaments" in answer.quotes[0].text
    words = [" ".join(q.text.split()).casefold() for q in answer.quotes]
    assert not any(a in b for i, a in enumerate(words) for j, b in enumerate(words) if i != j), words
    from qa.conversation import resolve

    candidates = bot.candidates(bot.query(resolve(answer.query), answer.query, bot.sentence_lexicon.terms(answer.query)))[0]
    first = candidates[0]
    copy = next(c for c in candidates if c.chunk != first.chunk and bot.data.chunks[c.chunk].source != bot.data.chunks[
        first.chunk].source and " ".join(bot.units.text(c.row).split()) == " ".join(bot.units.text(first.row).split()))
    assert signals["margin"] > first.score - copy.score + 0.01  # the copy, all but tied, is not the runner-up


def test_a_short_sentence_under_a_long_title_is_found_by_what_it_says(tmp_path):
    """Every sentence is embedded with its title and section, which names its document, but a long title
    ("… — Annual Report 2025") swamps a short sentence: it is also embedded alone, and the better reading
    counts. Before, this question was declined as about nothing in the documents."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "report.md").write_text(
        "# Boreal Alliance for Open Data — Annual Report 2025\n\n## Programmes\n\n### Data Literacy Fellowship\n\n"
        "The fellowship trains public servants from member cities in the use of open data. Twelve fellows "
        "started in September. Each fellow receives a monthly stipend of EUR 1,850 and is paired with a mentor "
        "from outside their own organisation.\n\n### Arctic Sensor Commons\n\n"
        "By the end of 2025 the network comprised 412 sensors measuring water temperature and ice thickness.\n",
        "utf-8")
    qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    bot = qa.load(tmp_path / "index")
    answer = bot.ask("How much is the monthly stipend for fellows?")
    assert answer.outcome != "declined" and "monthly stipend of EUR 1,850" in answer.quotes[0].text
    row = next(r for r in range(len(bot.units)) if "monthly stipend" in bot.units.text(r))
    question = bot.encode("How much is the monthly stipend for fellows?")
    assert bot.data.similarity(row, question) > bot.data.sentence_vectors[row] @ question + 0.2
