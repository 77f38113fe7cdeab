"""The bot: a loaded index, a query encoder, and the question -> answer pipeline."""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .answer import Answer, Candidate, Scoring
from .chunking import ChunkerSettings, sentence_embedding_texts
from .conversation import Message, Resolved, is_ellipsis, resolve
from .corpus import SUFFIXES, Document
from .decision import load_decision, model_key
from .embedding import Embedder, OnnxEmbedder, SentenceTransformerEmbedder
from .errors import CorpusError, InvalidQuestionError, ModelError, QAError, StaleIndexError
from .index import IndexData, load_index, read_manifest, staleness
from .question import Query, asked_kind, asks_broad, dates_missing, question_hints
from .quoting import answer_check, same_work, select_quotes
from .ranking import HAND, Candidates, Ranker, gather, load_ranker, rank
from .render import render, render_refusal
from .retrieval import Passage, Retriever, build_lexicons, load_lexicons, looks_like_names
from .units import Units

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
_WORDS = re.compile(r"[^\W_]{2,}")
_NOT_ABOUT = "My documents do not answer that: nothing in them is about this question."
_NOT_SAID = "My documents do not say that: they mention the topic but not what you asked."
_NO_WORD = "My documents do not answer that: none of the words of your question occur in them."
# Control characters (but tab and newline), lone surrogates, zero-width and bidi controls.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def clean_question(question: object) -> str:
    """The question as plain, single-spaced text; raises InvalidQuestionError when there is none."""
    if not isinstance(question, str):
        raise InvalidQuestionError(f"a question must be text, not {type(question).__name__}")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuestionError(
            f"the question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,} — "
            "ask one question in a sentence or two"
        )
    text = " ".join(_INVISIBLE.sub(" ", unicodedata.normalize("NFC", question)).split())
    if not text:
        raise InvalidQuestionError("the question is empty — type a question about the corpus")
    return text


