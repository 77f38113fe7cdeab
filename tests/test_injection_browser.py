"""Script injection, in Debian's Chromium: payloads typed as questions and planted in a corpus document.

Every payload calls a marker function (or alert) that would set window.__xss or open a dialog if it
ever ran. After the answers are on the page: no marker call, no dialog, no extra frame, no inline
event handler anywhere, no javascript:/data: link or frame, and inside the chat, the context panel
and the header only the elements our own Markdown and HTML make. Each payload must also be shown,
literally, as text. Never `playwright install`: it downloads browsers.
"""

from __future__ import annotations

import re
import shutil
from typing import Iterator

import pytest

import qa

from conftest import copy_index
from served_app import App, ChatPage, client as make_client, serve

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>__mark(1)</script>",
    "<ScRiPt>__mark(2)</sCrIpT>",
    "<img src=x onerror=__mark(3)>",
    "<svg onload=__mark(4)>",
    "<svg><script>__mark(5)</script></svg>",
    "<iframe src=javascript:parent.__mark(6)></iframe>",
    '<iframe srcdoc="<script>parent.__mark(7)</script>"></iframe>',
    '<a href="jAvAsCrIpT:__mark(8)">click</a>',
    "[click](javascript:__mark(9))",
    "![x](data:image/svg+xml,<svg onload=__mark(10)>)",
    "<details open ontoggle=__mark(11)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=__mark(12)>",
    "<body onload=__mark(13)>",
    "<input autofocus onfocus=__mark(14)>",
    "<video><source onerror=__mark(15)></video>",
    "<object data=javascript:__mark(16)></object>",
    "<embed src=javascript:__mark(17)>",
    '<a href="data:text/html,<script>__mark(18)</script>">d</a>',
    "<<script>script>__mark(19)<</script>/script>",
    "<scr<script>ipt>__mark(20)</scr</script>ipt>",
    '<a href="&#x6A;avascript:__mark(21)">e</a>',
    "[x](&#106;avascript:__mark(22))",
    "<javascript:__mark(23)>",
    "<svg><animate onbegin=__mark(24) attributeName=x dur=1s>",
    '<noscript><p title="</noscript><img src=x onerror=__mark(25)>">',
    '<!--<img src="--><img src=x onerror=__mark(26)//">',
    '"><img src=x onerror=__mark(27)>',
    "</textarea><script>__mark(28)</script>",
    "<img src=x onerror=alert(29)>",
    "<marquee onstart=__mark(30)>",
    "<form><button formaction=javascript:__mark(31)>go</button></form>",
    '<base href="javascript:__mark(32)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:__mark(33)">',
    "$$\\href{javascript:__mark(34)}{x}$$",
    '<div style="background:url(javascript:__mark(35))">',
    "[x]: javascript:__mark(36)",
    '<img src="x` `<script>__mark(37)</script>"` `>',
    '<a href=" javascript:__mark(38)">sp</a>',
]
SHELVES = ["amber", "cobalt", "crimson", "emerald", "ivory", "saffron", "violet", "walnut"]
TITLE = "Harbour <svg onload=__mark(90)> Lantern <ScRiPt>__mark(91)</ScRiPt> Society"


def payload_document() -> str:
    """A document that carries every payload in prose, plus some in its title and headings."""
    lines = [f"# {TITLE}", "", "## Festival <img src=x onerror=__mark(92)> notes", "",
             "The Harbour Lantern Society holds its lantern festival every August on the north pier of Port Elms. "
             "The festival was first held in 1897.", "",
             "## Archive of [hostile](javascript:__mark(93)) markup", ""]
    for n, start in enumerate(range(0, len(PAYLOADS), 5)):
        sentences = [f"The {SHELVES[n]} shelf of the society's archive holds hostile markup samples."]
        sentences += [f"Sample {start + i + 1} is {p} and it must stay inert."
                      for i, p in enumerate(PAYLOADS[start : start + 5])]
        lines += [" ".join(sentences), ""]
    return "\n".join(lines)


