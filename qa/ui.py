"""The chat UI: a Gradio Blocks app over a loaded Bot, plus two named API endpoints.

Everything here is presentation. The bot retrieves, quotes and abstains; this
module lays its answers out: the reply (already safe Markdown) in the chat, and
each quoted sentence highlighted in its paragraph in a side panel. Text from the
corpus or the user reaches the page only escaped (`qa.render.escape` for Markdown,
`html.escape` for the panel) — Gradio's sanitiser is a second line, not the first.

Conversation state lives on the server (`gr.State`), so what the browser sends
back is never trusted as history. Examples are derived from the corpus (its title
and section names) and kept only if the bot actually answers them.

API endpoints for `gradio_client`: `/chat` (message, history -> reply Markdown)
and `/retrieve` (query, k -> passages as dicts). The UI's own events are private.
Gradio is imported inside the functions that need it, never at `import qa`, and
through `import_gradio`, which skips the type stubs Gradio otherwise regenerates on
every import.
"""

from __future__ import annotations

import html
import json
import importlib.abc
import importlib.machinery
import logging
import os
import re
import socket
import sys
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .answer import Answer, Quote
from .render import escape
from .errors import IndexCorruptError, IndexNotFoundError, QAError, StaleIndexError

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

    from .bot import Bot

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 4
MAX_SUGGESTIONS = 5
MAX_K = 50  # /retrieve returns at most this many passages
CONTEXT_CHARS = 700  # at most this much paragraph either side of a highlighted quote
SHOWN_QUESTION_CHARS = 300  # a rejected (too long) question is echoed this far
KEPT_MESSAGES = 40  # history kept per session and accepted from API callers
QUEUE_SIZE = 64
# Gradio keeps a copy of the page's config (~35 KB) plus the conversation for every session, API calls
# included, and by default up to 10,000 of them: hundreds of MB. The least recently used go first.
SESSIONS = 1000
EXAMPLES_LABEL = "Examples"
SUGGESTIONS_LABEL = "I can answer questions like these"
CONCURRENCY = 2
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


# ---- the app ------------------------------------------------------------------------------------


def load_or_build(index_dir: str | Path = "index", corpus_dir: str | Path | None = None) -> "Bot":
    """Load the index; build it first when it is missing, stale or damaged (and log that).

    corpus_dir defaults to the folder the index was built from, else `corpus`.
    """
    from . import build_index, load

    try:
        return load(index_dir, corpus_dir=corpus_dir)
    except (IndexNotFoundError, StaleIndexError, IndexCorruptError) as e:
        source = Path(corpus_dir) if corpus_dir is not None else _recorded_corpus(index_dir)
        why = str(e).split(" — run:")[0]
        logger.warning("%s; building the index from %s/ …", why, source)
        report = build_index(corpus_dir=source, index_dir=index_dir)
        logger.info("built %s/: %s", index_dir, report.summary())
        return load(index_dir, corpus_dir=source)


def _recorded_corpus(index_dir: str | Path) -> Path:
    from .index import read_manifest

    try:
        recorded = read_manifest(index_dir).get("corpus_dir")
    except QAError:
        recorded = None
    return Path(recorded) if recorded and Path(recorded).is_dir() else Path("corpus")


class Reloader:
    """The bot on an index folder, swapped for the new one when a rebuild replaces its manifest.

    Each request costs one stat of manifest.json (a rebuild replaces it atomically, so its inode
    changes). One request loads the new index while the others keep using the old bot, which also
    stays in service if the new index cannot be loaded.
    """

    def __init__(self, bot: "Bot", index_dir: str | Path):
        self.bot, self.folder = bot, Path(index_dir)
        self._stamp = _manifest_stamp(self.folder)
        self._lock = threading.Lock()

    def __call__(self) -> "Bot":
        stamp = _manifest_stamp(self.folder)
        if stamp == self._stamp or stamp is None or not self._lock.acquire(blocking=False):
            return self.bot
        try:
            if stamp != self._stamp:
                from . import load

                self._stamp = stamp  # a broken index is tried once, not on every request
                try:
                    self.bot = load(self.folder, check_stale=False)
                    logger.info("reloaded %s/: %s", self.folder, describe(self.bot))
                except Exception as e:  # whatever the failure, the previous bot still answers
                    logger.warning("%s/ changed but cannot be loaded (%s); still serving the previous index",
                                   self.folder, e)
        finally:
            self._lock.release()
        return self.bot


