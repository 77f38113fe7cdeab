"""The ONNX query encoder gives sentence-transformers' vectors, and "auto" falls back cleanly without it."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

import qa
from qa.chunking import embedding_text
from qa.embedding import OnnxEmbedder, SentenceTransformerEmbedder
from qa.index import load_index

from conftest import DEV_SET

MIN_COSINE = 0.9999
QUESTION = "How many member parliaments does the IPU have?"


def dev_turns() -> list[str]:
    items = [json.loads(line) for line in DEV_SET.read_text("utf-8").splitlines() if line.strip()]
    return [turn for item in items for turn in item["turns"]]


@pytest.fixture(scope="module")
def reference(seed_bot) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(seed_bot.manifest["model"]["name"])


def _assert_same_vectors(texts: list[str], expected: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (expected * got).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, f"cosine {cosines[worst]:.6f} for {texts[worst]!r}"


def test_the_seed_index_answers_with_the_onnx_encoder(seed_bot):
    assert isinstance(seed_bot.encoder, OnnxEmbedder)


def test_onnx_matches_sentence_transformers_on_every_seed_chunk(seed_bot, reference):
    texts = [embedding_text(c.title, c.section, c.text) for c in seed_bot.data.chunks]
    assert len(texts) >= 10
    # in one padded batch (as a build would) and one at a time (as a query is)
    _assert_same_vectors(texts, reference.embed(texts), seed_bot.encoder.embed(texts))
    singles = np.stack([seed_bot.encoder.embed([t])[0] for t in texts])
    _assert_same_vectors(texts, reference.embed(texts), singles)


def test_onnx_matches_sentence_transformers_on_every_dev_question(seed_bot, reference):
    texts = dev_turns()
    expected = reference.embed(texts)
    _assert_same_vectors(texts, expected, np.stack([seed_bot.encode(t) for t in texts]))
    _assert_same_vectors(texts, expected, seed_bot.encoder.embed(texts))


def test_onnx_batches_keep_the_callers_order(seed_bot):
    """Texts are batched by length inside embed(); rows must still come back in input order."""
    texts = ["short", "a much longer text about the Inter-Parliamentary Union and its member parliaments " * 3,
             "medium length question about Geneva?", "x"]
    batch = seed_bot.encoder.embed(texts, batch_size=2)
    for row, text in zip(batch, texts):
        np.testing.assert_allclose(row, seed_bot.encoder.embed([text])[0], atol=1e-5)
    assert seed_bot.encoder.embed([]).shape == (0, seed_bot.encoder.dim)


def _answers(bot) -> None:
    answer = bot.ask(QUESTION)
    assert not answer.abstained
    assert any("179" in q.text for q in answer.quotes)


def test_auto_uses_sentence_transformers_when_the_index_has_no_onnx_encoder(seed_corpus, tmp_path, caplog):
    index = tmp_path / "index"
    qa.build_index(corpus_dir=seed_corpus, index_dir=index, query_encoder=False)
    assert "encoder" not in json.loads((index / "manifest.json").read_text())["files"]

    with caplog.at_level(logging.WARNING):
        bot = qa.load(index, encoder="auto")
    assert isinstance(bot.encoder, SentenceTransformerEmbedder)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing is wrong: no warning
    _answers(bot)

    with pytest.raises(qa.QAError, match="no ONNX query encoder"):
        qa.load(index, encoder="onnx")


def test_auto_falls_back_with_a_warning_when_onnxruntime_cannot_be_imported(seed_index, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError

    with caplog.at_level(logging.WARNING, logger="qa"):
        bot = qa.load(seed_index, encoder="auto")
    assert isinstance(bot.encoder, SentenceTransformerEmbedder)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ONNX" in r.getMessage() and "sentence-transformers" in r.getMessage() for r in warnings)
    _answers(bot)

    with pytest.raises(qa.QAError, match="ONNX"):
        qa.load(seed_index, encoder="onnx")


def test_a_build_with_the_onnx_embedder_cuts_the_same_chunks(seed_bot, seed_corpus, tmp_path):
    """An embedder passed to build_index (the scale benchmark's ONNX builds) still chunks by the
    model's own tokenizer, so its index holds the chunks a default build holds."""
    report = qa.build_index(corpus_dir=seed_corpus, index_dir=tmp_path / "index", embedder=seed_bot.encoder,
                            query_encoder=False)
    assert report.embedded > 0
    built = load_index(tmp_path / "index")
    assert [(c.start, c.end) for c in built.chunks] == [(c.start, c.end) for c in seed_bot.data.chunks]
