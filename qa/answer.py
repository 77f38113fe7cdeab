"""The values the answer stage passes between its steps and returns: quotes, answers, candidates, settings.

The stages: question.py reads the question, ranking.py gathers and ranks the sentences that might
answer it, quoting.py cuts the quotes, decision.py decides whether to answer, render.py writes the
reply; bot.py composes them. Quote text is sliced from the document by offsets, never rebuilt, so
`document.text[q.start:q.end] == q.text` holds by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chunking import SECTION_SEPARATOR


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
    """How many candidates are gathered and quoted (set by hand on the tune halves), and the quoting rule's switch."""

    candidate_chunks: int = 8
    follow_ratio: float = 0.85  # a further quote must be at least this likely, against the first, to be the answer
    context_weight: float = 0.5  # a follow-up's earlier question, beside its own words (vector and BM25)
    # The one hand rule of quoting, kept for what it gains on the tune halves: +4 items net, on
    # governance, ipu and licences (docs/data/rules.json); off only to measure that (bench/ablate_rules.py).
    paragraphs: bool = True  # a broad question ("Tell me about…") is answered with paragraphs


@dataclass(frozen=True, slots=True)
class Candidate:
    row: int  # sentence number in the index
    chunk: int
    score: float
    similarity: float  # cosine of the sentence's quote unit and the query
