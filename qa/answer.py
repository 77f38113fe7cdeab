"""From ranked chunks to an answer: the sentences that answer, quoted verbatim, or a refusal.

Each sentence of the best chunks is scored by its own similarity to the query, its
chunk's similarity (context), its BM25 score among all sentences, and small bonuses
when its form fits the question (`Hint`: a number for "how many", a year for
"when", a definition for "what is X", a "Key: value" line whose key is asked). The
best is quoted first, up to two more when they score close to it. A sentence that
opens by pointing back ("It also publishes…") is quoted with the one before it (its
quote unit, see `chunking.quote_units`); a quote that lacks what the question asks
for takes in the next sentence when that one has it; a lead-in ("To send a HEAD and then a
GET:") or a title takes in the block it introduces.

Whether to answer at all is `Bot.support`'s call (see bot.py and the README).

Quote text is sliced from the document by offsets, never rebuilt, so
`document.text[q.start:q.end] == q.text` holds by construction. Replies are
Markdown in which every piece of corpus or user text is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .chunking import BLANK_LINE, SECTION_SEPARATOR, embedding_text, is_line_unit
from .index import IndexData

MAX_QUOTES = 3


@dataclass(frozen=True, slots=True)
class Quote:
    text: str
    source: str
    title: str
    section: str
    start: int
    end: int
    score: float
    page: int | None = None  # 1-based, for documents with pages (PDF)

    @property
    def citation(self) -> str:
        """"Title › Section", or "Title, p. 12 › Section" for a PDF."""
        page = f", p. {self.page}" if self.page is not None else ""
        return self.title + page + (SECTION_SEPARATOR + self.section if self.section else "")


OUTCOMES = ("answered", "uncertain", "declined")


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply. outcome: "answered"; "uncertain" (the closest passages, with a caveat); "declined" (no
    quotes). abstained is True exactly when it is declined."""

    text: str  # Markdown, safe to render: corpus and user text are escaped
    quotes: list[Quote] = field(default_factory=list)
    abstained: bool = False
    query: str = ""
    outcome: str = ""  # defaults from abstained
    about: str = ""  # for a follow-up: what the conversation is about, in words shown to the user

    def __post_init__(self):
        outcome = self.outcome or ("declined" if self.abstained else "answered")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "abstained", outcome == "declined")


@dataclass(frozen=True, slots=True)
class Scoring:
    """Weights of the sentence score (set by hand, searched on the tune halves: README) and the fallback threshold."""

    dense_weight: float = 1.0  # the sentence's own cosine similarity to the query
    chunk_weight: float = 0.5  # how much a sentence inherits from its chunk's similarity
    lexical_weight: float = 0.25  # BM25 of the sentence, scaled to [0, 1] by the best candidate
    candidate_chunks: int = 8
    min_support: float = 0.28  # the old support threshold: used only for a model with no fitted decision (decision.py)
    follow_ratio: float = 0.85  # a further quote must score at least this share of the first
    join_ratio: float = 0.9  # the sentence beside the first quote joins it when it scores this share of it
    type_weight: float = 0.15  # bonus for a sentence of the asked type (a number for "how many"…)
    field_weight: float = 0.25  # bonus for a "Key: value" line whose key the question names
    context_weight: float = 0.5  # a follow-up's earlier question, beside its own words (vector and BM25)


@dataclass(frozen=True, slots=True)
class Query:
    """What is searched for one turn."""

    text: str  # the user's words, typos corrected
    vector: np.ndarray  # with the earlier question's added, for a follow-up
    terms: list[str]
    context_terms: list[str]  # the earlier question's, for a follow-up
    broad: bool  # asks about a topic ("tell me about…"): quote the paragraph, not a sentence
    context_vector: np.ndarray | None = None  # the earlier question's own, for a follow-up
    form: str = ""  # the question whose form says what kind of answer is wanted, when not text


@dataclass(frozen=True, slots=True)
class Candidate:
    row: int  # sentence number in the index
    chunk: int
    score: float
    similarity: float  # cosine of the sentence's quote unit and the query


# What a question asks for, when its form says so: a number, a time, or a named kind of thing.
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                     r"forty|fifty|hundred|thousand|million|billion|dozen|several)\b", re.I)
_TIME = re.compile(r"(?<![\d,.])(?<!\d-)\b(?:1[0-9]{3}|20[0-9]{2})s?\b(?![,.]?\d)|\bago\b|\b(?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December|century|decade)\b", re.I)
_FREQUENCY = re.compile(r"\b(?:(?:bi|semi-?)?annual(?:ly)?|bienni(?:al|ally)|daily|weekly|monthly|quarterly|yearly|"
                        r"every|once|twice|thrice|times (?:a|per|each)|per (?:year|month|week|day))\b", re.I)
