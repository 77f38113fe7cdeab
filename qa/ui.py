"""The chat UI: a Gradio Blocks app whose answers come from qa.engine, plus two named API endpoints.

Everything here is presentation. The bot retrieves, quotes and abstains; this
module lays its answers out: the reply (already safe Markdown) in the chat, and
each quoted sentence highlighted in its paragraph in a side panel. Text from the
corpus or the user reaches the page only escaped (`qa.render.escape` for Markdown,
`html.escape` for the panel) — Gradio's sanitiser is a second line, not the first.

The functions that take a bot (`turn`, `chat_reply`, `passages`, `about`) run where
the bot is: in a worker process of `qa.engine.Engine`, which sends back text and
HTML, so the app's own process needs neither the index nor the model. The Gradio
functions await them; the server around them (queue, guard, launch) is `qa.server`.

Conversation state lives on the server (`gr.State`), so what the browser sends
back is never trusted as history. Examples are derived from the corpus (its title
and section names) and kept only if the bot actually answers them.

API endpoints for `gradio_client`: `/chat` (message, history -> reply Markdown)
and `/retrieve` (query, k -> passages as dicts). The UI's own events are private.
Gradio is imported inside the functions that need it, never at `import qa`.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from .answer import Answer, Quote
from .api import MAX_K, MAX_MESSAGES as KEPT_MESSAGES  # the API's limits: /retrieve's k, history kept per session
from .engine import encodes
from .errors import QAError
from .render import escape
from .server import import_gradio

if TYPE_CHECKING:
    import gradio as gr

    from .bot import Bot
    from .engine import Engine

MAX_EXAMPLES = 4
MAX_SUGGESTIONS = 5
CONTEXT_CHARS = 700  # at most this much paragraph either side of a highlighted quote
SHOWN_QUESTION_CHARS = 300  # a rejected (too long) question is echoed this far
EXAMPLES_LABEL = "Examples"
SUGGESTIONS_LABEL = "I can answer questions like these"
CACHE_SECONDS = 3600

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_PANEL_EMPTY = '<p class="qa-empty">The passages quoted in an answer appear here, each in its paragraph.</p>'
_PANEL_NONE = '<p class="qa-empty">The last reply quoted nothing.</p>'

# Gradio's own `.prose blockquote` margin is !important; the panel needs it tighter.
CSS = """
#qa-context figure { margin: 0 0 1.25rem 0; }
#qa-context figcaption { font-size: 0.85em; font-weight: 600; margin: 0 0 0.35rem 0; }
#qa-context blockquote { margin: 0 !important; padding: 0.4rem 0.75rem;
  border-left: 3px solid var(--color-accent, #f97316); white-space: pre-wrap; overflow-wrap: anywhere; font-style: normal; }
#qa-context mark { background: #fde68a; color: #111827; padding: 0 0.1em; border-radius: 2px; }
#qa-context .qa-where { font-size: 0.8em; opacity: 0.7; margin-top: 0.25rem; }
#qa-context .qa-empty { opacity: 0.7; }
"""


# ---- what the corpus is, in words -------------------------------------------------------------


def corpus_title(bot: "Bot") -> str:
    """The title of the corpus: its document's title, or the first few titles."""
    titles = list(dict.fromkeys(d.title for d in bot.data.documents.values()))
    if not titles:
        return "Documents"
    if len(titles) == 1:
        return titles[0]
    if len(titles) == 2:
        return f"{titles[0]} and {titles[1]}"
    return f"{titles[0]}, {titles[1]} and {len(titles) - 2} more"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def describe(bot: "Bot") -> str:
    """One line of what the bot knows: documents, chunks, model, when the index was built."""
    m = bot.manifest
    counts = m.get("counts", {})
    model = str(m.get("model", {}).get("name", "unknown model")).rsplit("/", 1)[-1]
    built = m.get("built_at", "")
    try:
        built = datetime.fromisoformat(built).strftime("%Y-%m-%d %H:%M %Z").strip()
    except (TypeError, ValueError):
        pass
    return (
        f"I answer only by quoting {_plural(counts.get('documents', len(bot.data.documents)), 'document')} "
        f"({_plural(counts.get('chunks', len(bot.data.chunks)), 'chunk')}), found with {model}; "
        f"index built {built or 'at an unknown time'}."
    )


def _mid_sentence(name: str) -> str:
    """A heading as it reads inside a sentence: "Capacity development" -> "capacity development"."""
    words = name.split()
    if words and words[0][:1].isupper() and words[0][1:].islower() and all(w.islower() for w in words[1:]):
        return name[0].lower() + name[1:]
    return name


def _as_named(title: str, text: str) -> str:
    """The title with "the" when the document itself calls it that ("the Inter-Parliamentary Union")."""
    if re.search(r"\bthe " + re.escape(title) + r"\b", text[:20_000], re.I) and not title.lower().startswith("the "):
        return "the " + title
    return title


def topic_question(section: str) -> str:
    return f"Tell me about {_mid_sentence(section)}"


def example_questions(bot: "Bot", n: int = MAX_EXAMPLES) -> list[str]:
    """Questions derived from the corpus (its title, its sections) that the bot answers."""
    titles = {d.title: d.text for d in bot.data.documents.values()}
    candidates = [f"What is {_as_named(title, text)}?" for title, text in list(titles.items())[:2]]
    candidates += [topic_question(s) for s in bot.suggestions(n=4 * n)]
    examples = [q for q in dict.fromkeys(candidates) if _answers(bot, q)][:n]
    return examples or ["What is this about?"]


def _answers(bot: "Bot", question: str) -> bool:
    try:
        return not bot.ask(question).abstained
    except QAError:
        return False


# ---- the quoted passage in its paragraph --------------------------------------------------------


def paragraph_span(text: str, start: int, end: int, limit: int = CONTEXT_CHARS) -> tuple[int, int, bool, bool]:
    """The blank-line-separated paragraph(s) around text[start:end], at most `limit` chars either side.

    Returns (start, end, cut_before, cut_after): whether the limit, not a paragraph break, ended it.
    """
    lo, hi = max(0, start - limit), min(len(text), end + limit)
    before = None
    for before in _PARAGRAPH_BREAK.finditer(text, lo, start):
        pass
    after = _PARAGRAPH_BREAK.search(text, end, hi)
    s = before.end() if before else lo
    e = after.start() if after else hi
    return s, e, before is None and lo > 0, after is None and hi < len(text)


def highlight(text: str, start: int, end: int, limit: int = CONTEXT_CHARS) -> str:
    """HTML of the paragraph around text[start:end] with that span in <mark>; everything escaped."""
    s, e, cut_before, cut_after = paragraph_span(text, start, end, limit)
    before, quoted, after = text[s:start].lstrip(), text[start:end], text[end:e].rstrip()
    return (
        f"{'…' if cut_before else ''}{html.escape(before)}<mark>{html.escape(quoted)}</mark>"
        f"{html.escape(after)}{'…' if cut_after else ''}"
    )


def context_html(bot: "Bot", quotes: Sequence[Quote]) -> str:
    """Each quote in its paragraph, highlighted, with its citation; a note when there is none."""
    if not quotes:
        return _PANEL_NONE
    parts = []
    for i, q in enumerate(quotes, 1):
        doc = bot.data.documents.get(q.source)
        if doc is not None and doc.text[q.start : q.end] == q.text:
            body = highlight(doc.text, q.start, q.end)
        else:  # the offsets do not fit the loaded document: show the quote alone
            body = f"<mark>{html.escape(q.text)}</mark>"
        page = f", p. {q.page}" if q.page is not None else ""
        parts.append(
            f"<figure><figcaption>{i}. {html.escape(q.citation)}</figcaption>"
            f"<blockquote>{body}</blockquote>"
            f'<div class="qa-where">{html.escape(q.source)}{page}, characters {q.start:,}–{q.end:,}</div></figure>'
        )
    return "".join(parts)


# ---- one turn -----------------------------------------------------------------------------------


def plain_history(history: object) -> list[dict]:
    """Gradio messages (string or content-block content) as [{"role", "content": str}], last ones only."""
    if not isinstance(history, (list, tuple)):
        return []
    messages = []
    for m in list(history)[-KEPT_MESSAGES:]:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(
                c.get("text", "") if isinstance(c, dict) else c for c in content
                if isinstance(c, str) or (isinstance(c, dict) and isinstance(c.get("text"), str))
            )
        if isinstance(content, str):
            messages.append({"role": m["role"], "content": content[:4000]})
    return messages


def error_reply(error: QAError) -> str:
    message = str(error) or "something went wrong"
    return f"⚠️ {escape(message[0].upper() + message[1:])}"


def reply(bot: "Bot", message: object, history: Sequence[dict] | None) -> tuple[str, Answer | None]:
    """(reply Markdown, Answer or None if the question was refused); never raises QAError."""
    try:
        answer = bot.ask(message, history=plain_history(history))
    except QAError as e:
        return error_reply(e), None
    return answer.text, answer


def shown_question(message: str) -> str:
    """The user's message as Markdown that displays as typed; a huge paste is cut short."""
    if len(message) > SHOWN_QUESTION_CHARS:
        return f"{escape(message[:SHOWN_QUESTION_CHARS])}… *({len(message):,} characters)*"
    return escape(message)


def passages(bot: "Bot", query: object, k: object = 5) -> list[dict]:
    """bot.retrieve as JSON-ready dicts; k clamped to 1..MAX_K."""
    try:
        k = min(max(int(k), 1), MAX_K)
    except (TypeError, ValueError):
        k = 5
    return [asdict(p) for p in bot.retrieve(query, k=k)]


# ---- run where the bot is (qa.engine): text and HTML come back -----------------------------------


def about(bot: "Bot") -> dict:
    """What the page says before any question: title, description, examples, suggestions after an abstention."""
    examples = example_questions(bot)
    topics = dict.fromkeys(topic_question(s) for s in bot.suggestions(n=4 * MAX_SUGGESTIONS))
    suggested = [q for q in topics if _answers(bot, q)][:MAX_SUGGESTIONS] or examples
    return {"title": corpus_title(bot), "description": describe(bot), "examples": examples, "suggested": suggested}


# what reply asks, for qa.engine to encode a batch's questions in one call
_asks = encodes(lambda bot, message, history: bot.query_texts(message, plain_history(history)))


@_asks
def turn(bot: "Bot", message: str, history: Sequence[dict]) -> dict:
    """One UI turn: the reply, whether it was answered (False: refused, e.g. too long) or abstained, and the
    context panel's HTML."""
    text, answer = reply(bot, message, history)
    return {"text": text, "answered": answer is not None, "abstained": answer is not None and answer.abstained,
            "panel": context_html(bot, answer.quotes if answer else [])}


@_asks
def chat_reply(bot: "Bot", message: object, history: object) -> str:
    return reply(bot, message, history)[0]


# ---- the page -----------------------------------------------------------------------------------


def build_demo(engine: "Engine") -> "gr.Blocks":
    """The chat app: chat, examples, suggestions, the quoted paragraphs, and the API; answers come from
    engine (qa.engine), whose bots follow rebuilds of the index."""
    gr = import_gradio()

    page = engine.run_now(about)
    title, examples, suggested = page["title"], page["examples"], page["suggested"]

    def new_session() -> dict:
        return {"history": [], "shown": []}

    async def respond(message: str | None, session: dict | None):
        """A UI turn: the chat, the session, the context panel, the suggestions."""
        session = session or new_session()
        message = message if isinstance(message, str) else ""
        if not message.strip():  # an empty submit changes nothing
            return "", session["shown"], session, gr.skip(), gr.skip()
        done = await engine.run(turn, message, session["history"])
        text = done["text"]
        shown = session["shown"] + [
            {"role": "user", "content": shown_question(message)}, {"role": "assistant", "content": text},
        ]
        history = session["history"]
        if done["answered"]:  # refused questions (too long…) are not context for follow-ups
            history = history + [{"role": "user", "content": message}, {"role": "assistant", "content": text}]
        session = {"history": history[-KEPT_MESSAGES:], "shown": shown[-KEPT_MESSAGES:]}
        return "", session["shown"], session, done["panel"], prompt_list(done["abstained"])

    async def respond_to_sample(sample: list | None, session: dict | None):
        question = sample[0] if isinstance(sample, list) and sample else ""
        return await respond(question, session)

    def prompt_list(abstained: bool) -> "gr.Dataset":
        """After an abstention, what the bot can answer; otherwise the examples."""
        if abstained:
            return gr.Dataset(label=SUGGESTIONS_LABEL, samples=[[q] for q in suggested])
        return gr.Dataset(label=EXAMPLES_LABEL, samples=[[q] for q in examples])

    def clear():
        return "", [], new_session(), _PANEL_EMPTY, prompt_list(False)

    async def chat(message: str, history: list[dict] | None = None) -> str:
        """Answer a question by quoting the corpus. history: earlier turns as messages. Returns Markdown."""
        return await engine.run(chat_reply, message, history)

    async def retrieve(query: str, k: int = 5) -> list[dict]:
        """The k best passages for a query: text, source, title, section, start, end, score."""
        try:
            return await engine.run(passages, query, k)
        except QAError as e:
            raise gr.Error(str(e), print_exception=False) from e  # the caller's mistake: no traceback in the log

    # Nothing here writes to Gradio's cache (uploads are refused, outputs are text); should a future
    # component do so, its files are deleted hourly once an hour old, and all of them on restart.
    with gr.Blocks(title=title, fill_width=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# {escape(title)}\n{escape(page['description'])}")
        session = gr.State(new_session())
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(
                    label="Conversation", show_label=False, height="62vh", min_height=320, buttons=["copy"],
                    feedback_options=None,
                    placeholder="Ask a question; I reply with quotes from the documents, or say I cannot.",
                    elem_id="qa-chat",
                )
                # No max_length: a cut in the browser would silently answer a truncated question;
                # the server refuses an over-long one with a clear message instead.
                box = gr.Textbox(
                    show_label=False, placeholder=f"Ask about {title}…", lines=1, max_lines=6,
                    submit_btn="Ask", autofocus=True, elem_id="qa-question",
                )
                prompts = gr.Dataset(
                    label=EXAMPLES_LABEL, components=[gr.Textbox(visible=False)], samples=[[q] for q in examples],
                    elem_id="qa-prompts",
                )
                new_chat = gr.Button("New conversation", variant="secondary", size="sm", elem_id="qa-clear")
            with gr.Column(scale=2, min_width=280):
                gr.Markdown("### Quoted passages in context")
                panel = gr.HTML(_PANEL_EMPTY, js_on_load=None, elem_classes=["qa-context"], elem_id="qa-context")

        outputs = [box, chatbot, session, panel, prompts]
        private = {"api_visibility": "private", "show_progress": "minimal"}
        box.submit(respond, [box, session], outputs, **private)
        prompts.click(respond_to_sample, [prompts, session], outputs, **private)
        new_chat.click(clear, None, outputs, **private)
        chatbot.clear(clear, None, outputs, **private)

        gr.api(chat, api_name="chat")
        gr.api(retrieve, api_name="retrieve")
    return demo
