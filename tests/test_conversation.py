"""Follow-ups: which turns lean on the conversation (pure functions), and what the bot then finds
(real seed index, real model)."""

import pytest

from qa.conversation import MAX_CONTEXT_CHARS, leans_back, resolve


def history(*questions, answer="an answer"):
    out = []
    for q in questions:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
    return out


@pytest.mark.parametrize("question", [
    "Who publishes it?", "What is its website?", "And the address?", "What about the World e-Parliament Conference?",
    "Tell me more about that.", "When?", "When were they set up?", "What majority is needed to replace one?",
])
def test_follow_ups_lean_on_the_earlier_question_without_rewriting_it(question):
    earlier = "What is the World e-Parliament Report?"
    resolved = resolve(question, history(earlier))
    assert resolved.kind == "followup"
    assert resolved.query == question  # searched as typed: nothing spliced into the user's words
    assert resolved.context == earlier and resolved.about == earlier


def test_chains_carry_the_thread_and_its_first_question():
    turns = history("What is the Centre for Innovation in Parliament?", "When was it launched?")
    resolved = resolve("What does it publish?", turns)
    assert resolved.context == "When was it launched? What is the Centre for Innovation in Parliament?"
    assert resolved.about == "What is the Centre for Innovation in Parliament?"


def test_a_long_thread_keeps_only_its_recent_words():
    turns = history(*(["Tell me about the Committee on Democracy and Human Rights of the IPU please"]
                      + ["And what about it?"] * 30))
    resolved = resolve("When was it created?", turns)
    assert len(resolved.context) <= MAX_CONTEXT_CHARS and resolved.context.startswith("And what about it?")


@pytest.mark.parametrize("question", ["How many member parliaments does the IPU have?", "What is the capital of France?",
                                      "Where is the Inter-Parliamentary Union based?"])
def test_self_contained_questions_are_left_alone(question):
    assert not leans_back(question)
    resolved = resolve(question, history("What is the World e-Parliament Report?"))
    assert resolved.kind == "question" and resolved.query == question and not resolved.context


@pytest.mark.parametrize("text", ["hi", "Hello!", "thanks", "Thank you very much.", "ok", "bye"])
def test_small_talk_is_never_searched(text):
    assert resolve(text, history("What is the World e-Parliament Report?")).kind == "smalltalk"


def test_without_history_nothing_is_resolved():
    assert resolve("Who publishes it?") .kind == "question"
    assert resolve("Who publishes it?", [{"role": "assistant", "content": "Hello"}]).kind == "question"


def test_small_talk_in_the_history_is_skipped():
    turns = history("What is the World e-Parliament Report?", "thanks")
    assert resolve("Who publishes it?", turns).context == "What is the World e-Parliament Report?"


# On the seed, with the real model: "it" / "they" mean what the conversation is about.
@pytest.mark.parametrize("earlier, question, expected", [
    ("What is the Centre for Innovation in Parliament?", "When was it launched?", "2018"),
    ("What are the parliamentary hubs?", "Who coordinates them?", "co-ordinated by a national parliament"),
    ("What are the parliamentary hubs?", "Since when have they been operating?", "August 2020"),
    ("Where is the IPU based?", "And its website?", "ipu.org"),
    ("Tell me about the IPU's work on privacy.", "Which resolution is it based on?", "2015"),
])
def test_follow_ups_find_what_the_conversation_is_about(seed_bot, earlier, question, expected):
    first = seed_bot.ask(earlier)
    answer = seed_bot.ask(question, history=[{"role": "user", "content": earlier},
                                             {"role": "assistant", "content": first.text}])
    assert answer.outcome != "declined"
    assert expected in answer.quotes[0].text
    assert answer.about == earlier
    # the user sees which question it was taken to follow, in their own words, never a spliced query
    assert "following on from:" in answer.text and "searched for" not in answer.text


def test_a_new_question_after_a_thread_is_searched_alone(seed_bot):
    turns = history("What are the parliamentary hubs?", "Who coordinates them?")
    answer = seed_bot.ask("What is the address of the Inter-Parliamentary Union?", history=turns)
    assert "Pommier" in answer.quotes[0].text and answer.about == "" and "following on from" not in answer.text


def test_and_x_asks_the_earlier_question_of_x(tmp_path):
    """On look-alike profiles, "And the …'s?" after "What is the website of …?" wants the other
    organisation's website line: the ellipsis takes the earlier question's form, not only its words."""
    import shutil

    import qa
    from conftest import DATA

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("baltic-centre-for-e-governance", "mekong-digital-regulators-network",
                 "global-alliance-of-health-data-registries"):
        shutil.copy(DATA / "corpora" / "profiles" / f"{name}.txt", corpus)
    qa.build_index(corpus_dir=corpus, index_dir=tmp_path / "index", query_encoder=False)
    bot = qa.load(tmp_path / "index")
    for earlier, question, expected in [
        ("What is the website of the Baltic Centre for e-Governance?",
         "And the Mekong Digital Regulators Network's?", "Website: https://www.mdrn.example"),
        ("When was the Mekong Digital Regulators Network established?",
         "And the Global Alliance of Health Data Registries?", "Established: 2006"),
    ]:
        answer = bot.ask(question, history=history(earlier))
        assert answer.quotes[0].text == expected, (question, answer.quotes[0].text)
        assert answer.about == earlier
