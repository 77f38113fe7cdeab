"""Split a Document into section-aware, sentence-aligned chunks with exact offsets.

A document is read as blocks separated by blank lines. A block is a heading
(Markdown `#`, setext underline, or in plain text a short line without final
punctuation), a run of "Key: value" / list lines (each line a unit), a fenced
code block (each line a unit; a `#` inside it is not a heading), or a paragraph
(split into sentences). Thematic breaks (`---`) only separate blocks. Sentences
are packed into chunks that never cross a section boundary and always fit the
embedding model's window; a sentence longer than the window is cut at spaces.

A document whose file marks its headings (HTML h1-h6, DOCX heading styles, a PDF's
outline: `Document.headings`) is cut at exactly those; then no heading is guessed from
the text, since a short line in a web page or a report is far more often a table cell or a
label than a heading.

Every span is an offset pair into `Document.text`; text is never rewritten, so
`document.text[chunk.start:chunk.end] == chunk.text` holds by construction.

The sentence splitter is a small rule set rather than a library: pysbd (the
usual choice) splits "Chem. du Pommier 5" after "Chem." and is unmaintained.
The rules: split after . ! ? (and closing quotes) when the next word starts with
an upper-case letter, a digit or an opening quote, unless the word before the
period is a known abbreviation or a single initial, or the "sentence" would be
only an enumerator ("1." of a numbered list); and always after 。！？.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, asdict
from typing import Callable, Iterator, Sequence

from .corpus import Document

CHUNKER_VERSION = 4
SECTION_SEPARATOR = " › "
# A runaway title or heading must not crowd the text out of the model's window: the
# place shown to the model is cut to this many characters (~at most as many word pieces).
MAX_PLACE_CHARS = 160


@dataclass(frozen=True, slots=True)
class ChunkerSettings:
    max_chars: int = 480  # soft target: a chunk is a few sentences, not a page
    min_chars: int = 160  # below this a chunk keeps taking sentences across paragraphs
    max_tokens: int = 256  # the model's window, including the title prefix and special tokens

    def as_dict(self) -> dict:
        return {"version": CHUNKER_VERSION, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    source: str
    title: str
    section: str  # heading path joined with " › "; "" before the first heading
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]  # absolute (start, end) of each sentence, in order


Span = tuple[int, int]
TokenCounter = Callable[[str], int]

ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof st sr jr mt ft no nos vol vols fig figs eq p pp ch chap sec art
    e.g i.e etc vs cf al approx dept est inc ltd co corp bros gen gov col lt sgt capt cmdr
    rev hon pres jan feb mar apr jun jul aug sep sept oct nov dec chem ave blvd rd
    u.s u.k u.n e.u a.m p.m ph.d b.a m.a op ed eds trans repr
    """.split()
)

_BLOCK = re.compile(r"[^\n]*\S[^\n]*(?:\n[^\n]*\S[^\n]*)*")
_LINE = re.compile(r"[^\n]*")
_MD_HEADING = re.compile(r"[ \t]{0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_SETEXT = re.compile(r"[ \t]*(=+|-+)[ \t]*$")
_RULE = re.compile(r"[ \t]*(?:([-*_])(?:[ \t]*\1){2,}|=+)[ \t]*$")  # thematic break, or a stray underline
_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_KEY_VALUE = re.compile(r"[A-Z][\w'’()/&-]*(?:[ \t][\w'’()/&-]+){0,4}:[ \t]+\S")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+•◦‣]|\d{1,3}[.)])[ \t]+\S")
_BOUNDARY = re.compile(r"[.!?…]+[\"'’”)\]]*(?=\s+(\S))|[。！？]+[」』”’）)]*(?=\s*\S)")
_WORD_BEFORE = re.compile(r"([\w.]+?)\.*$")
_NUMBERING = re.compile(r"(?:\d+\.)*\d*\.?\s*")  # "2.1. " before a heading's words
_ENUMERATOR = re.compile(r"\(?(?:\d{1,3}|[ivx]{1,4}|[IVX]{1,4}|[A-Za-z])\)?")