class Bot:
    """Retrieval and quoting over one loaded index."""

    def __init__(self, data: IndexData, encoder: Embedder, mode: str = "hybrid", scoring: Scoring = Scoring(),
                 decide: bool = True, ranker: Ranker | None = None):
        """ranker: how candidates are ordered (default: the one fitted for the model, else ranking.HAND);
        decide=False answers whatever is found (the tuning tools' setting)."""
        key = model_key(data.manifest["model"]["name"])
        ranker = ranker or load_ranker(key) or HAND
        # One signal alone, for comparison (python -m qa eval --mode): chunk ranking and sentence scoring both.
        if mode == "dense":
            ranker = ranker.without(["lexical"])
        elif mode == "bm25":
            ranker = ranker.without(["similarity", "placed", "plain", "chunk", "similarity_gap", "chunk_gap"])
        self.data, self.encoder, self.scoring, self.ranker = data, encoder, scoring, ranker
        spans = data.unit_spans
        lexicons = load_lexicons(data.lexicon_dir) if data.lexicon_dir else None
        if lexicons is None:  # an index from before lexicons were saved, or from another LEXICON_VERSION
            lexicons = build_lexicons(data.chunks, sentence_embedding_texts(data.chunks, data.documents, spans))
        self.retriever = Retriever(data, lexicons["chunks"], mode)
        self.sentence_lexicon = lexicons["sentences"]
        self.units = Units(data, spans, self.sentence_lexicon.terms)
        self._sections = _sections(data)
        words = getattr(encoder, "words", None)
        self.known_words = words() if words else frozenset()
        self.decision = load_decision(data.manifest["model"]["name"]) if decide else None
        self.decide = decide

    @property
    def manifest(self) -> dict:
        return self.data.manifest

    def document(self, source: str) -> Document:
        """The document as indexed: quotes' offsets are into its text."""
        try:
            return self.data.documents[source]
        except KeyError:
            raise QAError(f"no document {source!r} in the index") from None

    def encode(self, text: str) -> np.ndarray:
        return self.encoder.embed([text])[0]

    def retrieve(self, question: str, k: int = 5) -> list[Passage]:
        """The k best chunks for a question, best first."""
        query = clean_question(question)
        ranked = self.retriever.rank(self.encode(query), self.retriever.lexicon.terms(query), max(1, int(k)))
        return [self.retriever.passage(c, s) for c, s in ranked]

    def ask(self, question: str, history: Sequence[Message] | None = None) -> Answer:
        """Answer with verbatim quotes, say the closest passage is uncertain, or decline; history is the
        chat so far (Gradio messages)."""
        return self.respond(question, history)[0]

    def respond(self, question: str, history: Sequence[Message] | None = None) -> tuple[Answer, dict]:
        """The answer, and the signals its outcome was decided on (empty when nothing was searched)."""
        text = clean_question(question)
        turn = resolve(text, history)
        if turn.kind == "smalltalk":
            return Answer(render_refusal(self.suggestions(), "I answer questions by quoting my documents."),
                          [], True, text), {}
        text = self.retriever.lexicon.correct(turn.query, self.known_words)
        declined = lambda reason: Answer(render_refusal(self.suggestions(), reason), [], True, text, about=turn.about)
        # A question in another script than the documents' (Arabic, Cyrillic, Chinese on an English
        # corpus), none of whose words they contain: the model turns it into noise that lands near some
        # passage. A question of unknown words in the documents' own letters ("Where is the HQ?") is
        # left to the decision, and a follow-up's own words may all be new ("And its budget?").
        # Checked before anything is encoded.
        terms = self.sentence_lexicon.terms(text)
        if (terms and not turn.context and not any(map(self.sentence_lexicon.knows, terms))
                and self.sentence_lexicon.foreign(text)):
            return declined(_NO_WORD), {}
        query = self.query(turn, text, terms)
        candidates, hints = self.candidates(query)[:2]
        if not candidates:
            return declined(_NOT_ABOUT), {}
        quotes = select_quotes(self.data, self.units, candidates, self.scoring, answer_check(hints), query.broad)
        signals = self.signals(query, candidates, quotes)
        if not self.decide:
            outcome = "answered"
        elif self.decision is None:  # a model nobody fitted a decision for: never sure
            outcome = "uncertain"
        else:
            outcome = self.decision.outcome(signals)
        if outcome == "declined":
            if signals["best"] < self.decision.near:
                return declined(_NOT_ABOUT), signals
            # the documents are about this, but do not say it: where they come nearest, not what they say there
            nearest = render_refusal(self.nearest(candidates), _NOT_SAID, lead="The nearest they come:")
            return Answer(nearest, [], True, text, about=turn.about), signals
        if outcome == "uncertain":
            quotes = quotes[:1]  # the one closest passage, under a caveat: more would read as noise
        return Answer(render(quotes, turn.about, uncertain=outcome == "uncertain"), quotes, False, query.text,
                      outcome, turn.about), signals

    def search(self, question: str, history: Sequence[Message] | None = None):
        """What respond searches for a turn, up to the ranked candidates: (query, candidates, hints, gathered),
        or None for small talk. For the fitting tools (bench/fit_ranker.py), which label the candidates."""
        turn = resolve(clean_question(question), history)
        if turn.kind == "smalltalk":
            return None
        text = self.retriever.lexicon.correct(turn.query, self.known_words)
        query = self.query(turn, text, self.sentence_lexicon.terms(text))
        return (query, *self.candidates(query))

    def signals(self, asked: Query, candidates: list[Candidate], quotes: list) -> dict[str, float]:
        """What the answer-or-decline decision looks at (decision.SIGNALS), for the first candidate.

        For a follow-up, "best" is also measured against the earlier question alone: "And the address?"
        is near the documents when the thread is, though its own few words are near nothing.
        """
        best = max(c.similarity for c in candidates[:3])
        if asked.context_vector is not None:
            rows = [c.row for c in candidates[:3]]
            best = max(best, float(self.data.similarity(rows, asked.context_vector).max()))
        lexicon = self.sentence_lexicon
        first = candidates[0]
        overlap = self._overlap(asked, first.row)
        terms, present, total, names = overlap
        share = lambda found: sum(map(found, names)) / len(names) if names else 0.0
        # the runner-up is the best *other* passage: a unit overlapping the first (the same sentence quoted
        # with the one before it) is the same answer, not a rival; nor are its words (or more around them) in
        # another file of the same title (a report published as PDF and as Word)
        s0, e0 = self.units[first.row]
        passage = lambda c: ((chunk := self.data.chunks[c.chunk]).source, chunk.title, self.units.text(c.row))
        mine = passage(first)
        rival = next((c for c in candidates[1:] if (c.chunk != first.chunk or not (
            self.units[c.row][0] < e0 and s0 < self.units[c.row][1])) and not same_work(passage(c), mine)), None)
        return {
            "best": best,
            "score": first.score,
            "margin": first.score - rival.score if rival else first.score,
            "support": self.support(asked, candidates, overlap),
            "coverage": sum(lexicon.idf(t) for t in terms if t in present) / total if total else 1.0,
            "names_unquoted": share(lambda ts: any(t not in present for t in ts)),
            "no_date": float(dates_missing(asked.text, quotes)),
        }

    def query(self, turn: Resolved, text: str, terms: list[str]) -> Query:
        """What is searched for a turn: its words (text: typos corrected; terms: its lexicon terms) and, for a
        follow-up, the earlier question it leans on, as one vector (the two added) and two sets of terms."""
        vector = self.encode(text)
        context_terms: list[str] = []
        context = None
        if turn.context:
            context = self.encode(turn.context)
            vector = vector + self.scoring.context_weight * context
            vector = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
            context_terms = self.sentence_lexicon.terms(turn.context)
        # "And the Secretary?" after "How long does the Leader serve?" wants what the earlier question
        # wanted (a duration, a date, a "Key: value" line it named): its form is read from that one
        form = turn.context if turn.context and is_ellipsis(turn.query) else ""
        lexicon = self.sentence_lexicon
        frame = set(lexicon.terms(asked_kind(text)))
        information = tuple(t for t in dict.fromkeys(terms) if t not in frame)
        names = tuple(tuple(ts) for w in looks_like_names(text) if (ts := lexicon.terms(w)))
        return Query(text, vector, terms, context_terms,
                     asks_broad(text, followup=turn.kind == "followup"), context, form, information, names)

    def candidates(self, query: Query) -> tuple[list[Candidate], list, Candidates | None]:
        """The sentences that might answer a query, best first; the hints (the question's form) they were
        described by; and what was gathered (rows and features, in gathering order)."""
        weight = self.scoring.context_weight
        ranked = self.retriever.rank(query.vector, query.terms, self.scoring.candidate_chunks,
                                     query.context_terms, weight)
        lexical = self.sentence_lexicon.scores(query.terms)
        if query.context_terms:
            lexical = lexical + weight * self.sentence_lexicon.scores(query.context_terms)
        hints = question_hints(query.form or query.text, self.sentence_lexicon.terms)
        found = gather(self.data, self.units, self.sentence_lexicon, query, lexical, ranked, hints,
                       self.scoring.candidate_chunks)
        if found is None:
            return [], hints, None
        return [Candidate(int(found.rows[i]), int(found.chunks[i]), score, float(found.similarity[i]))
                for i, score in rank(found, self.ranker)], hints, found

    def _overlap(self, asked: Query, row: int) -> _Overlap:
        """What of the question sentence unit row holds: see _Overlap."""
        terms = list(asked.information)
        return _Overlap(terms, self.units.context_terms(row), sum(map(self.sentence_lexicon.idf, terms)),
                        [list(ts) for ts in asked.names])

    def support(self, asked: Query, candidates: list[Candidate], overlap: _Overlap) -> float:
        """How well the top sentence supports an answer to query, from 0 to 1.

        The similarity of the best sentence, discounted by the share of the question's information
        (IDF-weighted terms) that the top sentence lacks, unless those missing words mean what the
        sentence says anyway ("free speech" ~ "freedom of expression"); a missing name ("on a
        Raspberry Pi", "in 2019") is never excused that way. Words that only name the kind of answer
        ("what year", "where is it based") are not required. overlap: `_overlap` of the question and the
        first candidate.
        """
        best = max(c.similarity for c in candidates[:3])
        lexicon = self.sentence_lexicon
        terms, present, total, name_terms = overlap
        missing = [t for t in terms if t not in present]
        if not missing or not total:
            return best
        # A missing name ("Raspberry Pi", "2019") has no paraphrase to be rescued by; other words may.
        names = {t for ts in name_terms for t in ts}
        unnamed = [t for t in missing if t not in names]
        share_names = sum(lexicon.idf(t) for t in missing if t in names) / total
        share_words = sum(lexicon.idf(t) for t in unnamed) / total
        support = best * (1 - share_names - share_words)
        if not unnamed:
            return support
        words = " ".join(w for w in _WORDS.findall(asked.text) if (t := lexicon.terms(w)) and t[0] in unnamed)
        coverage = max(0.0, float(self.data.similarity(candidates[0].row, self.encode(words))))
        return best * (1 - share_names - share_words * (1 - coverage))

    def nearest(self, candidates: list[Candidate], n: int = 3) -> list[str]:
        """The places ("Title › Section") of the first candidates' chunks, without repeats."""
        places = (self.data.chunks[c.chunk] for c in candidates)
        return list(dict.fromkeys(c.title + (" › " + c.section if c.section else "") for c in places))[:n]

    def suggestions(self, n: int = 5) -> list[str]:
        """Section names to offer when the bot cannot answer."""
        return self._sections[:n]


