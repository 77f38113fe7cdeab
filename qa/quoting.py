"""Cutting the quotes: from ranked candidates to one to three verbatim, focused passages.

The first candidate is quoted first, further ones when they are nearly as likely to be the answer.
A quote is the candidate's unit as the index stores it (chunking.unit_spans: a sentence, a "Key:
value" line, a list item; a sentence that points back, "It…", with the one before it). A broad
question ("Tell me about…") gets the paragraph: the one quoting rule that gains on the tune halves
of two sets (docs/EVALUATION.md). Every quote is a slice of its document by offsets.
"""

from __future__ import annotations

import math

from . import english
from .answer import Candidate, Quote, Scoring
from .chunking import BLANK_LINE
from .index import IndexData
from .units import Units

MAX_QUOTES = 3
MAX_PARAGRAPH_CHARS = 600  # a broad answer: the paragraph, or as much of it around the best sentence


def make_quote(data: IndexData, units: Units, cand: Candidate) -> Quote:
    """The candidate's quote unit, as it stands in its document."""
    chunk = data.chunks[cand.chunk]
    text = data.documents[chunk.source].text
    start, end = units[cand.row]
    return Quote(text[start:end], chunk.source, chunk.title, chunk.section, start, end, round(cand.score, 4),
                 data.documents[chunk.source].page_at(start))


def _introduced_end(data: IndexData, units: Units, row: int, text: str, start: int, end: int, limit: int) -> int:
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


def select_quotes(data: IndexData, units: Units, candidates: list[Candidate], scoring: Scoring,
                  broad: bool = False) -> list[Quote]:
    """One to three non-overlapping quotes, best first: the candidates' sentence units, or for a broad
    question their paragraphs."""
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
            q = make_quote(data, units, cand)
        if any(o.source == q.source and o.start < q.end and q.start < o.end for o in quotes):
            continue
        if any(same_work((q.source, q.title, q.text), (o.source, o.title, o.text)) for o in quotes):
            continue  # nothing new to read
        quotes.append(q)
    if not quotes:  # a broad question whose best passages are all "Key: value" lines: quote the best one
        quotes.append(make_quote(data, units, candidates[0]))
    return quotes


def same_work(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Whether passages a and b, as (source, title, text), are the same work in two files (a report
    published as PDF and as Word): files of one title, the words of one within the other's (case and
    line breaks aside)."""
    words = lambda text: " ".join(text.split()).casefold()
    return a[0] != b[0] and a[1] == b[1] and ((x := words(a[2])) in (y := words(b[2])) or y in x)