_ASKS_NUMBER = re.compile(r"\bhow (?:many|much)\b", re.I)
# What "how many" counts: the words up to the verb ("how many member parliaments does it have"), give or
# take a verb the list misses ("how many staff work at…": any of the words may be the counted one).
_COUNTED = re.compile(r"\bhow many (?:(?:are|were|is|was)\s+)?((?:(?!(?:are|is|was|were|do|does|did|have|has|had|can|could|will|would|should|"
                      r"exist|exists|existed|there)\b)[^\W_][\w'-]*\s*){1,4})", re.I)
_TOKEN = re.compile(r"[^\W_]+(?:[.,'’-][^\W_]+)*")
_YEAR = re.compile(r"(?:1[5-9]\d\d|20\d\d)s?")  # "2009", "1990s": a time, not a count ("launched in 2009, trains teachers")
COUNT_WINDOW = 6  # words after a number that it may be counting ("eight regional and thematic parliamentary hubs")
_ASKS_FREQUENCY = re.compile(r"\bhow (?:often|frequently)\b", re.I)
_ASKS_TIME = re.compile(r"^\W*when\b|\bhow old\b|\b(?:what|which) (?:year|date|month|day|decade|century)\b", re.I)
_ASKS_PLACE = re.compile(r"^\W*where\b|\b(?:what|which) (?:country|city|town|place|location|region|continent)\b",
                         re.I)
_PLACE = re.compile(r"\b(?:address|located|location|based|headquarter\w*|situated|seat|city|country)\b", re.I)
# Words that only frame a "where" question ("where is it based?"): the answer need not repeat them.
PLACE_FRAME = "based located situated headquartered seated"
_ASKS_KIND = re.compile(r"\b(?:what|which) (?!(?:is|are|was|were|does|do|did|can|could|has|have|had|will|would|"
                        r"should|the|a|an|kind|type|sort|of|about|if|else)\b)([a-z]+)", re.I)
# "how often", "how old": the word after "how" names the kind of answer, not what it is about.
# Only these: in "explain how encryption works" the word after "how" is the subject.
_ASKS_DEGREE = re.compile(r"\bhow (often|frequently|old|long|far|big|large|small|tall|high|wide|soon|early|late|"
                          r"recently)\b", re.I)
_ASKS_DEFINITION = re.compile(
    r"^\W*(?:(?:what|who)(?: exactly)? (?:is|are|was|were)|tell me about|describe|explain|what does) (.+?)(?: mean)?\W*$",
    re.I,
)
_DEFINES = re.compile(r"\b(?:is|are|was|were)\s+(?:a|an|the|one)\b|,\s+(?:a|an)\s|\bmeans\b|\brefers to\b", re.I)
_FIELD = re.compile(r"\W*([A-Z][\w'’ ()/&-]{0,40}?):\s")


