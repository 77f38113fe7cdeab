"""Reading a question's form: what kind of answer it asks for, and whether it asks about a topic.

`question_hints` turns the form into hints (a number for "how many", a time for "when"…): each is a
ranking feature. `asked_kind` names the words that only frame a question ("what year", "where is it
based"), which an answer need not repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from . import english

if TYPE_CHECKING:
    from .answer import Quote
    from .units import UnitFacts


@dataclass(frozen=True, slots=True)
class Query:
    """What is searched for one turn."""

    text: str  # the user's words, typos corrected
    vector: np.ndarray  # with the earlier question's added, for a follow-up
    terms: list[str]
    context_terms: list[str]  # the earlier question's, for a follow-up
    broad: bool  # asks about a topic ("tell me about…"): quote the paragraph, not a sentence
    context_vector: np.ndarray | None = None  # the earlier question's own, for a follow-up
    form: str = ""  # the question whose form says what kind of answer is wanted, when not text
    information: tuple[str, ...] = ()  # its terms less those that only frame it ("what year", "where based")
    names: tuple[tuple[str, ...], ...] = ()  # the terms of each of its names ("Raspberry Pi", "2019")


def asked_kind(question: str) -> str:
    """Words that name the kind of answer rather than its content: the noun after "what"/"which"
    ("what year" -> "year"), the word after "how" ("how often"), and the framing verbs of a question
    about a place ("where is it based?", "in which country is it located?"); "" when none."""
    words = [m.group(1) for m in (english.ASKS_KIND.search(question), english.ASKS_DEGREE.search(question)) if m]
    if english.ASKS_PLACE.search(question):
        words.append(english.PLACE_FRAME)
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class Hint:
    """A form of sentence that fits what the question asks: a ranking feature (ranking.HINTS)."""

    name: str  # ranking.HINTS
    test: Callable[[UnitFacts], bool]
    earliest: bool = False  # full weight only for the first passing sentence of a document


# The question forms that ask for a kind of sentence, first match wins: (form, hint name, the sentence's fact).
_FORMS = (
    (english.ASKS_NUMBER, "number", lambda f: f.number),
    (english.ASKS_FREQUENCY, "frequency", lambda f: f.frequency),
    (english.ASKS_TIME, "time", lambda f: f.time),
    (english.ASKS_PLACE, "place", lambda f: f.place),
)


def question_hints(question: str, terms_of: Callable[[str], list[str]]) -> list[Hint]:
    """What the question's form says a good answer looks like: a number for "how many", a frequency for
    "how often", a time for "when", a place for "where" (_FORMS), else the thing named after "which" or a
    definition for "what is X"; and a "Key: value" line whose key the question names. Each is a ranking
    feature, never a filter."""
    hints = []
    form = next(((name, test) for pattern, name, test in _FORMS if pattern.search(question)), None)
    if form:
        hints.append(Hint(*form))
        if form[0] == "number" and (counted := english.COUNTED.search(question)) and (
                thing := frozenset(terms_of(counted.group(1)))):
            # a number counting what is asked ("179 national member parliaments") beats any number
            hints.append(Hint("counted", lambda f: not f.counted_terms.isdisjoint(thing)))
    elif (kind := english.ASKS_KIND.search(question)) and (wanted := terms_of(kind.group(1))):
        hints.append(Hint("kind", lambda f: wanted[0] in f.terms))
    elif (subject := english.ASKS_DEFINITION.match(question)) and (named := terms_of(subject.group(1))):
        head = named[-1]
        # documents define a thing where they first introduce it
        hints.append(Hint("definition", lambda f: head in f.opening_terms and f.defines, earliest=True))
    asked = frozenset(terms_of(question))
    if asked:
        hints.append(Hint("key", lambda f: not asked.isdisjoint(f.field_terms)))
    return hints


def asks_broad(question: str, followup: bool = False) -> bool:
    """Whether the question asks about a topic rather than a fact."""
    return bool(english.ASKS_BROAD.search(question)) or (followup and bool(english.TOPIC_ONLY.search(question)))


def dates_missing(question: str, quotes: Sequence["Quote"]) -> bool:
    """True when question asks for a date and the first quote has no time in it: it cannot be the answer."""
    return bool(quotes) and bool(english.ASKS_DATE.search(question)) and not english.TIME.search(quotes[0].text)