def _strip_span(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _lines(text: str, start: int, end: int) -> list[Span]:
    spans = []
    for m in _LINE.finditer(text, start, end):
        s, e = _strip_span(text, m.start(), m.end())
        if s < e:
            spans.append((s, e))
    return spans


def _is_plain_heading(line: str) -> bool:
    words = line.split()
    return (
        0 < len(line) <= 80
        and len(words) <= 12
        and line[-1] not in ".!?:;,"
        and (line[0].isupper() or line[0].isdigit())
        and not _KEY_VALUE.match(line)
        and not _LIST_ITEM.match(line)
        and "://" not in line
        # "Copyright (C) 1994 Graeme W. Wilford. (Wilf.)" is a sentence; "2.1. Grants" is a heading
        and ". " not in line[_NUMBERING.match(line).end() :]
    )


def is_line_unit(line: str) -> bool:
    """Whether the line is a unit of its own: a "Key: value" field or a list item."""
    return bool(_KEY_VALUE.match(line) or _LIST_ITEM.match(line))


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of text[start:end], trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans, cursor = [], start
    for m in _BOUNDARY.finditer(text, start, end):
        if m.end() >= end:
            break
        following = m.group(1)
        if following is not None and not (following.isupper() or following.isdigit() or following in "\"'‘“([¿¡"):
            continue
        if text[m.start()] == ".":
            before = _WORD_BEFORE.search(text, cursor, m.start() + 1)
            word = before.group(1).lower() if before else ""
            if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
            if _ENUMERATOR.fullmatch(text, *_strip_span(text, cursor, m.start())):
                continue
        s, e = _strip_span(text, cursor, m.end())
        if s < e:
            spans.append((s, e))
        cursor = m.end()
    s, e = _strip_span(text, cursor, end)
    if s < e:
        spans.append((s, e))
    return spans


@dataclass(frozen=True, slots=True)
class _Block:
    kind: str  # "heading" | "lines" | "paragraph" | "code"
    start: int
    end: int
    level: int = 0
    heading: str = ""


def _fences(text: str) -> list[Span]:
    """(start, end) of every closed fenced code block, fence lines included."""
    fences, pos, opened = [], 0, None
    for line in text.split("\n"):
        start, pos = pos, pos + len(line) + 1
        m = _FENCE.match(line)
        if m is None:
            continue
        if opened is None:
            opened = (start, m.group(1))
        elif m.group(1)[0] == opened[1][0] and len(m.group(1)) >= len(opened[1]) and not line[m.end() :].strip():
            fences.append((opened[0], start + len(line)))
            opened = None
    return fences


def _blocks(text: str, headings: Sequence[tuple[int, int, int]] = ()) -> Iterator[_Block]:
    """Headings and body blocks in document order; fenced code is one block whatever it holds.

    headings: the document's own (start, end, level); when given, they are the only headings.
    """
    if headings:
        pos = 0
        for start, end, level in headings:
            yield from _text_blocks(text, pos, start, marked=True)
            yield _Block("heading", start, end, level=level, heading=text[start:end].strip())
            pos = end
        yield from _text_blocks(text, pos, len(text), marked=True)
        return
    pos = 0
    for start, end in _fences(text) + [(len(text), len(text))]:
        yield from _text_blocks(text, pos, start)
        if start < end:  # the lines between the fences
            s, e = _strip_span(text, text.index("\n", start) + 1, text.rindex("\n", start, end))
            if s < e:
                yield _Block("code", s, e)
        pos = end


def _text_blocks(text: str, start: int, end: int, marked: bool = False) -> Iterator[_Block]:
    """The blocks of text[start:end] (no code fences in it); Markdown heading lines split blocks.

    marked: the document marks its own headings, so none is recognised here.
    """
    for m in _BLOCK.finditer(text, start, end):
        lines = _lines(text, m.start(), m.end())
        if marked:
            yield from _body_block(text, lines, guess_heading=False)
            continue
        body: list[Span] = []
        underline = False
        for i, (s, e) in enumerate(lines):
            if underline:  # the setext underline of the heading just yielded
                underline = False
                continue
            line = text[s:e]
            md = _MD_HEADING.match(line)
            below = text[lines[i + 1][0] : lines[i + 1][1]] if i + 1 < len(lines) else ""
            setext = i == 0 and not md and _SETEXT.match(below)
            if md or setext:
                yield from _body_block(text, body)
                body = []
                heading = (md.group(2) or "" if md else line).strip()
                if heading:  # "#" alone is a mark, not a section
                    level = len(md.group(1)) if md else (1 if "=" in below else 2)
                    yield _Block("heading", s, e, level=level, heading=heading)
                underline = bool(setext)
                continue
            if _RULE.match(line):
                yield from _body_block(text, body)
                body = []
                continue
            body.append((s, e))
        yield from _body_block(text, body)


def _body_block(text: str, lines: list[Span], guess_heading: bool = True) -> Iterator[_Block]:
    if not lines:
        return
    start, end = lines[0][0], lines[-1][1]
    if guess_heading and len(lines) == 1 and _is_plain_heading(text[start:end]):
        yield _Block("heading", start, end, level=0, heading=text[start:end].strip())
    elif any(is_line_unit(text[s:e]) for s, e in lines):
        yield _Block("lines", start, end)
    else:
        yield _Block("paragraph", start, end)


def _units(text: str, block: _Block) -> list[Span]:
    """Sentence-like units of a body block."""
    if block.kind == "paragraph":
        return split_sentences(text, block.start, block.end)
    if block.kind == "code":
        return _lines(text, block.start, block.end)
    units: list[Span] = []
    lines = _lines(text, block.start, block.end)
    for i, (s, e) in enumerate(lines):
        # a wrapped continuation of a list item joins the item before it
        if units and not is_line_unit(text[s:e]):
            units[-1] = (units[-1][0], e)
        else:
            units.append((s, e))
    return [sentence for s, e in units for sentence in split_sentences(text, s, e)]


def _fit_window(text: str, span: Span, fits: Callable[[str], bool]) -> list[Span]:
    """Cut a span that does not fit the window into pieces at whitespace, halving until each fits."""
    s, e = span
    if fits(text[s:e]) or e - s <= 1:  # one character always goes: the place is capped, so it fits
        return [span]
    cut = text.rfind(" ", s, (s + e) // 2 + 1)
    if cut <= s:
        cut = (s + e) // 2
    left, right = _strip_span(text, s, cut), _strip_span(text, cut, e)
    return [p for half in (left, right) if half[0] < half[1] for p in _fit_window(text, half, fits)]


def embedding_text(title: str, section: str, text: str) -> str:
    """What the model sees for a chunk or sentence: its place in the corpus, then the text."""
    where = title + (SECTION_SEPARATOR + section if section else "")
    if len(where) > MAX_PLACE_CHARS:
        where = where[: MAX_PLACE_CHARS - 1].rstrip() + "…"
    return f"{where}\n{text}"


def chunk_document(
    doc: Document, settings: ChunkerSettings = ChunkerSettings(), count_tokens: TokenCounter | None = None
) -> list[Chunk]:
    """Chunks of one document, in order. count_tokens measures the model's word pieces (with special tokens)."""
    text = doc.text
    counter = count_tokens or (lambda s: len(s) // 2 + 2)  # conservative without a tokenizer

    blocks = list(_blocks(text, doc.headings))
    # The first block is the title when it is the document's title line: not body text.
    if blocks and blocks[0].kind == "heading" and blocks[0].heading == doc.title:
        blocks = blocks[1:]
    # In plain text a heading directly followed by another heading groups the ones after it.
    # Where the document marks its headings (#, setext), a plain one nests under the marked one.
    base = 6 if any(b.kind == "heading" and b.level for b in blocks) else 0
    levels = []
    group_open = False
    for i, b in enumerate(blocks):
        if b.kind != "heading" or b.level:
            levels.append(b.level)
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if nxt is not None and nxt.kind == "heading" and not nxt.level:
            levels.append(base + 1)
            group_open = True
        else:
            levels.append(base + (2 if group_open else 1))

    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    # (sentence span, (paragraph number, block kind)): a chunk does not mix "Key: value" lines with prose
    section_units: list[tuple[Span, tuple[int, str]]] = []

    def flush() -> None:
        section = SECTION_SEPARATOR.join(h for _, h in path)
        prefix_tokens = counter(embedding_text(doc.title, section, "")) - 2
        budget = settings.max_tokens - prefix_tokens

        def fits(s: str) -> bool:
            return counter(s) <= budget

        pieces = [(p, para) for span, para in section_units for p in _fit_window(text, span, fits)]
        group: list[tuple[Span, tuple[int, str]]] = []
        for span, para in pieces:
            if group:
                g_start = group[0][0][0]
                size = span[1] - g_start
                new_paragraph = para != group[-1][1]
                current = group[-1][0][1] - g_start
                if (
                    size > settings.max_chars
                    or (new_paragraph and current >= settings.min_chars)
                    or para[1] != group[-1][1][1]
                    or not fits(text[g_start : span[1]])
                ):
                    chunks.append(_make_chunk(doc, section, [s for s, _ in group]))
                    group = []
            group.append((span, para))
        if group:
            chunks.append(_make_chunk(doc, section, [s for s, _ in group]))
        section_units.clear()

    for paragraph, (block, level) in enumerate(zip(blocks, levels)):
        if block.kind == "heading":
            flush()
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, block.heading))
        else:
            section_units.extend((span, (paragraph, block.kind)) for span in _units(text, block))
    flush()
    return _with_unique_ids(chunks)


def _make_chunk(doc: Document, section: str, sentences: list[Span]) -> Chunk:
    start, end = sentences[0][0], sentences[-1][1]
    chunk_text = doc.text[start:end]
    digest = hashlib.sha256(f"{doc.source}\0{chunk_text}".encode()).hexdigest()[:16]
    return Chunk(digest, doc.source, doc.title, section, start, end, chunk_text, tuple(sentences))


def _with_unique_ids(chunks: list[Chunk]) -> list[Chunk]:
    seen: dict[str, int] = {}
    out = []
    for c in chunks:
        n = seen.get(c.id, 0)
        seen[c.id] = n + 1
        out.append(c if n == 0 else Chunk(f"{c.id}-{n}", *[getattr(c, f) for f in Chunk.__slots__[1:]]))
    return out


# A sentence that opens by pointing back ("It also publishes…", "To this end, it has…")
# does not say what it is about; it is quoted, and embedded, with the sentence before it.
_POINTS_BACK = re.compile(
    r"(?:(?:\w+\W+){0,3}\w+,\s*)?(?:it|its|they|their|them|this|these|those|such|he|she|his|her)\b", re.I
)
MAX_UNIT_CHARS = 600  # ~150 word pieces of English: with a title prefix still inside the 256 window
BLANK_LINE = re.compile(r"\n[ \t\r\u00a0]*\n")


def quote_units(text: str, sentences: Sequence[Span]) -> list[Span]:
    """For each sentence of one document (in document order): the span to quote for it.

    The sentence itself, or, when it opens with a pronoun pointing back, the sentence before
    it too (if that one is in the same paragraph and the two stay short enough to quote and to
    fit the model's window). Derived from the offsets, so never stored.
    """
    units = []
    for i, (s, e) in enumerate(sentences):
        prev = sentences[i - 1] if i else None
        if (
            prev and prev[1] <= s and e - prev[0] <= MAX_UNIT_CHARS
            and _POINTS_BACK.match(text, s) and not BLANK_LINE.search(text, prev[1], s)
        ):
            units.append((prev[0], e))
        else:
            units.append((s, e))
    return units


def unit_spans(chunks: Sequence[Chunk], documents: dict) -> list[Span]:
    """quote_units for every sentence of every chunk, in chunk order (one per sentence row)."""
    units: list[Span] = []
    i = 0
    while i < len(chunks):
        j = i
        while j < len(chunks) and chunks[j].source == chunks[i].source:
            j += 1
        sentences = [s for c in chunks[i:j] for s in c.sentences]
        units += quote_units(documents[chunks[i].source].text, sentences)
        i = j
    return units


def sentence_embedding_texts(
    chunks: Sequence[Chunk], documents: dict, units: Sequence[Span] | None = None
) -> list[str]:
    """What the model sees for each sentence row: its quote unit, placed by title and section."""
    owners = [c for c in chunks for _ in c.sentences]
    return [
        embedding_text(c.title, c.section, documents[c.source].text[s:e])
        for c, (s, e) in zip(owners, units if units is not None else unit_spans(chunks, documents))
    ]