# Runs in every frame before the page's own scripts.
MARKER = """
window.__xss = 0;
window.__mark = (n) => { window.__xss = n || -1; try { window.top.__xss = n || -1; } catch (e) {} };
"""

# Everything on the page that only an executed or injected payload would leave behind.
INSPECT = r"""() => {
  const content = [...document.querySelectorAll(
      "[data-testid='bot'] .message-content, [data-testid='user'] .message-content, #qa-context")];
  const header = document.querySelector('h1') && document.querySelector('h1').parentElement;
  if (header) content.push(header);
  const ours = new Set(['p', 'em', 'strong', 'blockquote', 'br', 'sub', 'span', 'div', 'figure', 'figcaption',
                        'mark', 'code', 'h1', 'h2', 'h3', 'ul', 'ol', 'li']);
  const foreign = content.flatMap(c => [...c.querySelectorAll('*')]
      .map(e => e.tagName.toLowerCase()).filter(t => !ours.has(t)));
  const handlers = [...document.querySelectorAll('*')].flatMap(
      e => [...e.attributes].filter(a => a.name.toLowerCase().startsWith('on')).map(a => `${e.tagName} ${a.name}`));
  const bad = /^\s*(javascript|data|vbscript):/i;
  const links = [...document.querySelectorAll('a[href], area[href], form[action], button[formaction], base[href], '
                                              + 'iframe, frame, object, embed')]
      .map(e => e.getAttribute('href') || e.getAttribute('action') || e.getAttribute('formaction')
                || e.getAttribute('src') || e.getAttribute('data') || e.getAttribute('srcdoc') || e.tagName)
      .filter(v => bad.test(v) || /^(IFRAME|FRAME|OBJECT|EMBED)$/.test(v));
  // Gradio's own head carries the title as text: in <meta content> and, \u003c-escaped, in its config script.
  const gradios = e => e.closest('head') && e.tagName === 'META' && !e.hasAttribute('http-equiv')
      || e.tagName === 'SCRIPT' && e.textContent.includes('window.gradio_config');
  const planted = [...document.querySelectorAll(
      'script, svg, iframe, img, math, details, input, video, source, object, embed, form, marquee, base, meta, style')]
      .filter(e => !gradios(e) && (e.outerHTML.includes('__mark') || e.outerHTML.includes('alert(')))
      .map(e => e.tagName);
  return {xss: window.__xss, foreign, handlers, links, planted,
          jsLinks: document.querySelectorAll("a[href^='javascript:' i]").length,
          text: content.map(c => c.innerText).join('\n')};
}"""


@pytest.fixture(scope="module")
def payload_app(seed_index, seed_corpus, tmp_path_factory) -> Iterator[App]:
    """The seed and the payload document, indexed (reusing the seed's vectors and ONNX encoder), served."""
    folder = tmp_path_factory.mktemp("xss")
    corpus, index = folder / "corpus", folder / "index"
    shutil.copytree(seed_corpus, corpus)
    (corpus / "harbour-lantern.md").write_text(payload_document(), "utf-8")
    copy_index(seed_index, index)
    qa.build_index(corpus_dir=corpus, index_dir=index)
    with serve("--index", str(index), "--corpus", str(corpus), workdir=folder) as app:
        yield app


class Page(ChatPage):
    """A chat tab with the marker installed in every frame, that can list what an executed payload leaves."""

    def __init__(self, browser, url: str):
        super().__init__(browser, url, init_script=MARKER)

    def inspect(self, pause: int = 1000) -> dict:
        """After a pause for handlers (onerror, onload, autofocus, animations) to fire: what is on the page."""
        self.page.wait_for_timeout(pause)
        found = self.page.evaluate(INSPECT)
        found["frames"] = [f.url for f in self.page.frames if f != self.page.main_frame]
        found["dialogs"] = self.dialogs
        return found


