"""Cutting the quotes: from ranked candidates to one to three verbatim, focused passages.

The first candidate is quoted first, further ones when they are nearly as likely to be the answer.
A quote that lacks what the question asks for takes in the next sentence when that one has it; a
"Key: value" line whose key is not asked is quoted with its record; a lead-in ("To send a HEAD and
then a GET:") or a title takes in the block it introduces; a broad question gets the paragraph.
Every quote is a slice of its document by offsets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from . import english
from .answer import Candidate, Quote, Scoring
from .chunking import BLANK_LINE
from .index import IndexData
from .units import UnitFacts, Units, introduces

if TYPE_CHECKING:
    from .question import Hint

MAX_QUOTES = 3
MAX_PARAGRAPH_CHARS = 600  # a broad answer: the paragraph, or as much of it around the best sentence


def answer_check(hints: list[Hint]) -> "Check":
    """What the first quote is checked against: the test it may be widened to pass (a number, a time,
    the thing asked for) and whether a "Key: value" line's key is what the question names."""
    return Check(next((h.test for h in hints if h.widens), None), next((h.test for h in hints if h.names_key), None))


@dataclass(frozen=True, slots=True)
class Check:
    """See answer_check."""

    widen: Callable[[UnitFacts], bool] | None = None
    key: Callable[[UnitFacts], bool] | None = None


def make_quote(data: IndexData, units: Units, cand: Candidate, check: Check | None = None,
               scoring: Scoring = Scoring()) -> Quote:
    """The candidate's quote unit. The first quote (check: what it is checked against, answer_check) is
    widened to the next sentence of the paragraph when only that one has what the question asks for (a
    number, a time, the thing named after "which"); a "Key: value" line whose key the question does not
    name, to the record of such lines it belongs to. A further quote (check None) is quoted as it
    stands. Either takes in what a lead-in introduces."""
    chunk = data.chunks[cand.chunk]
    text = data.documents[chunk.source].text
    start, end = units[cand.row]
    nxt = cand.row + 1
    widen = check.widen if check and scoring.widen else None
    facts = units.facts(cand.row)
    if check is not None and scoring.records and facts.field_line and not (check.key and check.key(facts)) and (
            record := _record(text, start, end)):
        start, end = record
    elif (
        widen is not None and not widen(facts) and nxt < len(units)
        and data.chunks[int(data.sentence_chunk[nxt])].source == chunk.source
        and units[nxt][0] >= end and not BLANK_LINE.search(text, end, units[nxt][0])
        and widen(units.facts(nxt))
    ):
        end = units[nxt][1]
    elif scoring.lead_ins and introduces(text, start, end):
        end = _introduced_end(data, units, cand.row, text, start, end)
    page = data.documents[chunk.source].page_at(start)
    return Quote(text[start:end], chunk.source, chunk.title, chunk.section, start, end, round(cand.score, 4), page)


MAX_LEAD_IN_QUOTE = 400  # a lead-in or a title with what it introduces: a focused quote, not a section
MAX_RECORD_QUOTE = 400  # a record of "Key: value" lines, from its first line


