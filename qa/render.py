"""Writing the reply: Markdown in which every piece of corpus or user text is escaped, and plain text for a terminal."""

from __future__ import annotations

import html
import re

from .answer import Quote


# Markdown and HTML that corpus or question text could smuggle into a reply.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~$<>:-])")


def escape(text: str) -> str:
    """Text rendered as itself in Markdown: no HTML, links, emphasis or math survive."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


UNCERTAIN = "I am not sure my documents answer this. The closest they come:"


def render(quotes: list[Quote], about: str = "", uncertain: bool = False) -> str:
    """The reply: each quote as a block quote under its citation (after a caveat when uncertain); for a
    follow-up, the earlier question it was taken to follow, in the user's own words."""
    parts = [UNCERTAIN] if uncertain else []
    for i, q in enumerate(quotes):
        lead = "According to" if i == 0 else "Also, from"
        parts.append(f"{lead} *{escape(q.citation)}*:\n\n" + "\n".join(quoted_lines(q.text)))
    if about:
        parts.append(f"<sub>following on from: {escape(about)}</sub>")
    return "\n\n".join(parts)


def quoted_lines(text: str) -> list[str]:
    """text as the lines of a Markdown block quote, every piece escaped.

    A block (after a blank line) indented by four columns or more would be read as a code block,
    where escapes are shown as backslashes ("curl \\-I http\\://…"); such a block is dedented, its
    lines kept apart by hard breaks and their further indentation kept as no-break spaces. Other
    lines are left as they are: an indented line inside a paragraph only continues it.
    """
    lines, out, i = text.splitlines(), [], 0
    indent = lambda line: len(line) - len(line.lstrip(" "))
    while i < len(lines):
        if not lines[i].strip():
            out.append(">")
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        block = [line.expandtabs(4) for line in lines[i:j]]
        if indent(block[0]) >= 4:
            margin = min(map(indent, block))
            for k, line in enumerate(block):
                pad = indent(line) - margin
                out.append("> " + "\u00a0" * pad + escape(line.strip()) + ("\\" if k < len(block) - 1 else ""))
        else:
            out += ["> " + escape(line) for line in lines[i:j]]
        i = j
    return out


def render_refusal(suggestions: list[str], reason: str, lead: str = "You could ask about:") -> str:
    """The reply when the bot declines: why, and what it can answer instead (or where it comes nearest)."""
    lines = [reason]
    if suggestions:
        lines.append(f"{lead} " + ", ".join(f"*{escape(s)}*" for s in suggestions) + ".")
    return "\n\n".join(lines)


_EMPHASIS = re.compile(r"(?<!\\)\*")
_ESCAPED = re.compile(r"\\(.)")


def plain(markdown: str) -> str:
    """A reply's Markdown as a terminal shows it best: no emphasis marks, no backslash escapes."""
    return html.unescape(_ESCAPED.sub(r"\1", _EMPHASIS.sub("", markdown)))