def asked_kind(question: str) -> str:
    """Words that name the kind of answer rather than its content: the noun after "what"/"which"
    ("what year" -> "year"), the word after "how" ("how often"), and the framing verbs of a question
    about a place ("where is it based?", "in which country is it located?"); "" when none."""
    words = [m.group(1) for m in (_ASKS_KIND.search(question), _ASKS_DEGREE.search(question)) if m]
    if _ASKS_PLACE.search(question):
        words.append(PLACE_FRAME)
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What the hints ask of one quote unit, worked out once per unit (stemming and regexes cost more
    than the rest of an answer if redone for every candidate of every question)."""

    terms: frozenset[str]
    opening_terms: frozenset[str]  # of its first 80 characters, where a definition names its subject
    field_terms: frozenset[str]  # of the key when it is a "Key: value" line
    field_line: bool  # a "Key: value" line of its own ("Established: 2013"): a fact, never a topic's paragraph
    counted_terms: frozenset[str]  # of the few words after each number: what it may count
    number: bool  # holds a number that is not a year
    frequency: bool
    time: bool
    place: bool
    defines: bool

    @classmethod
    def of(cls, text: str, terms_of: Callable[[str], list[str]]) -> "UnitFacts":
        key = _FIELD.match(text)
        words = _TOKEN.findall(text)
        counts = [i for i, w in enumerate(words) if _NUMBER.search(w) and not _YEAR.fullmatch(w)]
        counted = [t for i in counts
                   for t in terms_of(" ".join(words[i + 1 : i + 1 + COUNT_WINDOW]))]
        return cls(
            frozenset(terms_of(text)), frozenset(terms_of(text[:80])),
            frozenset(terms_of(key.group(1))) if key else frozenset(), bool(key) and "\n" not in text.strip(),
            frozenset(counted),
            bool(counts), bool(_FREQUENCY.search(text)), bool(_TIME.search(text)),
            bool(_PLACE.search(text)),
            bool(_DEFINES.search(text)),
        )


class Units:
    """The quote unit of every sentence row (`chunking.unit_spans`): its span, its text, its facts.

    Facts are worked out on first use and kept: a warm bot does not re-stem its candidates.
    """

    def __init__(self, data: IndexData, spans: list[tuple[int, int]], terms_of: Callable[[str], list[str]]):
        self.spans, self._data, self._terms_of = spans, data, terms_of
        self._facts: list[UnitFacts | None] = [None] * len(spans)

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, row: int) -> tuple[int, int]:
        return self.spans[row]

    def text(self, row: int) -> str:
        s, e = self.spans[row]
        return self._data.documents[self._data.chunks[int(self._data.sentence_chunk[row])].source].text[s:e]

    def context(self, row: int) -> str:
        """The unit as the model and the sentence lexicon see it: with its title and section."""
        chunk = self._data.chunks[int(self._data.sentence_chunk[row])]
        return embedding_text(chunk.title, chunk.section, self.text(row))

    def facts(self, row: int) -> UnitFacts:
        found = self._facts[row]
        if found is None:
            found = self._facts[row] = UnitFacts.of(self.text(row), self._terms_of)
        return found


@dataclass(frozen=True, slots=True)
class Hint:
    """A bonus for sentences whose form fits what the question asks."""

    test: Callable[[UnitFacts], bool]
    weight: float
    widens: bool = False  # a quote lacking it may take in the next sentence that has it
    names_key: bool = False  # a "Key: value" line passing it is the answer itself, not part of a record
    earliest: bool = False  # full weight only for the first passing sentence of a document


def question_hints(question: str, terms_of: Callable[[str], list[str]], scoring: "Scoring") -> list[Hint]:
    """What the question's form says a good answer looks like: a number for "how many", a frequency for
    "how often", a time for "when", a place for "where", the thing named after "which", a definition
    for "what is X", a "Key: value" line whose key the question names. Each is a bonus, never a filter."""
    hints = []
    if _ASKS_NUMBER.search(question):
        hints.append(Hint(lambda f: f.number, scoring.type_weight, widens=True))
        if (counted := _COUNTED.search(question)) and (thing := frozenset(terms_of(counted.group(1)))):
            # a number counting what is asked ("179 national member parliaments") beats any number
            hints.append(Hint(lambda f: not f.counted_terms.isdisjoint(thing), scoring.type_weight))
    elif _ASKS_FREQUENCY.search(question):
        hints.append(Hint(lambda f: f.frequency, scoring.type_weight, widens=True))
    elif _ASKS_TIME.search(question):
        hints.append(Hint(lambda f: f.time, scoring.type_weight, widens=True))
    elif _ASKS_PLACE.search(question):
        hints.append(Hint(lambda f: f.place, scoring.type_weight, widens=True))
    elif (kind := _ASKS_KIND.search(question)) and (wanted := terms_of(kind.group(1))):
        hints.append(Hint(lambda f: wanted[0] in f.terms, scoring.type_weight, widens=True))
    elif (subject := _ASKS_DEFINITION.match(question)) and (named := terms_of(subject.group(1))):
        head = named[-1]
        # documents define a thing where they first introduce it
        hints.append(Hint(lambda f: head in f.opening_terms and f.defines, scoring.type_weight, earliest=True))
    asked = frozenset(terms_of(question))
    if asked:
        hints.append(Hint(lambda f: not asked.isdisjoint(f.field_terms), scoring.field_weight, names_key=True))
    return hints


# "Tell me about X", "What does X say about Y", "Give me an overview of …": the answer is a paragraph.
_ASKS_BROAD = re.compile(
    r"^\W*(?:(?:can you |could you |please )?(?:tell me(?: more)? about|describe|explain|summari[sz]e|outline)\b"
    r"|(?:give (?:me )?)?an? (?:overview|summary|outline) of\b"
    r"|what (?:does|do|did) .+? (?:say|do|does|offer|cover|provide) (?:about|on|for|in|regarding|with)\b"
    r"|what (?:is|are) .+?(?:'s|’s) (?:approach|position|role|work|stance|policy|view)\b)",
    re.I,
)
# A follow-up of a few words with no question of its own ("And privacy?", "What about the hubs?") asks about a topic.
_TOPIC_ONLY = re.compile(r"^\W*(?:and|also|what about|how about|and what about|and how about)\b(?!.*\b(?:when|where|who|"
                         r"how many|how much|what year|which)\b)", re.I)
MAX_PARAGRAPH_CHARS = 600  # a broad answer: the paragraph, or as much of it around the best sentence


def asks_broad(question: str, followup: bool = False) -> bool:
    """Whether the question asks about a topic rather than a fact."""
    return bool(_ASKS_BROAD.search(question)) or (followup and bool(_TOPIC_ONLY.search(question)))


# "When was it founded?", "What year did…": asks for a date in the past. ("When can I…" may ask for a
# condition, and "how long" for a duration.)
_ASKS_DATE = re.compile(r"^\W*when (?:was|were|did)\b|\b(?:what|which|in which) (?:year|date|month|decade|century)\b",
                        re.I)


def dates_missing(question: str, quotes: Sequence["Quote"]) -> bool:
    """True when question asks for a date and the first quote has no time in it: it cannot be the answer."""
    return bool(quotes) and bool(_ASKS_DATE.search(question)) and not _TIME.search(quotes[0].text)


def answer_check(hints: list[Hint]) -> "Check":
    """What the first quote is checked against: the test it may be widened to pass (a number, a time,
    the thing asked for) and whether a "Key: value" line's key is what the question names."""
    return Check(next((h.test for h in hints if h.widens), None), next((h.test for h in hints if h.names_key), None))


