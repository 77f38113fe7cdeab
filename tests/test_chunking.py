"""The chunker: sections, sentences, the model's window, and offsets that are the truth.

The window is measured with the real model's tokenizer (qa.models.token_counter), on the
text the model is given (qa.chunking.embedding_text), for the seed and for tests/data/messy/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from qa.chunking import ChunkerSettings, SECTION_SEPARATOR, chunk_document, embedding_text, split_sentences
from qa.corpus import Document, content_hash, document_title, load_corpus
from qa.models import DEFAULT_MODEL, MAX_SEQ_LENGTH, token_counter

from conftest import DATA, SEED_CORPUS

MESSY = DATA / "messy"
WINDOW = ChunkerSettings().max_tokens

# Hypothesis caches things in ./.hypothesis, even without an example database, as soon as the
# tests are collected: keep them out of the work tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "qa-tests-hypothesis")


@pytest.fixture(scope="module")
def count_tokens():
    return token_counter(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def seed_doc():
    [doc] = load_corpus(SEED_CORPUS).documents
    return doc


@pytest.fixture(scope="module")
def messy():
    return {d.source: d for d in load_corpus(MESSY).documents}


def make_doc(text: str, source: str = "doc.md") -> Document:
    return Document(source, document_title(text, source), text, content_hash(text))


def check_chunks(doc: Document, chunks, count_tokens) -> None:
    """The invariants every chunking must keep."""
    assert chunks, doc.source
    previous_end = 0
    for c in chunks:
        assert (c.source, c.title) == (doc.source, doc.title)
        assert doc.text[c.start : c.end] == c.text  # offsets are the truth
        assert c.text.strip() and c.text == c.text.strip(), repr(c.text)
        assert c.start >= previous_end  # in document order, never overlapping
        previous_end = c.end
        assert c.sentences and c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
        last = c.start
        for s, e in c.sentences:
            assert last <= s < e <= c.end, (s, e, c)
            assert doc.text[s:e].strip() == doc.text[s:e], repr(doc.text[s:e])
            last = e
        tokens = count_tokens(embedding_text(c.title, c.section, c.text))
        assert tokens <= WINDOW <= MAX_SEQ_LENGTH, (tokens, c.text[:80])
    assert len({c.id for c in chunks}) == len(chunks)


def uncovered_lines(doc: Document, chunks) -> list[str]:
    """Lines holding a letter or digit that no chunk covers: the title, headings, fence marks."""
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.start : c.end] = b"\1" * (c.end - c.start)
    lines, pos = [], 0
    for line in doc.text.split("\n"):
        if any(ch.isalnum() and not covered[pos + i] for i, ch in enumerate(line)):
            lines.append(line.strip())
        pos += len(line) + 1
    return lines


# --- the seed ---------------------------------------------------------------------------------


def test_seed_chunks_keep_the_invariants(seed_doc, count_tokens):
    check_chunks(seed_doc, chunk_document(seed_doc, count_tokens=count_tokens), count_tokens)


def test_seed_sections(seed_doc, count_tokens):
    chunks = chunk_document(seed_doc, count_tokens=count_tokens)
    policy = "Digital policy issues" + SECTION_SEPARATOR
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        "",
        "Digital Activities",
        policy + "Capacity development",
        policy + "Sustainable development",
        policy + "Privacy and data protection",
        policy + "Freedom of expression",
    ]
    assert {c.title for c in chunks} == {"Inter-Parliamentary Union"}
    address = next(c for c in chunks if "Chem. du Pommier 5" in c.text)
    assert address.section == ""
    hubs = next(c for c in chunks if "eight regional and thematic parliamentary hubs" in c.text)
    assert hubs.section == policy + "Capacity development"


def test_seed_headings_are_not_text_and_a_heading_without_body_makes_no_chunk(seed_doc, count_tokens):
    chunks = chunk_document(seed_doc, count_tokens=count_tokens)
    # Everything but the title and the headings is in some chunk; the last heading has no body.
    assert uncovered_lines(seed_doc, chunks) == [
        "Inter-Parliamentary Union", "Digital Activities", "Digital policy issues", "Capacity development",
        "Sustainable development", "Privacy and data protection", "Freedom of expression", "Digital tools",
    ]
    assert not any("Digital tools" in c.section or "Digital tools" in c.text for c in chunks)


def test_seed_chunks_end_on_sentence_boundaries(seed_doc, count_tokens):
    text = seed_doc.text
    sentences = [text[s:e] for c in chunk_document(seed_doc, count_tokens=count_tokens) for s, e in c.sentences]
    assert "Address: Chem. du Pommier 5, 1218 Le Grand-Saconnex, Switzerland" in sentences
    assert any(s.startswith("Twice a year, the IPU convenes over 1,500 parliamentary delegates") and
               s.endswith("2030 Agenda for Sustainable Development.") for s in sentences)
    assert "Today, the IPU comprises 179 national member parliaments and 13 regional parliamentary bodies." \
        in sentences
    for c in chunk_document(seed_doc, count_tokens=count_tokens):
        after = text[c.end : c.end + 2]
        # a chunk ends a sentence, or a paragraph / line (a "Key: value" line, a last sentence without a period)
        assert c.text[-1] in ".!?”’)" or after == "" or after[0] in "\r\n", repr(c.text[-40:])


def test_chunk_ids_are_stable_and_come_from_content(seed_doc, count_tokens):
    first = chunk_document(seed_doc, count_tokens=count_tokens)
    again = chunk_document(make_doc(seed_doc.text, seed_doc.source), count_tokens=count_tokens)
    assert [c.id for c in first] == [c.id for c in again]
    edited = seed_doc.text.replace("Twice a year", "Two times a year")
    changed = chunk_document(make_doc(edited, seed_doc.source), count_tokens=count_tokens)
    assert len({c.id for c in first} - {c.id for c in changed}) == 1  # only the edited chunk has a new id


# --- sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Address: Chem. du Pommier 5, 1218 Le Grand-Saconnex. It is near Geneva.",
         ["Address: Chem. du Pommier 5, 1218 Le Grand-Saconnex.", "It is near Geneva."]),
        ("It convenes over 1,500 delegates. Twice a year.", ["It convenes over 1,500 delegates.", "Twice a year."]),
        ("Prices rose 3.5 % in 2021. Dr. Müller agreed. See e.g. The Annex.",
         ["Prices rose 3.5 % in 2021.", "Dr. Müller agreed.", "See e.g. The Annex."]),
        ("Built by J. R. Smith for the U.S. Army in Washington. Then sold.",
         ["Built by J. R. Smith for the U.S. Army in Washington.", "Then sold."]),
        ("1. Monday: closed", ["1. Monday: closed"]),
        ("She said: “Ça va?” Then she left.", ["She said: “Ça va?”", "Then she left."]),
        ("It ends here! Does it? Yes… Really.", ["It ends here!", "Does it?", "Yes…", "Really."]),
        ("a lower-case word after a period. does not start a sentence", ["a lower-case word after a period. does not "
                                                                           "start a sentence"]),
        ("咖啡馆在一九五二年开业。它在一九七八年搬到了老城区！", ["咖啡馆在一九五二年开业。", "它在一九七八年搬到了老城区！"]),
        ("  Padded.  \r\n  Also padded.  ", ["Padded.", "Also padded."]),
        ("No final punctuation", ["No final punctuation"]),
    ],
)
def test_split_sentences(text, expected):
    assert [text[s:e] for s, e in split_sentences(text)] == expected


# --- a messy corpus ------------------------------------------------------------------------------


def test_messy_chunks_keep_the_invariants(messy, count_tokens):
    assert len(messy) == 4
    for doc in messy.values():
        check_chunks(doc, chunk_document(doc, count_tokens=count_tokens), count_tokens)


def test_crlf_hard_wrapped_text(messy, count_tokens):
    doc = messy["wrapped-crlf.txt"]
    assert "\r\n" in doc.text
    chunks = chunk_document(doc, count_tokens=count_tokens)
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        "", "Instruments", "Public programme › Evening tours", "Public programme › School visits",
    ]
    sentences = [doc.text[s:e] for c in chunks for s, e in c.sentences]
    # a wrapped sentence is one sentence, its line break kept; abbreviations and initials do not split
    assert "It is run today by a small foundation with\r\nan annual budget of 2,400,000 francs." in sentences
    assert "Its\r\nmirror was re-coated in 2019 by a team from St. Gallen." in sentences
    assert "The observatory’s ‘old’ clock, made\r\nby Dr. A. Favre, keeps time to within a second a week." \
        in sentences
    assert uncovered_lines(doc, chunks) == [
        "Lakeside Observatory", "Instruments", "Public programme", "Evening tours", "School visits",
    ]


def test_markdown_headings_lists_setext_fences_and_unicode(messy, count_tokens):
    doc = messy["cafe-notes.md"]
    chunks = chunk_document(doc, count_tokens=count_tokens)
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        "", "Setext Heading", "Setext Heading › Sub Setext", "Setext Heading › Opening hours",
        "Setext Heading › 中文部分", "Setext Heading › 中文部分 › Emoji 🎈 section",
    ]
    sentences = [doc.text[s:e] for c in chunks for s, e in c.sentences]
    # numbered list items stay whole; a wrapped list item is one unit
    assert {"1. Monday: closed", "2. Tuesday to Friday: 7–18", "3. Saturday: 8–14"} <= set(sentences)
    assert "- Second item that is hard-wrapped\n  over two lines in the source." in sentences
    # CJK sentences split at 。; U+2028 and U+0085 inside a sentence are kept as they are
    assert "咖啡馆在一九五二年开业。" in sentences
    assert "The café seats 40 guests\u2028and opens at 7 a.m. on weekdays." in sentences
    assert "Balloons 🎈🎈🎈 were hung for the 70th anniversary\x85in 2022!" in sentences
    # a "#" line inside a code fence is code, not a section; the fence marks and the rule are not text
    assert not any("not a heading" in c.section for c in chunks)
    assert any("# not a heading: a comment inside a code fence" in c.text for c in chunks)
    assert "---" not in sentences and "```" not in "".join(sentences)
    assert uncovered_lines(doc, chunks) == [
        "# Café Übersicht — Field Notes", "Setext Heading", "Sub Setext", "## Opening hours", "```python",
        "## 中文部分", "### Emoji 🎈 section",
    ]


def test_plain_headings_nest_under_marked_ones_and_a_sentence_is_no_heading(count_tokens):
    text = (
        "Licence\n=======\n\n1. Definitions\n--------------\n\nWords mean what they say.\n\n"
        "2. Grants\n---------\n\n2.1. Scope\n\nYou may copy it.\n\n2.2. Date\n\nFrom today.\n\n"
        "## Copyright\n\nCopyright (C) 1994, 1995 Graeme W. Wilford. (Wilf.)\n\nCopyright (C) 1995 Carl Edman.\n"
    )
    doc = make_doc(text, "licence.md")
    chunks = chunk_document(doc, count_tokens=count_tokens)
    check_chunks(doc, chunks, count_tokens)
    assert [(c.section, c.text) for c in chunks] == [
        ("1. Definitions", "Words mean what they say."),
        ("2. Grants › 2.1. Scope", "You may copy it."),
        ("2. Grants › 2.2. Date", "From today."),
        ("Copyright", "Copyright (C) 1994, 1995 Graeme W. Wilford. (Wilf.)\n\nCopyright (C) 1995 Carl Edman."),
    ]


def test_long_paragraph_and_a_sentence_longer_than_the_window(messy, count_tokens):
    doc = messy["valley-chronicle.txt"]
    chunks = chunk_document(doc, count_tokens=count_tokens)
    long_paragraph = [c for c in chunks if c.section == ""]
    assert len(long_paragraph) >= 5
    assert all(len(c.text) <= ChunkerSettings().max_chars for c in long_paragraph)
    run_on = [c for c in chunks if c.section == "A sentence without an end"]
    assert len(run_on) >= 2  # cut at spaces to fit the window, nothing lost
    assert all(doc.text[c.start - 1].isspace() and doc.text[c.end].isspace() for c in run_on)
    assert uncovered_lines(doc, chunks) == ["Valley chronicle", "A sentence without an end", "Afterword"]


@pytest.mark.parametrize(
    "text",
    [
        "# Title\n\n## " + "runaway heading " * 300 + "\n\nThe body has one sentence. And a second one.\n",
        "# " + "an enormous title " * 200 + "\n\nThe body has one sentence.\n",
        "Unbroken\n\n" + "字" * 3000 + "\n",
        "Emoji\n\n" + "🎉" * 2000 + "\n",
        "Punctuation\n\n" + "!?" * 1500 + "\n",
        "Long word\n\n" + "https://example.org/" + "a1b2c3" * 800 + "\n",
    ],
    ids=["long-heading", "long-title", "cjk-without-spaces", "emoji", "punctuation", "long-word"],
)
def test_pathological_text_still_fits_the_window(text, count_tokens):
    doc = make_doc(text)
    chunks = chunk_document(doc, count_tokens=count_tokens)
    check_chunks(doc, chunks, count_tokens)
    # nothing of the body is lost: only the title or heading line is left out
    assert len(uncovered_lines(doc, chunks)) <= 2


# --- any text ------------------------------------------------------------------------------------

_PIECES = [
    "# Heading", "## Sub heading", "## " + "漫长的标题" * 80, "### ", "#", "Plain heading", "Setext", "=====",
    "-----", "---", "* * *",
    "```", "```python", "~~~", "Key: value", "Address: Chem. du Pommier 5, 1218 Le Grand-Saconnex",
    "- a list item", "  continued item", "1. First step", "2) Second step", "A sentence. Another one! A third?",
    "Dr. Smith met Mr. Jones at 3.30 p.m. on Jan. 5. They talked.", "“Quoted,” she said. ‘Yes.’ Then:",
    "日本語の文です。二番目の文。", "emoji 🎉🎈 text", "café naïve façade Ümlaut", "\u2028", "\x85", "\u00a0",
    "word " * 70, "x" * 700, "Supercalifragilistic" * 40, "<script>alert(1)</script>", "", " ", "\t",
]


@st.composite
def documents(draw):
    piece = st.sampled_from(_PIECES)
    pieces = draw(st.lists(st.one_of(piece, piece, piece, st.text(max_size=60)), min_size=4, max_size=40))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    gaps = draw(st.lists(st.sampled_from([newline, newline * 2, " "]), min_size=len(pieces), max_size=len(pieces)))
    return "".join(p + g for p, g in zip(pieces, gaps))


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(text=documents())
def test_any_text_keeps_the_invariants(text, count_tokens):
    if not text.strip():
        return  # the loader skips such a file
    doc = make_doc(text)
    chunks = chunk_document(doc, count_tokens=count_tokens)
    if chunks:
        check_chunks(doc, chunks, count_tokens)
    assert chunk_document(doc, count_tokens=count_tokens) == chunks  # deterministic


def test_quote_units_point_back_and_fit_the_window(seed_doc, messy, count_tokens):
    """A sentence opening with a pronoun is quoted (and embedded) with the one before, within the window."""
    from qa.chunking import quote_units, sentence_embedding_texts

    chunks = chunk_document(seed_doc, count_tokens=count_tokens)
    sentences = [s for c in chunks for s in c.sentences]
    units = quote_units(seed_doc.text, sentences)
    widened = [seed_doc.text[s:e] for (s, e), sentence in zip(units, sentences) if (s, e) != sentence]
    assert any(w.startswith("Today, the IPU comprises") and "It promotes democracy" in w for w in widened)
    assert all(s <= sentence[0] and e == sentence[1] for (s, e), sentence in zip(units, sentences))
    for doc in [seed_doc, *messy.values()]:
        doc_chunks = chunk_document(doc, count_tokens=count_tokens)
        texts = sentence_embedding_texts(doc_chunks, {doc.source: doc})
        assert all(count_tokens(t) <= MAX_SEQ_LENGTH for t in texts)
