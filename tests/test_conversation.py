"""Follow-up resolution without a language model: pure functions, no index needed."""

import pytest

from qa.conversation import resolve, topic_of


def history(*questions):
    out = []
    for q in questions:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": "an answer"}]
    return out


@pytest.mark.parametrize(
    "earlier, question, query",
    [
        ("What is the World e-Parliament Report?", "Who publishes it?", "Who publishes the World e-Parliament Report?"),
        ("Tell me about the Committee on Democracy and Human Rights.", "What resolution is it linked to?",
         "What resolution is the Committee on Democracy and Human Rights linked to?"),
        ("Where is the IPU based?", "What is its website?", "What is the IPU's website?"),
        ("Where is the IPU based?", "And the address?", "the address of the IPU?"),
        ("When was the Centre for Innovation in Parliament launched?", "What about the World e-Parliament Conference?",
         "When was the World e-Parliament Conference launched?"),
        ("What does the IPU do for the SDGs?", "Tell me more about that.", "Tell me more about the SDGs."),
    ],
)
def test_follow_ups_become_standalone(earlier, question, query):
    resolved = resolve(question, history(earlier))
    assert resolved.kind == "followup"
    assert resolved.query == query


def test_chains_resolve_through_earlier_follow_ups():
    turns = history("What is the Centre for Innovation in Parliament?", "When was it launched?")
    assert resolve("What does it publish?", turns).query == "What does the Centre for Innovation in Parliament publish?"


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


def test_topic_prefers_the_longest_name():
    assert topic_of("Tell me about the Committee on Democracy and Human Rights.") == \
        "the Committee on Democracy and Human Rights"
    assert topic_of("What is the tallest mountain?") == "tallest mountain"


def test_a_follow_up_keeps_the_topic_it_carried():
    turns = history("What are the parliamentary hubs?", "Who coordinates them?")
    assert resolve("What did they work on during COVID-19?", turns).query == \
        "What did parliamentary hubs work on during COVID-19?"
    turns = history("What is the World e-Parliament Report?", "What about the World e-Parliament Conference?")
    assert resolve("How often is it held?", turns).query == "How often is the World e-Parliament Conference held?"


def test_a_follow_up_that_names_something_new_passes_that_on():
    turns = history("What is the IPU?", "Does it organise the World e-Parliament Conference?")
    assert resolve("When is it held?", turns).query == "When is the World e-Parliament Conference held?"


def test_a_bare_question_word_asks_the_earlier_question_again():
    turns = history("What resolution did the IPU adopt?")
    assert resolve("When?", turns).query == "When resolution did the IPU adopt?"
    # only after a question that opens with one; else it asks about the topic
    assert resolve("Why?", history("Does the IPU work on cybersecurity?")).query == "Why the IPU?"
    assert resolve("Please?", turns).query != "Please resolution did the IPU adopt?"


def test_each_earlier_turn_is_resolved_once(monkeypatch):
    """A long conversation costs one resolution per turn (it used to grow exponentially: minutes at 25 turns)."""
    import qa.conversation as conversation

    calls = []
    original = conversation._resolve
    monkeypatch.setattr(conversation, "_resolve", lambda *args: calls.append(args) or original(*args))
    turns = history(*[f"What is the World e-Parliament Report number {i}?" for i in range(30)])
    assert resolve("Who publishes it?", turns).query == "Who publishes the World e-Parliament Report?"
    assert len(calls) == 31