@dataclass(frozen=True, slots=True)
class Check:
    """See answer_check."""

    widen: Callable[[UnitFacts], bool] | None = None
    key: Callable[[UnitFacts], bool] | None = None


def score_sentences(
    data: IndexData, units: Units, qvec: np.ndarray, lexical: np.ndarray,
    chunks: list[tuple[int, float]], scoring: Scoring, hints: Sequence[Hint] = (),
) -> list[Candidate]:
    """Candidates from the given chunks, best first. lexical: BM25 score of every sentence unit."""
    if not chunks:
        return []
    chunk_ids = np.array([c for c, _ in chunks[: scoring.candidate_chunks]])
    rows = np.concatenate([np.arange(data.sentence_rows[c], data.sentence_rows[c + 1]) for c in chunk_ids])
    owners = data.sentence_chunk[rows]
    sentence_sim = data.similarity(rows, qvec)
    chunk_sim = data.vectors.reconstruct_batch(chunk_ids) @ qvec
    chunk_sim_of = dict(zip(chunk_ids.tolist(), chunk_sim.tolist()))
    lex = lexical[rows]
    top = float(lex.max())
    lex = lex / top if top > 0 else lex
    inherited = np.array([chunk_sim_of[o] for o in owners.tolist()])
    scores = scoring.dense_weight * sentence_sim + scoring.chunk_weight * inherited + scoring.lexical_weight * lex
    for hint in hints:
        passed = np.array([hint.test(units.facts(r)) for r in rows.tolist()], dtype=np.float32)
        if hint.earliest:
            first: dict[str, int] = {}
            for i in np.flatnonzero(passed):
                source = data.chunks[int(owners[i])].source
                if rows[i] < first.get(source, rows[i] + 1):
                    first[source] = int(rows[i])
            passed *= np.array([1.0 if int(r) in first.values() else 0.5 for r in rows])
        scores += hint.weight * passed
    order = np.argsort(-scores, kind="stable")
    return [Candidate(int(rows[i]), int(owners[i]), float(scores[i]), float(sentence_sim[i])) for i in order]


def make_quote(data: IndexData, units: Units, cand: Candidate, check: Check | None = None) -> Quote:
    """The candidate's quote unit. The first quote (check: what it is checked against, answer_check) is
    widened to the next sentence of the paragraph when only that one has what the question asks for (a
    number, a time, the thing named after "which"); a "Key: value" line whose key the question does not
    name, to the record of such lines it belongs to. A further quote (check None) is quoted as it
    stands. Either takes in what a lead-in introduces."""
    chunk = data.chunks[cand.chunk]
    text = data.documents[chunk.source].text
    start, end = units[cand.row]
    nxt = cand.row + 1
    widen = check.widen if check else None
    facts = units.facts(cand.row)
    if check is not None and facts.field_line and not (check.key and check.key(facts)) and (
            record := _record(text, start, end)):
        start, end = record
    elif (
        widen is not None and not widen(facts) and nxt < len(units)
        and data.chunks[int(data.sentence_chunk[nxt])].source == chunk.source
        and units[nxt][0] >= end and not BLANK_LINE.search(text, end, units[nxt][0])
        and widen(units.facts(nxt))
    ):
        end = units[nxt][1]
    elif introduces(text, start, end):
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
        if _FIELD.match(line) and not indented:
            fields += 1
        elif line.strip() and not indented:
            return None  # a line of prose: a paragraph, not a record
        if at + len(line.rstrip()) - lo <= MAX_RECORD_QUOTE:
            taken = at + len(line.rstrip())
        at += len(line) + 1
    if fields < 2 or taken < end or (lo, taken) == (start, end):
        return None
    return lo, taken


