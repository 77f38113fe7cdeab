"""Follow-up questions made standalone, without a language model.

A follow-up is recognised by its form: a pronoun that points back ("Who publishes
it?"), an ellipsis ("And the address?", "What about the hubs?") or a question too
short to stand alone ("When?"). Its topic comes from the previous user turn,
itself resolved first: the topic that turn carried if it was a follow-up, else
the longest capitalised name in it ("the World e-Parliament Report"), else its
content words. The pronoun is replaced by the topic; an ellipsis is attached to
it; a bare question word asks the previous question again ("When?" after "What
resolution did the IPU adopt?" searches "When resolution did the IPU adopt?").
Anything else is a new question and is searched as typed, so old topics never
leak into it. Greetings and thanks are recognised and never searched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

Message = dict  # {"role": "user" | "assistant", "content": str}

_TOKEN = re.compile(r"[\w’'-]+|[^\w\s]")
_PRONOUNS = {"it": "", "its": "'s", "they": "", "them": "", "their": "'s", "theirs": "'s",
             "he": "", "him": "", "his": "'s", "she": "", "her": "'s", "there": ""}
_QUESTION_WORDS = {
    "what", "who", "whom", "whose", "which", "when", "where", "why", "how", "is", "are", "was", "were",
    "do", "does", "did", "can", "could", "should", "would", "will", "tell", "me", "about", "give",
    "show", "explain", "describe", "list", "name", "please", "and", "also", "so", "then", "what's",
}
_CONNECTORS = {"of", "on", "and", "for", "in", "the", "de", "du", "la", "le", "&", "-"}
_STOP = _QUESTION_WORDS | _CONNECTORS | {
    "a", "an", "to", "at", "by", "with", "from", "as", "that", "this", "these", "those", "be", "been",
    "has", "have", "had", "much", "many", "any", "some", "its", "it", "they", "them", "their", "there",
    "based", "located", "known", "called", "mean", "means",
}
_WH_WORDS = {"what", "who", "whom", "whose", "which", "when", "where", "why", "how"}
_LEADING_QUESTION_WORD = re.compile(r"^\W*(?:" + "|".join(sorted(_WH_WORDS)) + r")\b\s*", re.I)
_DEMONSTRATIVE_END = re.compile(r"\b(?:this|that|these|those)(\W*)$", re.I)
_ELLIPSIS = re.compile(r"^\s*(?:and|also|what about|how about|and what about|and how about)\b\s*(.*)$", re.I)
_SMALLTALK = {
    "hi", "hello", "hey", "hiya", "good morning", "good afternoon", "good evening", "thanks", "thank you",
    "thank you very much", "thanks a lot", "many thanks", "thx", "ty", "cheers", "ok", "okay", "cool", "great",
    "nice", "perfect", "got it", "bye", "goodbye", "see you", "ok thanks", "okay thanks", "great thanks",
}


@dataclass(frozen=True, slots=True)
class Resolved:
    query: str  # what is searched
    kind: str  # "question" | "followup" | "smalltalk"
    topic: str = ""  # the topic carried over, for follow-ups


def is_smalltalk(text: str) -> bool:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(words) in _SMALLTALK or (
        bool(words) and words[0] in {"hi", "hello", "hey", "thanks"} and len(words) <= 3
    )


def topic_of(question: str) -> str:
    """The thing a question is about: its longest capitalised name, else its content words."""
    tokens = _TOKEN.findall(question)
    best: list[str] = []
    run: list[str] = []
    for i, tok in enumerate(tokens + ["."]):
        named = any(ch.isupper() for ch in tok) and not (i == 0 or tok.lower() in _QUESTION_WORDS)
        if named or (run and tok.lower() in _CONNECTORS):
            run.append(tok)
            continue
        while run and run[-1].lower() in _CONNECTORS:
            run.pop()
        if len(" ".join(run)) > len(" ".join(best)):
            best = run
        run = []
    if best:
        start = tokens.index(best[0]) if best[0] in tokens else -1
        article = "the " if start > 0 and tokens[start - 1].lower() == "the" else ""
        return article + _join(best)
    content = [t for t in tokens if t.isalnum() or "-" in t]
    content = [t for t in content if t.lower() not in _STOP]
    return " ".join(content)


def _join(tokens: Sequence[str]) -> str:
    return re.sub(r"\s+([-’'])\s*|\s*([-])\s+", lambda m: m.group(0).strip(), " ".join(tokens))


def resolve(question: str, history: Sequence[Message] | None = None) -> Resolved:
    """The standalone query for question, given the conversation so far."""
    return _resolve(question, _previous(history or []))


def _resolve(question: str, last: Resolved | None) -> Resolved:
    """The standalone query for question, after the last question (already resolved) if any."""
    if is_smalltalk(question):
        return Resolved(question, "smalltalk")
    if last is None:
        return Resolved(question, "question")
    # A follow-up keeps the topic it carried ("Who coordinates them?" is still about the hubs).
    previous, topic = last.query, last.topic or topic_of(last.query)
    if not topic:
        return Resolved(question, "question")

    words = [w.lower() for w in _TOKEN.findall(question)]
    if any(w in _PRONOUNS for w in words):
        return Resolved(_replace_pronouns(question, topic), "followup", _carried(question, topic))
    if _DEMONSTRATIVE_END.search(question):  # "Tell me more about that."
        return Resolved(_DEMONSTRATIVE_END.sub(lambda m: topic + m.group(1), question), "followup",
                        _carried(question, topic))
    ellipsis = _ELLIPSIS.match(question)
    content = [w for w in words if w.isalnum() and w not in _STOP]
    if ellipsis or len(content) <= 1:
        rest = (ellipsis.group(1) if ellipsis else question).strip(" ?!.")
        own_topic = topic_of(rest) if rest else ""
        if own_topic and any(ch.isupper() for ch in own_topic):
            # "What about the Pacific hub?": the earlier question, asked of a new name
            return Resolved(previous.replace(topic, own_topic) if topic in previous else rest, "followup",
                            own_topic)
        if not rest:
            return Resolved(previous, "followup", topic)
        if rest.lower() in _WH_WORDS and _LEADING_QUESTION_WORD.match(previous):
            # "When?" after "What resolution did the IPU adopt?": the earlier question, asked with "when"
            return Resolved(f"{rest} {_LEADING_QUESTION_WORD.sub('', previous)}", "followup", topic)
        joiner = " " if rest.split()[0].lower() in _QUESTION_WORDS else " of "
        return Resolved(f"{rest}{joiner}{topic}?", "followup", topic)
    return Resolved(question, "question")


def _carried(question: str, topic: str) -> str:
    """The topic a follow-up passes on: a longer name it brings in ("Does it organise the World
    e-Parliament Conference?"), else the one it took over."""
    named = topic_of(question)
    return named if any(c.isupper() for c in named) and len(named) > len(topic) else topic


def _replace_pronouns(question: str, topic: str) -> str:
    def swap(m: re.Match) -> str:
        suffix = _PRONOUNS[m.group(0).lower()]
        return topic + suffix

    pattern = r"\b(?:" + "|".join(sorted(_PRONOUNS, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, swap, question, count=1, flags=re.I)


def _previous(history: Sequence[Message]) -> Resolved | None:
    """The last user turn of the history, made standalone turn by turn; None if there is none.

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
        r = _resolve(content, last)
        if r.kind != "smalltalk":
            last = r
    return last
