"""Sentence units: the span quoted for each sentence row, and the facts about its form that ranking and quoting read.

A unit is a sentence, or a sentence with the one before it when it opens by pointing back
(chunking.quote_units). Its facts (a number, a time, a "Key: value" line, a title…) are worked out on
first use and kept: a warm bot does not re-stem its candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import english
from .chunking import embedding_text, is_line_unit
from .index import IndexData

_TOKEN = re.compile(r"[^\W_]+(?:[.,'’-][^\W_]+)*")
COUNT_WINDOW = 6  # words after a number that it may be counting ("eight regional and thematic parliamentary hubs")


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What the hints ask of one quote unit, worked out once per unit (stemming and regexes cost more
    than the rest of an answer if redone for every candidate of every question)."""

    terms: frozenset[str]
    opening_terms: frozenset[str]  # of its first 80 characters, where a definition names its subject
    field_terms: frozenset[str]  # of the key when it is a "Key: value" line
    field_line: bool  # a "Key: value" line of its own ("Established: 2013"): a fact, never a topic's paragraph
    counted_terms: frozenset[str]  # of the few words after each number: what it may count
    number: bool  # holds a number that is not a year
    frequency: bool
    time: bool
    place: bool
    defines: bool
    bigrams: frozenset[tuple[str, str]] = frozenset()  # pairs of terms next to each other
    introduces: bool = False  # a lead-in or a title (introduces): names a topic, holds no answer
    opens_paragraph: bool = False
    chars: int = 0

    @classmethod
    def of(cls, text: str, terms_of: Callable[[str], list[str]], introduces: bool = False,
           opens_paragraph: bool = False) -> "UnitFacts":
        key = english.FIELD.match(text)
        words = _TOKEN.findall(text)
        counts = [i for i, w in enumerate(words) if english.NUMBER.search(w) and not english.YEAR.fullmatch(w)]
        counted = [t for i in counts
                   for t in terms_of(" ".join(words[i + 1 : i + 1 + COUNT_WINDOW]))]
        return cls(
            frozenset(terms := terms_of(text)), frozenset(terms_of(text[:80])),
            frozenset(terms_of(key.group(1))) if key else frozenset(), bool(key) and "\n" not in text.strip(),
            frozenset(counted),
            bool(counts), bool(english.FREQUENCY.search(text)), bool(english.TIME.search(text)),
            bool(english.PLACE.search(text)),
            bool(english.DEFINES.search(text)),
            frozenset(zip(terms, terms[1:])), introduces, opens_paragraph, len(text),
        )


class Units:
    """The quote unit of every sentence row (`chunking.unit_spans`): its span, its text, its facts.

    Facts are worked out on first use and kept: a warm bot does not re-stem its candidates.
    """

    def __init__(self, data: IndexData, spans: list[tuple[int, int]], terms_of: Callable[[str], list[str]]):
        self.spans, self._data, self._terms_of = spans, data, terms_of
        self._facts: list[UnitFacts | None] = [None] * len(spans)
        self._context_terms: list[frozenset[str] | None] = [None] * len(spans)

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, row: int) -> tuple[int, int]:
        return self.spans[row]

    def text(self, row: int) -> str:
        s, e = self.spans[row]
        return self._data.documents[self._data.chunks[int(self._data.sentence_chunk[row])].source].text[s:e]

    def context(self, row: int) -> str:
        """The unit as the model and the sentence lexicon see it: with its title and section."""
        chunk = self._data.chunks[int(self._data.sentence_chunk[row])]
        return embedding_text(chunk.title, chunk.section, self.text(row))

    def facts(self, row: int) -> UnitFacts:
        found = self._facts[row]
        if found is None:
            s, e = self.spans[row]
            text = self._data.documents[self._data.chunks[int(self._data.sentence_chunk[row])].source].text
            found = self._facts[row] = UnitFacts.of(text[s:e], self._terms_of, introduces(text, s, e),
                                                    _opens_paragraph(text, s))
        return found

    def context_terms(self, row: int) -> frozenset[str]:
        """The terms of the unit as the sentence lexicon saw it (with its title and section)."""
        found = self._context_terms[row]
        if found is None:
            found = self._context_terms[row] = frozenset(self._terms_of(self.context(row)))
        return found


def _opens_paragraph(text: str, start: int) -> bool:
    """Whether only blank space stands between start and the blank line (or the text's start) before it."""
    line = text.rfind("\n", 0, start)
    if text[line + 1 : start].strip():
        return False
    before = text[max(0, line - 200) : line + 1] if line >= 0 else ""
    return line < 0 or not before.strip() or bool(re.search(r"\n[ \t\r\u00a0]*\n[ \t\r\u00a0]*\Z", before))


def introduces(text: str, start: int, end: int) -> bool:
    """Whether the unit text[start:end] only announces what follows it: a lead-in ending with a colon
    ("To send first a HEAD and then a GET:") or a title. Quoted alone it names the answer's topic
    but holds no answer."""
    return text[start:end].rstrip().endswith(":") or is_title_line(text, start, end)


def is_title_line(text: str, start: int, end: int) -> bool:
    """Whether the unit text[start:end] is a title: a short line of its own (after a blank line or
    before one, maybe after an enumerator or "#": "A.5. Vote Counting") without a sentence's final
    stop, not a list item, a "Key: value" field, a command or a URL (which start in lower case or hold
    "://"). The chunker makes most titles section headings; these are the ones it could not."""
    unit = text[start:end]
    if (not unit or len(unit) > 80 or len(unit.split()) > 12 or "\n" in unit or unit[0].islower() or "://" in unit
            or _CLOSED.search(unit) or english.FIELD.match(unit) or is_line_unit(unit)):
        return False
    before, after = _LINE_BEFORE.search(text, max(0, start - 40), start), _LINE_AFTER.match(text, end)
    return bool(before and after and (before.group(1) is not None or after.group(1) is not None))


_CLOSED = re.compile(r"[.!?…;,:。！？][\"'’”)\]]*$")  # a sentence's final stop, maybe inside closing quotes
# The unit starts its line, maybe after an enumerator or a Markdown "#"; group 1: after a blank line.
_LINE_BEFORE = re.compile(r"(?:\A|\n)([ \t\r]*\n|\A)?[ \t]*(?:#{1,6}|(?:\w{1,3}\.)*\w{1,3}[.)])?[ \t]*\Z")
_LINE_AFTER = re.compile(r"[ \t\r]*(?:\n|\Z)([ \t\r]*\n)?")  # the unit ends its line; group 1: before a blank one