def introduces(text: str, start: int, end: int) -> bool:
    """Whether the unit text[start:end] only announces what follows it: a lead-in ending with a colon
    ("To send first a HEAD and then a GET:") or a title. Quoted alone it names the answer's topic
    but holds no answer."""
    return text[start:end].rstrip().endswith(":") or is_title_line(text, start, end)


def is_title_line(text: str, start: int, end: int) -> bool:
    """Whether the unit text[start:end] is a title: a short line of its own (after a blank line or
    before one, maybe after an enumerator or "#": "A.5. Vote Counting") without a sentence's final
    stop, not a list item, a "Key: value" field, a command or a URL (which start in lower case or hold
    "://"). The chunker makes most titles section headings; these are the ones it could not."""
    unit = text[start:end]
    if (not unit or len(unit) > 80 or len(unit.split()) > 12 or "\n" in unit or unit[0].islower() or "://" in unit
            or _CLOSED.search(unit) or _FIELD.match(unit) or is_line_unit(unit)):
        return False
    before, after = _LINE_BEFORE.search(text, max(0, start - 40), start), _LINE_AFTER.match(text, end)
    return bool(before and after and (before.group(1) is not None or after.group(1) is not None))


_CLOSED = re.compile(r"[.!?…;,:。！？][\"'’”)\]]*$")  # a sentence's final stop, maybe inside closing quotes
# The unit starts its line, maybe after an enumerator or a Markdown "#"; group 1: after a blank line.
_LINE_BEFORE = re.compile(r"(?:\A|\n)([ \t\r]*\n|\A)?[ \t]*(?:#{1,6}|(?:\w{1,3}\.)*\w{1,3}[.)])?[ \t]*\Z")
_LINE_AFTER = re.compile(r"[ \t\r]*(?:\n|\Z)([ \t\r]*\n)?")  # the unit ends its line; group 1: before a blank one


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
    if hi - end < 2 and para and "\n" not in text[start:end] and end - start < 100 and not _FIELD.match(text, start):
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
    floor = candidates[0].score * scoring.follow_ratio
    for cand in candidates:
        if len(quotes) == MAX_QUOTES or cand.score < floor:
            break
        if broad:
            if units.facts(cand.row).field_line:
                continue  # "Established: 2013" is a fact, not what a topic is about
            q = paragraph_quote(data, units, cand)
        else:
            q = make_quote(data, units, cand, check if not quotes else None)
        if any(o.source == q.source and o.start < q.end and q.start < o.end for o in quotes):
            continue
        if any(same_work((q.source, q.title, q.text), (o.source, o.title, o.text)) for o in quotes):
            continue  # nothing new to read
        # The runner-up next to the first quote, in its paragraph, scoring nearly as high: the two
        # sentences answer together more often than either alone ("The series has been dubbed into…")
        if quotes and not broad and cand.score >= candidates[0].score * scoring.join_ratio:
            joined = _joined(data, quotes[0], q)
            if joined is not None:
                quotes[0] = joined
                continue
        quotes.append(q)
    if not quotes:  # a broad question whose best passages are all "Key: value" lines: quote the best one
        quotes.append(make_quote(data, units, candidates[0], check))
    return quotes


def same_work(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Whether passages a and b, as (source, title, text), are the same work in two files (a report
    published as PDF and as Word): files of one title, the words of one within the other's (case and
    line breaks aside)."""
    words = lambda text: " ".join(text.split()).casefold()
    return a[0] != b[0] and a[1] == b[1] and ((x := words(a[2])) in (y := words(b[2])) or y in x)


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


def render_refusal(suggestions: list[str], reason: str) -> str:
    """The reply when the bot declines: why, and what it can answer instead."""
    lines = [reason]
    if suggestions:
        lines.append("You could ask about: " + ", ".join(f"*{escape(s)}*" for s in suggestions) + ".")
    return "\n\n".join(lines)
