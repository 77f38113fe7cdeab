"""Follow-up questions: which turns lean on the conversation, and what they lean on.

A turn is a follow-up when its form says it cannot stand alone: a pronoun that points
back ("Who publishes it?"), an ellipsis ("And the address?", "What about the hubs?",
"Tell me more about that.") or too few words of its own ("When?"). Nothing is spliced
into the user's words: a follow-up is searched as typed *beside* the earlier question
it leans on (its `context`), which the bot encodes and searches with it (bot.py: the two
query vectors are added, the context's terms count at a lower weight in BM25). So "it"
means whatever the earlier question was about, as the model reads it, rather than the
nearest noun, and the user is shown the earlier question in their own words ("following
on from: …"), never a rewritten one.

Anything else is a new question and is searched alone, so old topics never leak into it.
Greetings and thanks are recognised and never searched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from . import english

Message = dict  # {"role": "user" | "assistant", "content": str}

_TOKEN = re.compile(r"[\w’'-]+|[^\w\s]")
MAX_CONTEXT_CHARS = 400  # the earlier questions searched beside a follow-up; older ones fall away


@dataclass(frozen=True, slots=True)
class Resolved:
    query: str  # the user's question as typed: what is searched (beside the context, for a follow-up)
    kind: str  # "question" | "followup" | "smalltalk"
    context: str = ""  # for a follow-up: the earlier question(s) it leans on, searched with it
    about: str = ""  # for a follow-up: the question the thread started from, in the user's words


def is_smalltalk(text: str) -> bool:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(words) in english.SMALLTALK or (
        bool(words) and words[0] in {"hi", "hello", "hey", "thanks"} and len(words) <= 3
    )


def leans_back(question: str) -> bool:
    """Whether the question's form says it continues the conversation rather than standing alone."""
    words = [w.lower() for w in _TOKEN.findall(question)]
    content = [w for w in words if w.replace("-", "").replace("’", "").replace("'", "").isalnum() and w not in english.FUNCTION_WORDS]
    return (any(w in english.PRONOUNS for w in words) or bool(english.DEMONSTRATIVE_END.search(question))
            or is_ellipsis(question) or len(content) <= 1)


def is_ellipsis(question: str) -> bool:
    """"And the address?", "What about Windows?": a follow-up that asks the earlier question again of something else."""
    return bool(english.ELLIPSIS.match(question))


def resolve(question: str, history: Sequence[Message] | None = None) -> Resolved:
    """What question is, given the conversation so far, and what it leans on."""
    return _resolve(question, _previous(history or []))


def _resolve(question: str, last: Resolved | None) -> Resolved:
    if is_smalltalk(question):
        return Resolved(question, "smalltalk")
    if last is None or not leans_back(question):
        return Resolved(question, "question")
    # A follow-up of a follow-up leans on both ("What is the Centre?" -> "When was it launched?" -> "Who runs it?").
    context = f"{last.query} {last.context}" if last.kind == "followup" else last.query
    return Resolved(question, "followup", _trim(context), last.about or last.query)


def _trim(context: str) -> str:
    """The context cut to MAX_CONTEXT_CHARS at a word boundary, keeping the most recent words."""
    if len(context) <= MAX_CONTEXT_CHARS:
        return context
    return context[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0]


def _previous(history: Sequence[Message]) -> Resolved | None:
    """The last user turn of the history, resolved turn by turn; None if there is none.

    Each turn is resolved once, after the one before: re-resolving the history for every turn
    took time exponential in its length (0.6 s at 16 turns, minutes at 25).
    """
    last: Resolved | None = None
    for message in history:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            continue
        r = _resolve(" ".join(content.split()), last)
        if r.kind != "smalltalk":
            last = r
    return last
