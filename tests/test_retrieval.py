"""Ranking: the three retrieval modes on the seed, and the two pure pieces they share (top_k, rrf)."""

from __future__ import annotations

import numpy as np
import pytest

import qa
from qa.retrieval import MODES, RRF_K, rrf, top_k


@pytest.fixture(scope="module")
def bots(seed_corpus, tmp_path_factory) -> dict:
    """The seed under MiniLM: the cases below were chosen where its dense and BM25 rankings differ
    (how the modes fuse does not depend on the model; which chunks disagree does)."""
    from qa.models import MINILM_MODEL

    index = tmp_path_factory.mktemp("minilm") / "index"
    qa.build_index(corpus_dir=seed_corpus, index_dir=index, model=MINILM_MODEL, query_encoder=False)
    return {mode: qa.load(index, mode=mode) for mode in MODES}


def _chunk_numbers(bot, question: str, k: int) -> list[int]:
    terms = bot.retriever.lexicon.terms(question)
    return [c for c, _ in bot.retriever.rank(bot.encode(question), terms, k)]


@pytest.mark.parametrize("question", ["Where is the IPU based?", "Pommier", "free speech on the internet",
                                      "How many regional hubs were operating in August 2020?"])
def test_dense_and_bm25_modes_rank_by_their_own_signal_alone(bots, question):
    bot = bots["hybrid"]
    qvec, terms = bot.encode(question), bot.retriever.lexicon.terms(question)
    assert _chunk_numbers(bots["dense"], question, 5) == bot.retriever.dense(qvec, 5)[0].tolist()
    assert _chunk_numbers(bots["bm25"], question, 5) == top_k(bot.retriever.lexicon.scores(terms), 5).tolist()


def test_hybrid_puts_first_what_both_signals_rank_high(bots):
    # "Pommier": BM25 finds only the address chunk; dense search ranks it second. Fused, it comes first.
    dense, bm25 = (_chunk_numbers(bots[m], "Pommier", 3) for m in ("dense", "bm25"))
    assert len(bm25) == 1 and dense[0] != bm25[0] and dense[1] == bm25[0]
    assert _chunk_numbers(bots["hybrid"], "Pommier", 3)[0] == bm25[0]
    # with no query term in the corpus, hybrid is dense search alone
    question = "free speech on the internet"
    assert _chunk_numbers(bots["bm25"], question, 5) == []
    assert _chunk_numbers(bots["hybrid"], question, 5) == _chunk_numbers(bots["dense"], question, 5)


def test_modes_differ_where_their_signals_do(bots):
    """A question in words the corpus never uses: BM25 finds nothing, dense search still ranks."""
    question = "zyzzyva quokka"
    assert bots["bm25"].retrieve(question, k=3) == []
    assert len(bots["dense"].retrieve(question, k=3)) == 3
    assert bots["bm25"].ask(question).abstained
    # a rare exact term: BM25 puts its chunk first
    assert "Chem. du Pommier 5" in bots["bm25"].retrieve("Pommier", k=1)[0].text


def test_an_unknown_mode_is_refused_with_the_modes_named(seed_index):
    with pytest.raises(ValueError, match=r"mode must be one of \('hybrid', 'dense', 'bm25'\), not 'semantic'"):
        qa.load(seed_index, mode="semantic")


def test_k_beyond_the_chunks_gives_every_chunk_once_best_first(seed_bot):
    chunks = len(seed_bot.data.chunks)
    passages = seed_bot.retrieve("parliaments", k=10 * chunks)
    assert len(passages) == chunks
    assert len({(p.source, p.start) for p in passages}) == chunks
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    assert len(seed_bot.retrieve("parliaments", k=0)) == 1  # at least one


def test_top_k_keeps_positive_scores_and_breaks_ties_by_position():
    scores = np.array([0.5, 1.0, 0.5, 0.0, -1.0, 0.5, 2.0], dtype=np.float32)
    assert top_k(scores, 1).tolist() == [6]
    assert top_k(scores, 3).tolist() == [6, 1, 0]  # of the three tied at 0.5, the first
    assert top_k(scores, 4).tolist() == [6, 1, 0, 2]
    assert top_k(scores, 100).tolist() == [6, 1, 0, 2, 5]  # k beyond the hits: only positive scores
    assert top_k(np.zeros(5, np.float32), 3).tolist() == []
    ties = np.ones(1000, np.float32)
    assert top_k(ties, 10).tolist() == list(range(10))  # the partition must not lose the tie order


def test_rrf_sums_reciprocal_ranks_and_ties_keep_first_seen_order():
    fused = rrf([[3, 1, 2], [1, 4]])
    assert fused == pytest.approx({3: 1 / (RRF_K + 1), 1: 1 / (RRF_K + 2) + 1 / (RRF_K + 1),
                                   2: 1 / (RRF_K + 3), 4: 1 / (RRF_K + 2)})
    assert max(fused, key=fused.get) == 1  # found by both rankings beats first in one
    swapped = rrf([[1, 2], [2, 1]])
    assert swapped[1] == swapped[2] and list(swapped) == [1, 2]
    assert rrf([]) == {} and rrf([[], [5]]) == {5: 1 / (RRF_K + 1)}