def _manifest_stamp(folder: Path) -> tuple[int, int, int] | None:
    from .index import MANIFEST

    try:
        st = os.stat(folder / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class _NoStubWriting(importlib.abc.MetaPathFinder):
    """Loads gradio.component_meta with its `create_or_modify_pyi` made a no-op.

    Gradio 6 regenerates a .pyi type stub for each of its ~80 component classes on every import,
    by parsing their source files: about 60% of `import gradio` here (1.5 of 2.5 s), and a write
    into site-packages. Stubs are for type checkers; a running app has no use for them.
    """

    TARGET = "gradio.component_meta"

    def find_spec(self, name, path, target=None):
        if name != self.TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            if callable(getattr(module, "create_or_modify_pyi", None)):
                module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


def import_gradio():
    """`import gradio`, without its stub writing (see _NoStubWriting); the module.

    The finder stays installed: removing it while another thread imports could make that thread's
    import skip a finder. It answers for one module name only and costs nothing otherwise.
    """
    if "gradio" not in sys.modules:
        if not any(isinstance(f, _NoStubWriting) for f in sys.meta_path):
            sys.meta_path.insert(0, _NoStubWriting())
        import gradio  # noqa: F401
    return sys.modules["gradio"]


def build_demo(bot: "Bot", current: Callable[[], "Bot"] | None = None) -> "gr.Blocks":
    """The chat app over bot: chat, examples, suggestions, the quoted paragraphs, and the API.

    With current (a Reloader), answers come from the bot it returns, which follows rebuilds.
    """
    gr = import_gradio()

    current = current or (lambda: bot)

    title = corpus_title(bot)
    examples = example_questions(bot)
    topics = dict.fromkeys(topic_question(s) for s in bot.suggestions(n=4 * MAX_SUGGESTIONS))
    suggested = [q for q in topics if _answers(bot, q)][:MAX_SUGGESTIONS] or examples

    def new_session() -> dict:
        return {"history": [], "shown": []}

    def respond(message: str | None, session: dict | None):
        """A UI turn: the chat, the session, the context panel, the suggestions."""
        session = session or new_session()
        message = message if isinstance(message, str) else ""
        if not message.strip():  # an empty submit changes nothing
            return "", session["shown"], session, gr.skip(), gr.skip()
        live = current()
        text, answer = reply(live, message, session["history"])
        shown = session["shown"] + [
            {"role": "user", "content": shown_question(message)}, {"role": "assistant", "content": text},
        ]
        history = session["history"]
        if answer is not None:  # refused questions (too long…) are not context for follow-ups
            history = history + [{"role": "user", "content": message}, {"role": "assistant", "content": text}]
        session = {"history": history[-KEPT_MESSAGES:], "shown": shown[-KEPT_MESSAGES:]}
        panel = context_html(live, answer.quotes if answer else [])
        return "", session["shown"], session, panel, prompt_list(answer is not None and answer.abstained)

    def respond_to_sample(sample: list | None, session: dict | None):
        question = sample[0] if isinstance(sample, list) and sample else ""
        return respond(question, session)

    def prompt_list(abstained: bool) -> "gr.Dataset":
        """After an abstention, what the bot can answer; otherwise the examples."""
        if abstained:
            return gr.Dataset(label=SUGGESTIONS_LABEL, samples=[[q] for q in suggested])
        return gr.Dataset(label=EXAMPLES_LABEL, samples=[[q] for q in examples])

    def clear():
        return "", [], new_session(), _PANEL_EMPTY, prompt_list(False)

    def chat(message: str, history: list[dict] | None = None) -> str:
        """Answer a question by quoting the corpus. history: earlier turns as messages. Returns Markdown."""
        return reply(current(), message, history)[0]

    def retrieve(query: str, k: int = 5) -> list[dict]:
        """The k best passages for a query: text, source, title, section, start, end, score."""
        try:
            return passages(current(), query, k)
        except QAError as e:
            raise gr.Error(str(e), print_exception=False) from e  # the caller's mistake: no traceback in the log

    # Nothing here writes to Gradio's cache (uploads are refused, outputs are text); should a future
    # component do so, its files are deleted hourly once an hour old, and all of them on restart.
    with gr.Blocks(title=title, fill_width=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# {escape(title)}\n{escape(describe(bot))}")
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


# Gradio's file route fetches a URL given in place of a path (/gradio_api/file=https://…), looking
# its host up over DNS-over-HTTPS: an offline app must not make requests on a caller's behalf.
_REMOTE_FILE = re.compile(r"/gradio_api/file[=/][a-z][a-z0-9+.-]*:", re.I)
# Routes Gradio mounts for features this app does not have. Each takes a body to disk or to another
# host, or changes the app: file uploads (unlimited: 300 MB was written in 1.1 s), recordings, streamed
# media input, component server calls, the Spaces proxy, run history, vibe editing, dev reload.
_UNUSED_ROUTE = re.compile(
    r"/(gradio_api/)?(upload|upload_progress|process_recording|stream/|component_server|proxy=|"
    r"run-history/|vibe-|undo-vibe-|dev/reload)", re.I)
MAX_BODY_BYTES = 1 << 20  # the largest legitimate body is a 2,000-character question with 40 messages


class Guard:
    """ASGI middleware in front of Gradio: refuses what this app never serves before Gradio reads it.

    Unused routes (see _UNUSED_ROUTE) and file requests naming a URL get 403 without their body being
    read; a body over MAX_BODY_BYTES gets 413 — at once when Content-Length says so, else as soon as the
    streamed bytes pass the cap (the app then sees the client gone). Refusals are JSON, like the API's.
    """

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if _REMOTE_FILE.match(path):
            return await refuse(send, 403, "This app serves no remote files.")
        if _UNUSED_ROUTE.match(path):
            return await refuse(send, 403, "This app takes no uploads, recordings or streams; "
                                           "ask questions with POST /api/ask.")
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await refuse(send, 413, self._too_large())
        await _Capped(self, scope, receive, send).run()

    def _too_large(self) -> str:
        return f"The request body is over {self.max_body:,} bytes; a question is at most 2,000 characters."


class _Capped:
    """One request whose streamed body is counted; past the cap, 413 and a disconnect for the app."""

    def __init__(self, guard: Guard, scope, receive, send):
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.received, self.started, self.refused = 0, False, False

    async def run(self):
        await self.guard.app(self.scope, self.receive, self.send)

    async def receive(self):
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.guard.max_body:
                self.refused = True
                if not self.started:
                    await refuse(self._send, 413, self.guard._too_large())
                return {"type": "http.disconnect"}
        return message

    async def send(self, message):
        if self.refused:  # the refusal was the response
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def refuse(send, status: int, message: str) -> None:
    """A complete JSON error response: {"error": message}."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


QUEUE_POLL_SECONDS = 0.02  # measured: idle 6.6% -> 1.3% of a core; a /chat round trip stays ~77 ms


def set_up_queue(demo: "gr.Blocks") -> None:
    """A bounded queue that runs CONCURRENCY jobs at a time and polls for work every QUEUE_POLL_SECONDS.

    Gradio's queue polls every 1 ms for work and every 10 ms for progress, even with nobody asking:
    5-6% of a core. This app reports no progress, and a request waits at most QUEUE_POLL_SECONDS more.
    """
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    queue = getattr(demo, "_queue", None)
    for name in ("sleep_when_free", "progress_update_sleep_when_free"):
        if isinstance(getattr(queue, name, None), float):
            setattr(queue, name, max(getattr(queue, name), QUEUE_POLL_SECONDS))


PORT_ATTEMPTS = 5  # port 0: free ports tried, in case another process takes one between check and bind


def bindable_port(host: str, port: int) -> int:
    """The port a server can listen on at host now (port 0: a free one the system picks).

    Raises the OSError that says why not: the port is in use (EADDRINUSE), host is no address of this
    machine (EADDRNOTAVAIL), or no address at all (socket.gaierror). Gradio would report each of them
    as "Cannot find empty port".
    """
    host = host.strip("[]")  # "[::1]" as in a URL
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        s.bind((host, port))
        return s.getsockname()[1]


def app_kwargs(api: "FastAPI | None" = None) -> dict:
    """The FastAPI options of the served app: the Guard in front, the JSON API (qa.api) at /api."""
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    return {"middleware": [Middleware(Guard)], "routes": [Mount("/api", app=api)] if api is not None else []}


def launch(demo: "gr.Blocks", host: str = "127.0.0.1", port: int = 7860, api: "FastAPI | None" = None) -> None:
    """Serve the app with safe defaults: local only, bounded queue, no monitoring, no extra files;
    with api (qa.api.build_api) mounted at /api.

    Port 0 serves on any free port; the line "Running on local URL" says which. (Gradio binds a port
    by number, so it cannot be handed port 0 itself.)
    """
    set_up_queue(demo)
    for attempt in range(1 if port else PORT_ATTEMPTS):
        try:
            # quiet: Gradio's own banner suggests share=True (a public tunnel); this app only says where it is.
            demo.launch(
                server_name=host, server_port=bindable_port(host, port), share=False, enable_monitoring=False,
                ssr_mode=False, mcp_server=False, pwa=False, show_error=False, css=CSS, footer_links=["api"],
                app_kwargs=app_kwargs(api), state_session_capacity=SESSIONS, quiet=True, prevent_thread_lock=True,
            )
            break
        except OSError:
            if port or attempt == PORT_ATTEMPTS - 1:
                raise
    print(f"* Running on local URL:  {demo.local_url}", flush=True)
    demo.block_thread()
