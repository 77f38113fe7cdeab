"""The chat UI in a real browser: Debian's Chromium driven by Playwright, against app.py in a subprocess.

Never `playwright install`: it downloads browsers. Screenshots go to a temporary folder; set
QA_SCREENSHOT_DIR to also write the README's screenshot.png there (e.g. QA_SCREENSHOT_DIR=docs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import copy_index
from served_app import BOT, USER, ChatPage, client as make_client, serve

pytestmark = pytest.mark.browser

HOSTILE = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "[x](javascript:alert(1))"]

PAYLOAD_DOC = """\
# Zephyr <img src=x onerror=alert(1)> Handbook

## Markup <script>alert(2)</script> rules

The Zephyr handbook warns that the snippet <img src=x onerror=alert(3)> must be shown as plain text. \
Its authors also keep the tag <script>alert(4)</script> as an example of what never runs. \
A link written as [click me](javascript:alert(5)) must never become a link. \
Template markers like ${alert(6)} and {{constructor}} stay literal.
"""


@pytest.fixture(scope="module")
def app_url(seed_app) -> str:
    return seed_app.url


@pytest.fixture(scope="module")
def payload_app(seed_index, seed_corpus, tmp_path_factory):
    """The seed plus a document full of markup, on a copy of the seed index that is now stale."""
    folder = tmp_path_factory.mktemp("payload")
    corpus, index = folder / "corpus", folder / "index"
    shutil.copytree(seed_corpus, corpus)
    (corpus / "zephyr-handbook.md").write_text(PAYLOAD_DOC, "utf-8")
    copy_index(seed_index, index)
    with serve("--index", str(index), "--corpus", str(corpus), workdir=folder) as app:
        yield app


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Page(ChatPage):
    """A chat tab that can also check nothing on it ran or was injected."""

    def assert_inert(self) -> None:
        """No dialog, no javascript: link, no element injected from text."""
        self.page.wait_for_timeout(300)  # give an onerror handler the chance to fire
        assert self.dialogs == []
        assert self.page.locator("a[href^='javascript:' i]").count() == 0
        assert self.page.locator("img[src='x'], script:has-text('alert(')").count() == 0


@pytest.fixture
def page(browser, app_url):
    p = Page(browser, app_url)
    yield p
    p.page.close()


def test_answer_shows_quote_citation_and_highlighted_context(page, shots):
    from playwright.sync_api import expect

    assert page.page.title() == "Inter-Parliamentary Union"
    expect(page.page.locator("h1")).to_have_text("Inter-Parliamentary Union")
    expect(page.page.get_by_text("I answer only by quoting 1 document (", exact=False)).to_be_visible()
    reply = page.ask("How many member parliaments does the IPU have?")
    expect(reply.locator("blockquote")).to_contain_text("179 national member parliaments")
    expect(reply).to_contain_text("According to Inter-Parliamentary Union")
    mark = page.page.locator("#qa-context mark")
    expect(mark).to_contain_text("179 national member parliaments")
    expect(page.page.locator("#qa-context figcaption")).to_contain_text("Inter-Parliamentary Union")
    # the mark sits inside its paragraph: text before and after it is shown too
    expect(page.page.locator("#qa-context blockquote")).to_contain_text("global organisation of national parliaments")
    page.page.screenshot(path=shots / "answer.png", full_page=True)
    page.assert_inert()


def test_follow_up_says_which_question_it_follows(page, shots):
    from playwright.sync_api import expect

    page.ask("What is the World e-Parliament Report?")
    reply = page.ask("Who publishes it?")
    expect(reply).to_contain_text("following on from: What is the World e-Parliament Report?")
    expect(reply.locator("blockquote").first).to_contain_text("publishes")
    expect(page.page.locator("#qa-context mark").first).to_be_visible()
    page.page.screenshot(path=shots / "follow-up.png", full_page=True)
    if os.environ.get("QA_SCREENSHOT_DIR"):
        target = Path(os.environ["QA_SCREENSHOT_DIR"]) / "screenshot.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=target)


def test_clicking_an_example_asks_it(page):
    from playwright.sync_api import expect

    example = page.page.locator("#qa-prompts button.gallery-item").first
    expect(example).to_have_text("What is the Inter-Parliamentary Union?")
    example.click()
    reply = page.wait_for_reply(0)
    expect(page.page.locator(USER).first).to_have_text("What is the Inter-Parliamentary Union?")
    expect(reply.locator("blockquote").first).to_contain_text("Inter-Parliamentary Union")


def test_a_question_the_profile_does_not_answer_shows_one_passage_under_a_caveat_or_none(page):
    """The profile never names the IPU's president: the reply is the one closest passage under the caveat,
    or a plain decline; never three unrelated quotes."""
    from playwright.sync_api import expect

    reply = page.ask("Who is the President of the IPU?")
    text = reply.inner_text()
    assert text.startswith(("I am not sure my documents answer this", "My documents do not")), text
    quotes = reply.locator("blockquote")
    if text.startswith("I am not sure"):
        expect(quotes).to_have_count(1)
        expect(reply).not_to_contain_text("Also, from")
    else:
        expect(quotes).to_have_count(0)


def test_off_topic_question_abstains_and_offers_clickable_suggestions(page):
    from playwright.sync_api import expect

    reply = page.ask("What is the tallest mountain in the world?")
    expect(reply).to_contain_text("My documents do not")
    expect(reply).to_contain_text("You could ask about")
    expect(page.page.locator("#qa-context")).to_contain_text("quoted nothing")
    prompts = page.page.locator("#qa-prompts")
    expect(prompts).to_contain_text("I can answer questions like these")
    suggestion = prompts.locator("button.gallery-item").first
    question = suggestion.inner_text().strip()
    suggestion.click()
    answer = page.wait_for_reply(1)
    expect(page.page.locator(USER).nth(1)).to_have_text(question)
    expect(answer.locator("blockquote").first).to_be_visible()
    expect(prompts).to_contain_text("Examples")


def test_hostile_questions_are_shown_as_text(page):
    from playwright.sync_api import expect

    for i, payload in enumerate(HOSTILE):
        page.ask(payload)
        expect(page.page.locator(USER).nth(i)).to_have_text(payload)
    page.assert_inert()


def test_markup_planted_in_the_corpus_is_shown_as_text(browser, payload_app, shots):
    from playwright.sync_api import expect

    log = payload_app.output()
    assert "zephyr-handbook.md was added; building the index" in log and "built " in log
    page = Page(browser, payload_app.url)
    try:
        expect(page.page.locator("h1")).to_contain_text("Zephyr <img src=x onerror=alert(1)> Handbook")
        reply = page.ask("What does the Zephyr handbook warn about?")
        expect(reply).to_contain_text("<img src=x onerror=alert(3)>")
        expect(reply).to_contain_text("Markup <script>alert(2)</script> rules")
        expect(page.page.locator("#qa-context")).to_contain_text("<script>alert(4)</script>")
        expect(page.page.locator("#qa-context")).to_contain_text("${alert(6)} and {{constructor}} stay literal")
        reply = page.ask("Which link must never become a link?")
        expect(reply).to_contain_text("[click me](javascript:alert(5))")
        page.page.screenshot(path=shots / "payload.png", full_page=True)
        page.assert_inert()
    finally:
        page.close()


def test_markup_planted_in_the_corpus_comes_back_escaped_from_the_api(payload_app):
    reply = make_client(payload_app.url).predict(
        "Which link must never become a link?", [], api_name="/chat")
    assert "javascript" in reply and "](javascript" not in reply and "<img" not in reply and "<script" not in reply


def test_an_empty_message_does_nothing(page):
    page.box.press("Enter")
    page.page.locator("#qa-question button").first.click()
    page.page.wait_for_timeout(1000)
    assert page.page.locator(USER).count() == 0 and page.page.locator(BOT).count() == 0
    page.ask("How many member parliaments does the IPU have?")
    page.assert_inert()


def test_a_megabyte_paste_gets_a_clear_message(page):
    from playwright.sync_api import expect

    page.box.evaluate(
        "el => { el.value = 'x'.repeat(1000000); el.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    page.box.press("Enter")
    reply = page.wait_for_reply(0)
    expect(reply).to_contain_text("the limit is 2,000")
    expect(page.page.locator(USER).first).to_contain_text("(1,000,000 characters)")
    # and the conversation goes on
    expect(page.ask("How many member parliaments does the IPU have?")).to_contain_text("179")


def test_new_conversation_clears_everything(page):
    from playwright.sync_api import expect

    page.ask("What is the World e-Parliament Report?")
    page.page.locator("#qa-clear").click()
    expect(page.page.locator(BOT)).to_have_count(0)
    expect(page.page.locator("#qa-context mark")).to_have_count(0)
    # the old topic is forgotten: a pronoun now has nothing to point back to
    reply = page.ask("Who publishes it?")
    expect(reply).not_to_contain_text("following on from")


def test_phone_width(browser, app_url, shots):
    from playwright.sync_api import expect

    page = Page(browser, app_url, width=390, height=844)
    try:
        reply = page.ask("How many member parliaments does the IPU have?")
        expect(reply).to_contain_text("179")
        expect(page.page.locator("#qa-context mark")).to_be_visible()
        overflow = page.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 390
        page.page.screenshot(path=shots / "phone.png", full_page=True)
    finally:
        page.close()


@pytest.fixture(scope="module")
def manual_app(tmp_path_factory):
    """A section of curl's manual (tests/data/corpora/techdocs): prose, a lead-in and indented commands."""
    import qa
    from conftest import DATA

    folder = tmp_path_factory.mktemp("manual")
    corpus = folder / "corpus"
    corpus.mkdir()
    lines = (DATA / "corpora" / "techdocs" / "libcurl4-doc-TheArtOfHttpScripting.md").read_text("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Multiple HTTP methods"))
    (corpus / "curl.md").write_text("\n".join(lines[start : start + 21]) + "\n", "utf-8")
    qa.build_index(corpus_dir=corpus, index_dir=folder / "index")
    with serve("--index", str(folder / "index"), "--corpus", str(corpus), workdir=folder) as app:
        yield app


def test_a_quoted_command_reads_as_typed(browser, manual_app, shots):
    """The command is indented in the manual; shown in the chat it keeps its dashes and colons, without
    the backslashes that keep Markdown inert."""
    from playwright.sync_api import expect

    page = Page(browser, manual_app.url)
    try:
        reply = page.ask("What does curl -I http://example.com --next http://example.com do?")
        quote = reply.locator("blockquote").first
        expect(quote).to_contain_text("curl -I http://example.com --next http://example.com")
        assert "\\" not in quote.inner_text()
        page.page.screenshot(path=shots / "command.png", full_page=True)
        page.assert_inert()
    finally:
        page.page.close()