def _assert_inert(found: dict) -> None:
    assert found["xss"] == 0, f"payload {found['xss']} ran"
    assert found["dialogs"] == [] and found["frames"] == []
    assert found["jsLinks"] == 0 and found["links"] == []
    assert found["handlers"] == [] and found["planted"] == []
    assert found["foreign"] == [], sorted(set(found["foreign"]))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_payloads_typed_as_questions_are_shown_as_text(browser, payload_app):
    page = Page(browser, payload_app.url)
    try:
        # One payload per line (block-level Markdown and HTML start at a line's beginning), then all
        # of them inline in one question, then a question over the limit (its echo is cut mid-payload).
        for start in range(0, len(PAYLOADS), 5):
            page.ask("\n".join(PAYLOADS[start : start + 5]))
        page.ask("Which samples are these? " + " ".join(PAYLOADS))
        refused = page.ask(" ".join(PAYLOADS * 2))
        assert "the limit is 2,000" in refused.inner_text()
        found = page.inspect()
        _assert_inert(found)
        shown = _flat(found["text"])
        missing = [p for p in PAYLOADS if _flat(p) not in shown]
        assert missing == []
    finally:
        page.close()


def test_payloads_planted_in_the_corpus_are_shown_as_text(browser, payload_app):
    page = Page(browser, payload_app.url)
    try:
        assert page.page.title() == TITLE + " and Inter-Parliamentary Union"
        quoted = page.ask("Which samples are svg?")
        assert "<svg onload=__mark(" in quoted.inner_text()  # a planted svg payload, shown as its text
        _assert_inert(page.inspect(pause=300))
        shown = ""
        questions = ["Which sample has an iframe?", *(f"What does the {s} shelf of the archive hold?" for s in SHELVES),
                     "When is the lantern festival held?"]
        for question in questions:  # the context panel shows the last reply's paragraphs: check each one
            page.ask(question)
            found = page.inspect(pause=300)
            _assert_inert(found)
            shown += _flat(found["text"])
        _assert_inert(page.inspect())
        missing = [p for p in PAYLOADS if _flat(p) not in shown]
        assert missing == []  # every payload reached the page, in a quote or its paragraph
        assert TITLE in shown and "Festival <img src=x onerror=__mark(92)> notes" in shown
        assert "Archive of [hostile](javascript:__mark(93)) markup" in shown
    finally:
        page.close()


def test_payloads_come_back_from_the_api_as_escaped_markdown(payload_app):
    from markdown_it import MarkdownIt

    client = make_client(payload_app.url)
    md = MarkdownIt("commonmark")
    questions = PAYLOADS + ["Which samples are svg?", "Which sample has an iframe?",
                            "What does the amber shelf of the archive hold?"]
    jobs = [client.submit(q, [], api_name="/chat") for q in questions]
    for question, job in zip(questions, jobs):
        reply = job.result(timeout=120)
        tags = set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", md.render(reply)))
        assert tags <= {"p", "em", "blockquote", "sub"}, (question, tags)
    assert payload_app.attempts() == []


def test_the_checks_catch_a_payload_that_does_run(browser, payload_app):
    """The detector itself: markup inserted unescaped into the panel is caught by every check."""
    page = Page(browser, payload_app.url)
    try:
        page.page.evaluate("""() => document.querySelector('#qa-context').insertAdjacentHTML('beforeend',
            '<img src=x onerror=__mark(3)><a href="jAvAsCrIpT:__mark(8)">x</a>'
            + '<iframe srcdoc="<script>parent.__mark(7)</script>"></iframe>')""")
        found = page.inspect()
        assert found["xss"] in (3, 7) and found["jsLinks"] == 1 and len(found["frames"]) == 1
        assert {"img", "a", "iframe"} <= set(found["foreign"]) and "IMG" in found["planted"]
        assert "IMG onerror" in found["handlers"] and found["links"]
        with pytest.raises(AssertionError):
            _assert_inert(found)
    finally:
        page.close()
