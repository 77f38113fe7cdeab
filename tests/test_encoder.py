"""The ONNX encoder gives sentence-transformers' vectors (queries, batches, sentences pooled in their chunk),
is exported once per model so later builds run without torch, and "auto" falls back cleanly without it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import qa
from qa.chunking import embedding_text
from qa.embedding import OnnxEmbedder, SentenceTransformerEmbedder
from qa.index import SENTENCE_DESIGN, load_index
from qa.models import DEFAULT_MODEL, MINILM_MODEL, model_cache

from conftest import DEV_SET, ROOT

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


def _late_inputs(data):
    """Each chunk's embedding text and its rows' spans in it, as a build pools them."""
    texts = [embedding_text(c.title, c.section, c.text) for c in data.chunks]
    spans = []
    for i, (c, text) in enumerate(zip(data.chunks, texts)):
        offset = len(text) - len(c.text)
        units = data.unit_spans[data.sentence_rows[i] : data.sentence_rows[i + 1]]
        spans.append([(offset + max(s, c.start) - c.start, offset + min(e, c.end) - c.start) for s, e in units])
    return texts, spans


def test_sentences_pooled_in_their_chunk_match_sentence_transformers(seed_bot, reference):
    """Late chunking: one pass over each chunk, its tokens' vectors pooled over each sentence's span.
    ONNX in padded batches gives sentence-transformers' token vectors pooled the same way."""
    texts, spans = _late_inputs(seed_bot.data)
    expected_chunks, expected_rows = reference.embed_spans(texts, spans)
    chunks, rows = seed_bot.encoder.embed_spans(texts, spans, batch_size=4)
    _assert_same_vectors(texts, expected_chunks, chunks)
    _assert_same_vectors(texts, reference.embed(texts), chunks)  # the chunk vector is embed()'s
    flat = [t[a:b] for t, own in zip(texts, spans) for a, b in own]
    _assert_same_vectors(flat, np.concatenate(expected_rows), np.concatenate(rows))
    if SENTENCE_DESIGN.startswith("late"):  # and the index holds exactly these
        _assert_same_vectors(flat, np.concatenate(expected_rows), np.asarray(seed_bot.data.sentence_vectors))


def test_a_span_is_pooled_from_its_own_tokens(seed_bot):
    text = "Inter-Parliamentary Union\nThe IPU was founded in 1889. It has its seat in Geneva."
    first = (text.index("The IPU"), text.index(" It has"))
    second = (first[1] + 1, len(text))
    _, [rows] = seed_bot.encoder.embed_spans([text], [[first, second]])
    geneva = seed_bot.encode("Where is the seat of the IPU? In Geneva.")
    founded = seed_bot.encode("When was the IPU founded? In 1889.")
    assert rows[1] @ geneva > rows[0] @ geneva and rows[0] @ founded > rows[1] @ founded
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


_IMPORTED = ("import sys, qa; report = qa.build_index(sys.argv[1], sys.argv[2], model=sys.argv[3]); "
             "print(report.embedded, *sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
             "if m in sys.modules))")


def _build_in_a_new_process(corpus, index, model, env) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _IMPORTED, str(corpus), str(index), model], env=env,
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_only_the_first_build_on_a_machine_imports_torch(seed_corpus, tmp_path):
    """The first build exports the model to ONNX into the model cache (torch); every later build, into
    any index folder, embeds with onnxruntime alone. MiniLM and an empty cache: a machine's first build."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = _build_in_a_new_process(seed_corpus, tmp_path / "first", MINILM_MODEL, env)
    assert first[1:] == ["sentence_transformers", "torch", "transformers"]
    [export] = (tmp_path / "cache" / "qa" / "models").glob("onnx-*")
    second = _build_in_a_new_process(seed_corpus, tmp_path / "second", MINILM_MODEL, env)
    assert second == first[:1]  # the same texts embedded, and neither torch nor sentence-transformers imported
    # The index carries the encoder (hard links of the cached export), so it answers where it is copied.
    encoder = load_index(tmp_path / "second").encoder_dir
    assert all(os.path.samefile(encoder / name, export / name) for name in ("model.onnx", "model.data"))
    bot = qa.load(tmp_path / "second")
    assert isinstance(bot.encoder, OnnxEmbedder) and bot.encoder.dim == 384
    _answers(bot)


def test_a_build_of_the_default_model_after_the_first_does_not_import_torch(seed_index, seed_corpus, tmp_path):
    assert any(model_cache().glob("onnx-all-mpnet-base-v2-*"))  # exported by the seed index's build
    built = _build_in_a_new_process(seed_corpus, tmp_path / "index", DEFAULT_MODEL, dict(os.environ))
    assert len(built) == 1 and int(built[0]) > 0
    assert load_index(tmp_path / "index").manifest["counts"] == load_index(seed_index).manifest["counts"]