class _Overlap(NamedTuple):
    """The question against one sentence unit, as the decision's signals and Bot.support read it."""

    terms: list[str]  # the question's terms, less those that only frame it ("what year", "where is it based")
    present: frozenset[str]  # the terms of the unit as the lexicon saw it (with its title and section)
    total: float  # the IDF of terms, summed: the question's information
    names: list[list[str]]  # the terms of each of the question's names ("Raspberry Pi", "2019")


def _sections(data: IndexData) -> list[str]:
    seen: dict[str, None] = {}
    for c in data.chunks:
        name = c.section.split(" › ")[-1] if c.section else ""
        if name:
            seen.setdefault(name)
    return list(seen)


def load(
    index_dir: str | Path = "index",
    corpus_dir: str | Path | None = None,
    check_stale: bool = True,
    mode: str = "hybrid",
    encoder: str = "auto",
) -> Bot:
    """Load the index in index_dir as a Bot.

    check_stale compares the index with its corpus folder (recorded at build time, or corpus_dir)
    and raises StaleIndexError naming what changed. A corpus_dir that does not exist is an error
    (CorpusError); a recorded folder that is gone (an index copied to a server without its corpus)
    is logged as a warning and the documents are not checked. encoder: "auto" (ONNX when the index
    has it, else sentence-transformers), "onnx" or "sentence-transformers".
    """
    manifest = read_manifest(index_dir)
    if check_stale:
        corpus = corpus_dir if corpus_dir is not None else manifest.get("corpus_dir")
        if corpus and not Path(corpus).is_dir():
            if corpus_dir is not None:
                raise CorpusError(
                    f"corpus folder {corpus_dir} does not exist — give the folder the index in {index_dir}/ "
                    f"was built from, or create it and put documents in it ({', '.join(SUFFIXES)})"
                )
            logger.warning("%s/ was built from %s/, which is not here: its documents are not checked for changes",
                           index_dir, corpus)
            corpus = None
        reasons = staleness(manifest, corpus, settings=ChunkerSettings())
        if reasons:
            raise StaleIndexError(
                f"the index in {index_dir}/ is stale: {'; '.join(reasons[:3])}"
                f"{' …' if len(reasons) > 3 else ''} — run: python -m qa build --corpus {corpus} --index {index_dir}"
            )
    data = load_index(index_dir)
    return Bot(data, _encoder(data, encoder), mode=mode)


def _encoder(data: IndexData, choice: str) -> Embedder:
    name, dim = data.manifest["model"]["name"], data.manifest["model"]["dim"]
    if choice in ("auto", "onnx") and data.encoder_dir is not None:
        try:
            return OnnxEmbedder(data.encoder_dir, name, dim)
        except Exception as e:  # onnxruntime missing or the export unreadable: use the reference
            if choice == "onnx":
                raise QAError(f"cannot use the ONNX query encoder in {data.encoder_dir}: {e}") from e
            logger.warning("ONNX query encoder unavailable (%s); using sentence-transformers", e)
    elif choice == "onnx":
        raise QAError(f"the index in {data.folder}/ has no ONNX query encoder — rebuild it with python -m qa build")
    try:
        return SentenceTransformerEmbedder(name)
    except ModelError as e:  # built with a model that is not here: its vectors are of no use without it
        raise StaleIndexError(
            f"the index in {data.folder}/ was built with model {name!r}, which is not available here ({e}) — "
            f"run: python -m qa build --index {data.folder}"
        ) from e
