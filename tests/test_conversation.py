"""Follow-up resolution without a language model: what a follow-up searches for, and (on the seed)
that it is answered with the quote it asks for."""

import pytest

from qa.conversation import resolve


def history(*questions):
    out = []
    for q in questions:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": "an answer"}]
    return out


# What a follow-up must search for: the earlier turn's topic and what the new question asks. How it is
# searched (one rewritten query, or the question beside its context) is the resolver's business.
FOLLOW_UPS = [
    ("What is the World e-Parliament Report?", "Who publishes it?", ["publishes", "World e-Parliament Report"]),
    ("Tell me about the Committee on Democracy and Human Rights.", "What resolution is it linked to?",
     ["resolution", "Committee on Democracy and Human Rights"]),
    ("Where is the IPU based?", "What is its website?", ["website", "IPU"]),
    ("Where is the IPU based?", "And the address?", ["address", "IPU"]),
    ("When was the Centre for Innovation in Parliament launched?", "What about the World e-Parliament Conference?",
     ["World e-Parliament Conference", "launched"]),
    ("What does the IPU do for the SDGs?", "Tell me more about that.", ["SDGs"]),
]


def _mentions(resolved, words: list[str]) -> None:
    """What is searched for the turn (the question and what it leans on) mentions each of words."""
    searched = f"{resolved.query} {resolved.context}"
    missing = [w for w in words if w.lower() not in searched.lower()]
    assert not missing, f"{searched!r} does not mention {missing}"


@pytest.mark.parametrize("earlier, question, words", FOLLOW_UPS)
def test_follow_ups_search_for_the_earlier_topic(earlier, question, words):
    resolved = resolve(question, history(earlier))
    assert resolved.kind == "followup"
    _mentions(resolved, words)


@pytest.mark.parametrize("earlier, question, quoted", [
    ("What is the World e-Parliament Report?", "Who publishes it?", ["publishes", "World E-Parliament Report"]),
    ("Where is the IPU based?", "What is its website?", ["https://ipu.org"]),
    ("Where is the IPU based?", "And the address?", ["Chem. du Pommier 5"]),
    ("What does the IPU do for the SDGs?", "Tell me more about that.", ["sustainable development goals (SDGs)"]),
    ("What resolution did the IPU adopt?", "When?", ["2015", "Resolution"]),
])
def test_a_follow_up_is_answered_with_the_quote_it_asks_for(seed_bot, earlier, question, quoted):
    answer = seed_bot.ask(question, history=history(earlier))
    assert not answer.abstained, answer.text
    first = answer.quotes[0].text.lower()
    assert all(w.lower() in first for w in quoted), (answer.query, answer.quotes[0].text)


def test_chains_resolve_through_earlier_follow_ups():
    turns = history("What is the Centre for Innovation in Parliament?", "When was it launched?")
    _mentions(resolve("What does it publish?", turns), ["publish", "Centre for Innovation in Parliament"])


@pytest.mark.parametrize("question", ["How many member parliaments does the IPU have?", "What is the capital of France?"])
def test_self_contained_questions_are_left_alone(question):
    resolved = resolve(question, history("What is the World e-Parliament Report?"))
    assert resolved.kind == "question" and resolved.query == question


@pytest.mark.parametrize("text", ["hi", "Hello!", "thanks", "Thank you very much.", "ok", "bye"])
def test_small_talk_is_never_searched(text):
    assert resolve(text, history("What is the World e-Parliament Report?")).kind == "smalltalk"


def test_without_history_nothing_is_resolved():
    assert resolve("Who publishes it?").query == "Who publishes it?"
    assert resolve("Who publishes it?", [{"role": "assistant", "content": "Hello"}]).kind == "question"


def test_a_follow_up_keeps_the_topic_it_carried():
    turns = history("What are the parliamentary hubs?", "Who coordinates them?")
    _mentions(resolve("What did they work on during COVID-19?", turns), ["parliamentary hubs", "COVID-19"])
    turns = history("What is the World e-Parliament Report?", "What about the World e-Parliament Conference?")
    _mentions(resolve("How often is it held?", turns), ["How often", "World e-Parliament Conference", "held"])


def test_a_follow_up_that_names_something_new_passes_that_on():
    turns = history("What is the IPU?", "Does it organise the World e-Parliament Conference?")
    _mentions(resolve("When is it held?", turns), ["When", "World e-Parliament Conference", "held"])


def test_a_bare_question_word_asks_the_earlier_question_again():
    turns = history("What resolution did the IPU adopt?")
    _mentions(resolve("When?", turns), ["When", "resolution", "IPU", "adopt"])
    _mentions(resolve("Why?", history("Does the IPU work on cybersecurity?")), ["Why", "IPU", "cybersecurity"])


def test_each_earlier_turn_is_resolved_once(monkeypatch):
    """A long conversation costs one resolution per turn (it used to grow exponentially: minutes at 25 turns)."""
    import qa.conversation as conversation

    calls = []
    original = conversation._resolve
    monkeypatch.setattr(conversation, "_resolve", lambda *args: calls.append(args) or original(*args))
    turns = history(*[f"What is the World e-Parliament Report number {i}?" for i in range(30)])
    _mentions(resolve("Who publishes it?", turns), ["publishes", "World e-Parliament Report"])
    assert len(calls) == 31
