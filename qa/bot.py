"""The bot: a loaded index, a query encoder, and the question -> answer pipeline."""

from __future__ import annotations

import logging
import re
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .answer import Answer, Candidate, Scoring
from .chunking import ChunkerSettings, sentence_embedding_texts
from .conversation import Message, Resolved, is_ellipsis, resolve
from .corpus import SUFFIXES, Document
from .decision import ANSWER_ALL, NEVER_SURE, Evidence, load_decision, model_key
from .embedding import Embedder, OnnxEmbedder, SentenceTransformerEmbedder
from .errors import CorpusError, InvalidQuestionError, ModelError, QAError, StaleIndexError
from .index import IndexData, load_index, read_manifest, staleness
from .question import Query, asked_kind, asks_broad, question_hints
from .quoting import select_quotes
from .ranking import HAND, Candidates, Ranker, gather, load_ranker, rank
from .render import render, render_refusal
from .retrieval import Passage, Retriever, build_lexicons, load_lexicons, looks_like_names
from .units import Units

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
_SMALLTALK = "I answer questions by quoting my documents."
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
        # a model nobody fitted a decision for: its scores mean nothing yet, so no answer is sure
        self.decision = (load_decision(data.manifest["model"]["name"]) or NEVER_SURE) if decide else ANSWER_ALL
        self.evidence = Evidence(data, self.units, self.sentence_lexicon, self.encode)
        self._encoded: dict[str, np.ndarray] = {}  # vectors encoded ahead, by text (encoding)

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
        vector = self._encoded.get(text)
        return vector if vector is not None else self.encoder.embed([text])[0]

    @contextmanager
    def encoding(self, texts: Sequence[str]) -> Iterator[None]:
        """Within the block, encode gives the vectors of texts from one call of the encoder (qa.engine's batches:
        several queries at once cost far less CPU each). A batch's vectors are those of the texts one by one
        to float rounding (|difference| < 1e-7), as padding changes the order of the sums."""
        new = [t for t in dict.fromkeys(texts) if t not in self._encoded]
        if len(new) < 2:  # one text: encode's own call, with nothing to share
            new = []
        else:
            try:
                self._encoded.update(zip(new, self.encoder.embed(new)))
            except Exception as e:  # each ask then encodes its own, and says what fails
                logger.warning("could not encode %d questions at once (%s); encoding them one by one", len(new), e)
                new = []
        try:
            yield
        finally:
            for text in new:  # only this call's: another thread's batch may still need its own
                self._encoded.pop(text, None)

    def query_texts(self, question: object, history: Sequence[Message] | None = None) -> list[str]:
        """The texts ask encodes for this turn: its words and, for a follow-up, the question it leans on."""
        turn, text, terms = self.read(question, history)
        if self._turned_away(turn, text, terms):
            return []
        return [text, turn.context] if turn.context else [text]

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
        """The answer, and the signals its outcome was decided on (empty when nothing was searched).

        query_texts says what this encodes, for the engine's batches: keep the two in step."""
        turn, text, terms = self.read(question, history)
        declined = lambda reason: Answer(render_refusal(self.suggestions(), reason), [], True, text, about=turn.about)
        if reason := self._turned_away(turn, text, terms):
            return declined(reason), {}
        query = self.query(turn, text, terms)
        candidates = self.candidates(query)[0]
        if not candidates:
            return declined(_NOT_ABOUT), {}
        quotes = select_quotes(self.data, self.units, candidates, self.scoring, query.broad)
        signals = self.evidence.signals(query, candidates, quotes)
        outcome = self.decision.outcome(signals)
        if outcome == "declined" and self.decision.nothing_near(signals):
            return declined(_NOT_ABOUT), signals
        if outcome == "declined":  # about this, but not saying it: where they come nearest, not what they say
            nearest = render_refusal(self.nearest(candidates), _NOT_SAID, lead="The nearest they come:")
            return Answer(nearest, [], True, text, about=turn.about), signals
        quotes = quotes[:1] if outcome == "uncertain" else quotes  # more than one closest passage reads as noise
        reply = render(quotes, turn.about, uncertain=outcome == "uncertain")
        return Answer(reply, quotes, False, query.text, outcome, turn.about), signals

    def read(self, question: str, history: Sequence[Message] | None = None) -> tuple[Resolved, str, list[str]]:
        """The turn a question makes in the chat, its words with typos corrected, and their lexicon terms."""
        turn = resolve(clean_question(question), history)
        if turn.kind == "smalltalk":
            return turn, turn.query, []
        text = self.retriever.lexicon.correct(turn.query, self.known_words)
        return turn, text, self.sentence_lexicon.terms(text)

    def _turned_away(self, turn: Resolved, text: str, terms: list[str]) -> str | None:
        """Why a turn is declined before anything is encoded, or None: small talk; or a question in another
        script than the documents' (Arabic, Cyrillic, Chinese on an English corpus), none of whose words they
        contain, which the model turns into noise that lands near some passage. A question of unknown words
        in the documents' own letters ("Where is the HQ?") is left to the decision, and a follow-up's own
        words may all be new ("And its budget?")."""
        if turn.kind == "smalltalk":
            return _SMALLTALK  # declined like the rest: a small-talk turn has no `about`
        if (terms and not turn.context and not any(map(self.sentence_lexicon.knows, terms))
                and self.sentence_lexicon.foreign(text)):
            return _NO_WORD
        return None

    def search(self, question: str, history: Sequence[Message] | None = None):
        """What respond searches for a turn, up to the ranked candidates: (query, candidates, hints, gathered),
        or None for small talk. For the fitting tools (qa/fit_ranker.py), which label the candidates."""
        turn, text, terms = self.read(question, history)
        if turn.kind == "smalltalk":
            return None
        query = self.query(turn, text, terms)
        return (query, *self.candidates(query))

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

    def nearest(self, candidates: list[Candidate], n: int = 3) -> list[str]:
        """The places ("Title › Section") of the first candidates' chunks, without repeats."""
        places = (self.data.chunks[c.chunk] for c in candidates)
        return list(dict.fromkeys(c.title + (" › " + c.section if c.section else "") for c in places))[:n]

    def suggestions(self, n: int = 5) -> list[str]:
        """Section names to offer when the bot cannot answer."""
        return self._sections[:n]


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
    **settings,
) -> Bot:
    """Load the index in index_dir as a Bot.

    check_stale compares the index with its corpus folder (recorded at build time, or corpus_dir)
    and raises StaleIndexError naming what changed. A corpus_dir that does not exist is an error
    (CorpusError); a recorded folder that is gone (an index copied to a server without its corpus)
    is logged as a warning and the documents are not checked. encoder: "auto" (ONNX when the index
    has it, else sentence-transformers), "onnx" or "sentence-transformers". settings: the Bot's others
    (scoring, decide, ranker).
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
    return Bot(data, _encoder(data, encoder), mode=mode, **settings)


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