def _record(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span of the record that the "Key: value" line text[start:end] belongs to, or None: its
    paragraph, when that is two or more such lines (with indented continuation lines), as the
    "Files: … / Copyright: … / License: …" stanzas of a Debian copyright file or a profile's
    "Established / Address / Website" lines. A record is quoted from its first line up to
    MAX_RECORD_QUOTE characters, cut at a line's end; None when that would leave out the line."""
    window = max(0, start - MAX_RECORD_QUOTE)
    lo = max((m.end() for m in BLANK_LINE.finditer(text, window, start)), default=None if window else 0)
    if lo is None:
        return None  # the paragraph began long before the line
    para = BLANK_LINE.search(text, end)
    hi = para.start() if para else len(text)
    fields, taken, at = 0, lo, lo
    for line in text[lo:hi].split("\n"):
        indented = line[:1].isspace()
        if english.FIELD.match(line) and not indented:
            fields += 1
        elif line.strip() and not indented:
            return None  # a line of prose: a paragraph, not a record
        if at + len(line.rstrip()) - lo <= MAX_RECORD_QUOTE:
            taken = at + len(line.rstrip())
        at += len(line) + 1
    if fields < 2 or taken < end or (lo, taken) == (start, end):
        return None
    return lo, taken


def _introduced_end(data: IndexData, units: Units, row: int, text: str, start: int, end: int,
                    limit: int = MAX_LEAD_IN_QUOTE) -> int:
    """Where a quote text[start:end] that ends with an introducing unit (row) ends: with the block
    that follows it (the code, the list, the paragraph under a title), within its section, cut at a
    unit's end to stay within limit characters; at least the first unit that follows in the section."""
    owner = data.chunks[int(data.sentence_chunk[row])]
    best, stop = end, None
    for r in range(row + 1, min(len(units), row + 40)):
        chunk = data.chunks[int(data.sentence_chunk[r])]
        if chunk.source != owner.source or chunk.section != owner.section:
            break
        s, e = units[r]
        if e <= end:
            continue
        if stop is None:  # the block of the first unit after it
            block = BLANK_LINE.search(text, max(s, end))
            stop = block.start() if block else len(text)
        if e > stop or (e - start > limit and best > end):
            break
        best = e
    return best


def paragraph_quote(data: IndexData, units: Units, cand: Candidate, limit: int = MAX_PARAGRAPH_CHARS) -> Quote:
    """The paragraph of the candidate's sentence (for a heading, the paragraph under it), or when that
    is longer than limit, the run of its sentences around the candidate's that fits."""
    chunk = data.chunks[cand.chunk]
    text = data.documents[chunk.source].text
    start, end = units[cand.row]
    lo = max((m.end() for m in BLANK_LINE.finditer(text, 0, start)), default=0)
    para = BLANK_LINE.search(text, end)
    hi = para.start() if para else len(text)
    if hi - end < 2 and para and "\n" not in text[start:end] and end - start < 100 and not english.FIELD.match(text, start):
        # a short paragraph of one line, a title ("5. Conveying Modified Source Versions."): the paragraph
        # under it belongs to it (broader than is_title_line: a topic's paragraph may follow any such line)
        nxt = BLANK_LINE.search(text, para.end())
        hi = nxt.start() if nxt else len(text)
    # the sentence rows of this document, to cut a long paragraph at sentence ends
    rows = [r for r in range(max(0, cand.row - 40), min(len(units), cand.row + 40))
            if data.chunks[int(data.sentence_chunk[r])].source == chunk.source and lo <= units[r][0] and units[r][1] <= hi]
    if hi - lo > limit and rows:
        i = rows.index(cand.row) if cand.row in rows else 0
        a = b = i
        while True:  # grow forward first: a paragraph explains after its topic sentence
            if b + 1 < len(rows) and units[rows[b + 1]][1] - units[rows[a]][0] <= limit:
                b += 1
            elif a > 0 and units[rows[b]][1] - units[rows[a - 1]][0] <= limit:
                a -= 1
            else:
                break
        lo, hi = units[rows[a]][0], max(units[rows[b]][1], end)
    lo, hi = min(lo, start), max(hi, end)
    while lo < hi and text[lo].isspace():
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    if text[lo:hi].endswith(":"):  # it ends by announcing what follows (a command, a list): take that in
        last = max((r for r in rows if units[r][1] <= hi), default=cand.row, key=lambda r: units[r][1])
        hi = max(hi, _introduced_end(data, units, last, text, lo, hi, limit))
    return Quote(text[lo:hi], chunk.source, chunk.title, chunk.section, lo, hi, round(cand.score, 4),
                 data.documents[chunk.source].page_at(lo))


MAX_JOINED_QUOTE = 300  # the first quote and its neighbour: still one focused quote (tune halves: README)


def _joined(data: IndexData, first: Quote, other: Quote) -> Quote | None:
    """first widened to take in other, when other is the unit just before or after it in the same
    paragraph and the two together stay short; else None."""
    if other.source != first.source:
        return None
    text = data.documents[first.source].text
    between = text[first.end:other.start] if other.start >= first.end else text[other.end:first.start]
    start, end = min(first.start, other.start), max(first.end, other.end)
    # (other may itself be widened: a lead-in with the block below it is not in first's paragraph)
    if between.strip() or BLANK_LINE.search(text, start, end) or end - start > MAX_JOINED_QUOTE:
        return None
    page = data.documents[first.source].page_at(start)
    return Quote(text[start:end], first.source, first.title, first.section, start, end, first.score, page)


def select_quotes(data: IndexData, units: Units, candidates: list[Candidate], scoring: Scoring,
                  check: Check = Check(), broad: bool = False) -> list[Quote]:
    """One to three non-overlapping quotes, best first; only the first may be widened, by check or by
    the sentence beside it. For a broad question the quotes are paragraphs."""
    quotes: list[Quote] = []
    if not candidates:
        return quotes
    broad = broad and scoring.paragraphs
    # scores are logits: exp(difference) is how much less likely a candidate is the answer than the first
    odds = lambda cand: math.exp(min(0.0, cand.score - candidates[0].score))
    for cand in candidates:
        if len(quotes) == MAX_QUOTES or odds(cand) < scoring.follow_ratio:
            break
        if broad:
            if units.facts(cand.row).field_line:
                continue  # "Established: 2013" is a fact, not what a topic is about
            q = paragraph_quote(data, units, cand)
        else:
            q = make_quote(data, units, cand, check if not quotes else None, scoring)
        if any(o.source == q.source and o.start < q.end and q.start < o.end for o in quotes):
            continue
        if any(same_work((q.source, q.title, q.text), (o.source, o.title, o.text)) for o in quotes):
            continue  # nothing new to read
        # The runner-up next to the first quote, in its paragraph, scoring nearly as high: the two
        # sentences answer together more often than either alone ("The series has been dubbed into…")
        if quotes and not broad and scoring.join and odds(cand) >= scoring.join_ratio:
            joined = _joined(data, quotes[0], q)
            if joined is not None:
                quotes[0] = joined
                continue
        quotes.append(q)
    if not quotes:  # a broad question whose best passages are all "Key: value" lines: quote the best one
        quotes.append(make_quote(data, units, candidates[0], check, scoring))
    return quotes


def same_work(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Whether passages a and b, as (source, title, text), are the same work in two files (a report
    published as PDF and as Word): files of one title, the words of one within the other's (case and
    line breaks aside)."""
    words = lambda text: " ".join(text.split()).casefold()
    return a[0] != b[0] and a[1] == b[1] and ((x := words(a[2])) in (y := words(b[2])) or y in x)
