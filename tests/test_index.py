"""The index folder: manifest, records, known answers, staleness, atomic and incremental rebuilds.

Everything uses the real packaged model. Rebuild tests count what a build embeds with a wrapper
around it (`CountingEmbedder`), so they chunk with the model's tokenizer exactly as production does;
the sha256-seeded fake stands only for what this machine cannot provide: an embedder that fails,
and a second model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import qa
from qa.chunking import CHUNKER_VERSION, ChunkerSettings, embedding_text, sentence_embedding_texts
from qa.embedding import OnnxEmbedder
from qa.extract import EXTRACTOR_VERSION
from qa.models import DEFAULT_MODEL
from qa.build import build_index
from qa.index import (
    FORMAT_VERSION, LOCK, MANIFEST, SENTENCE_DESIGN, SENTENCE_DESIGNS, load_index, read_manifest, staleness,
)

from conftest import DATA, SEED_FILE, copy_index

MESSY = DATA / "messy"
FIX = "python -m qa build"


class CountingEmbedder:
    """The model as a build runs it (its cached ONNX export), recording every text a build asks it to embed.

    Its name is the model's, so a build cuts chunks with the model's tokenizer as production does.
    Results are memoised across instances (the model gives a text the same vectors every time): the
    suite pays once per distinct text however many rebuilds it runs.
    """

    _model: OnnxEmbedder | None = None
    _memo: dict[tuple, tuple] = {}
    _lock = threading.Lock()  # builds run in two threads in one test

    def __init__(self):
        with CountingEmbedder._lock:
            if CountingEmbedder._model is None:
                CountingEmbedder._model = OnnxEmbedder.for_model(DEFAULT_MODEL)
            self.name, self.dim = DEFAULT_MODEL, CountingEmbedder._model.dim
        self.texts: list[str] = []

    def embed(self, texts):
        texts = list(texts)
        return self.embed_spans(texts, [()] * len(texts))[0]

    def embed_spans(self, texts, spans):
        texts, spans = list(texts), [tuple(s) for s in spans]
        self.texts += texts
        with CountingEmbedder._lock:
            new = [k for k in dict.fromkeys(zip(texts, spans)) if k not in self._memo]
            if new:
                vectors, pooled = self._model.embed_spans([t for t, _ in new], [s for _, s in new])
                self._memo.update(zip(new, zip(vectors, pooled)))
        found = [self._memo[k] for k in zip(texts, spans)]
        return (np.array([v for v, _ in found], dtype=np.float32).reshape(len(texts), self.dim),
                [p for _, p in found])


class FakeEmbedder:
    """Deterministic unit vectors seeded by each text's sha256: a second model (none is installed
    here), or, with fail=True, a model that falls over mid-build."""

    def __init__(self, name: str = "fake-sha256", dim: int = 32, fail: bool = False):
        self.name, self.dim, self.fail = name, dim, fail
        self.texts: list[str] = []

    def embed(self, texts):
        if self.fail:
            raise RuntimeError("the embedder fell over")
        texts = list(texts)
        self.texts += texts
        rows = [np.random.default_rng(list(hashlib.sha256(t.encode()).digest())).standard_normal(self.dim)
                for t in texts]
        m = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return m / np.linalg.norm(m, axis=1, keepdims=True)


def make_corpus(folder: Path) -> Path:
    """The seed plus two messy documents and one unusable file."""
    folder.mkdir(parents=True)
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    shutil.copy(MESSY / "wrapped-crlf.txt", folder / "wrapped-crlf.txt")
    (folder / "notes").mkdir()
    shutil.copy(MESSY / "cafe-notes.md", folder / "notes" / "cafe-notes.md")
    (folder / "empty.txt").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A three-document corpus built once with the real model (no ONNX export): (corpus, index)."""
    root = tmp_path_factory.mktemp("small")
    corpus = make_corpus(root / "corpus")
    build_index(corpus_dir=corpus, index_dir=root / "index", query_encoder=False)
    return corpus, root / "index"


@pytest.fixture
def small_copy(small, tmp_path):
    """A private copy of `small` that a test may change; load it with corpus_dir=corpus."""
    corpus, index = small
    shutil.copytree(corpus, tmp_path / "corpus")
    shutil.copytree(index, tmp_path / "index")
    return tmp_path / "corpus", tmp_path / "index"


def data_files(index: Path) -> set[str]:
    return {p.name for p in index.iterdir()}


# --- what is on disk --------------------------------------------------------------------------


def test_manifest_records_what_the_index_was_built_from(seed_index):
    manifest = json.loads((seed_index / MANIFEST).read_text("utf-8"))
    text = SEED_FILE.read_text("utf-8")
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": DEFAULT_MODEL, "dim": 768}
    assert manifest["chunker"] == ChunkerSettings().as_dict()
    assert {"version", "max_chars", "min_chars", "max_tokens"} <= manifest["chunker"].keys()
    assert manifest["documents"] == {
        SEED_FILE.name: {"sha256": hashlib.sha256(text.encode()).hexdigest(), "title": "Inter-Parliamentary Union",
                         "chars": len(text), "file_sha256": hashlib.sha256(SEED_FILE.read_bytes()).hexdigest(),
                         "pages": 0},
    }
    assert manifest["extractor"] == EXTRACTOR_VERSION
    assert manifest["skipped"] == {}
    built_at = datetime.fromisoformat(manifest["built_at"])
    assert built_at.tzinfo is not None
    assert isinstance(manifest["build_seconds"], float)
    chunk_lines = (seed_index / manifest["files"]["chunks"]["name"]).read_text("utf-8").splitlines()
    sentences = sum(len(json.loads(line)["sentences"]) for line in chunk_lines)
    assert manifest["counts"] == {"documents": 1, "chunks": len(chunk_lines), "sentences": sentences}
    assert manifest["counts"]["chunks"] >= 10
    for key in ("documents", "chunks", "vectors", "sentences"):
        entry = manifest["files"][key]
        path = seed_index / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert (seed_index / manifest["files"]["encoder"]["name"] / "model.onnx").is_file()


def test_records_are_json_lines_and_arrays_without_pickle(seed_index):
    manifest = read_manifest(seed_index)
    files = manifest["files"]
    names = data_files(seed_index)
    assert names == {MANIFEST, LOCK} | {entry["name"] for entry in files.values()}
    assert not [p for p in seed_index.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    documents = [json.loads(line) for line in (seed_index / files["documents"]["name"]).read_text("utf-8").splitlines()]
    assert [d["source"] for d in documents] == [SEED_FILE.name]
    text = documents[0]["text"]
    assert text == SEED_FILE.read_text("utf-8")
    for line in (seed_index / files["chunks"]["name"]).read_text("utf-8").splitlines():
        record = json.loads(line)
        assert {"id", "source", "title", "section", "start", "end", "text", "sentences"} <= record.keys()
        assert text[record["start"] : record["end"]] == record["text"]
    vectors = np.load(seed_index / files["sentences"]["name"], allow_pickle=False)
    assert vectors.shape == (manifest["counts"]["sentences"], 768) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert ("plain" in files) == SENTENCE_DESIGN.endswith("plain")
    if "plain" in files:  # the same sentences, read alone
        plain = np.load(seed_index / files["plain"]["name"], allow_pickle=False)
        assert plain.shape == vectors.shape and np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-4)
        assert not np.allclose(plain, vectors, atol=1e-3)
    lexicon = seed_index / files["lexicon"]["name"]
    assert {p.suffix for p in lexicon.rglob("*") if p.is_file()} == {".json", ".npy"}
    for p in lexicon.rglob("*.npy"):
        np.load(p, allow_pickle=False)


def test_saved_lexicons_are_the_ones_a_load_would_build(seed_bot):
    """BM25 indexes are saved at build and read at load (seconds at 100k chunks, not 15); same result."""
    from qa.chunking import sentence_embedding_texts
    from qa.retrieval import build_lexicons

    assert seed_bot.data.lexicon_dir is not None
    data = seed_bot.data
    built = build_lexicons(data.chunks, sentence_embedding_texts(data.chunks, data.documents))
    for name, loaded in (("chunks", seed_bot.retriever.lexicon), ("sentences", seed_bot.sentence_lexicon)):
        fresh = built[name]
        assert (loaded.vocab, loaded.df, loaded.words, loaded.size) == (fresh.vocab, fresh.df, fresh.words, fresh.size)
        for question in ["How many member parliaments does the IPU have?", "co-ordinated hubs", "adress"]:
            terms = fresh.terms(question)
            np.testing.assert_allclose(loaded.scores(terms), fresh.scores(terms), rtol=1e-6)
            assert loaded.correct(question) == fresh.correct(question)


def test_an_index_without_saved_lexicons_still_loads_and_answers(seed_index, seed_bot, tmp_path, monkeypatch):
    """Indexes written before lexicons were saved, or by another LEXICON_VERSION, build them at load."""
    import qa.retrieval

    older = tmp_path / "older"
    copy_index(seed_index, older)
    manifest = read_manifest(older)
    del manifest["files"]["lexicon"]
    (older / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    question = "Who publishes the World e-Parliament Report?"
    expected = seed_bot.ask(question).text
    bot = qa.load(older)
    assert bot.data.lexicon_dir is None and bot.ask(question).text == expected
    monkeypatch.setattr(qa.retrieval, "LEXICON_VERSION", qa.retrieval.LEXICON_VERSION + 1)
    assert qa.retrieval.load_lexicons(seed_bot.data.lexicon_dir) is None
    assert qa.load(seed_index).ask(question).text == expected


# --- known answers on the seed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, expected",
    [
        ("What is the address of the Inter-Parliamentary Union?", "Chem. du Pommier 5"),
        ("How many member parliaments does the IPU have?", "179 national member parliaments"),
        ("How many delegates does the IPU convene twice a year?", "1,500 parliamentary delegates"),
        ("How many regional hubs were operating in August 2020?", "eight regional and thematic parliamentary hubs"),
        ("What does the IPU do about the sustainable development goals?", "sustainable development goals (SDGs)"),
    ],
)
def test_known_answer_is_retrieved_first(seed_bot, question, expected):
    best = seed_bot.retrieve(question)[0]
    assert expected in best.text
    assert seed_bot.data.documents[best.source].text[best.start : best.end] == best.text


def test_retrieval_knows_sections(seed_bot):
    best = seed_bot.retrieve("What does the IPU do to protect freedom of expression?")[0]
    assert best.section == "Digital policy issues › Freedom of expression"
    assert best.title == "Inter-Parliamentary Union"


def test_a_large_corpus_gets_an_hnsw_index_that_answers_like_exact_search(seed_index, seed_bot, tmp_path, monkeypatch):
    """The approximate index, on the seed: only its size is beside the point, so the threshold is lowered."""
    import faiss

    import qa.index
    import qa.vectors

    folder = tmp_path / "index"
    copy_index(seed_index, folder)
    monkeypatch.setattr(qa.vectors, "HNSW_THRESHOLD", 2)
    report = build_index(corpus_dir=seed_bot.manifest["corpus_dir"], index_dir=folder)
    assert report.index_type == "hnsw" and report.embedded == 0  # same vectors, other index
    assert read_manifest(folder)["index_type"] == "hnsw"
    bot = qa.load(folder)
    assert isinstance(bot.data.vectors, faiss.IndexHNSWFlat) and bot.data.vectors.hnsw.efSearch == qa.index.HNSW_EF_SEARCH
    for question in ["How many member parliaments does the IPU have?", "Who publishes the World e-Parliament Report?",
                     "Where is the IPU based?"]:
        assert [p.start for p in bot.retrieve(question, 5)] == [p.start for p in seed_bot.retrieve(question, 5)]
        assert bot.ask(question).text == seed_bot.ask(question).text


# --- staleness ------------------------------------------------------------------------------------


def test_a_fresh_index_loads_and_answers(small_copy):
    corpus, index = small_copy
    assert staleness(read_manifest(index), corpus) == []
    bot = qa.load(index, corpus_dir=corpus)
    best = bot.retrieve("Who founded the Lakeside Observatory?")[0]
    assert best.source == "wrapped-crlf.txt" and "Émile Roux" in best.text
    assert bot.manifest["skipped"] == {"empty.txt": hashlib.sha256(b"").hexdigest()}


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda c: (c / SEED_FILE.name).write_text(SEED_FILE.read_text("utf-8") + "\nA new sentence.\n", "utf-8"),
         f"{SEED_FILE.name} changed"),
        (lambda c: (c / "notes" / "new.md").write_text("# New\n\nA new document.\n", "utf-8"),
         "notes/new.md was added"),
        (lambda c: (c / "notes" / "cafe-notes.md").unlink(), "notes/cafe-notes.md was removed"),
        (lambda c: (c / "empty.txt").write_text("Not empty\n\nAny more.\n", "utf-8"), "empty.txt changed"),
        (lambda c: (c / "binary.txt").write_bytes(b"\x00\x01"), "binary.txt was added"),
    ],
    ids=["edited", "added", "removed", "skipped-file-fixed", "unusable-added"],
)
def test_stale_index_names_the_file_and_the_fix(small_copy, change, reason):
    corpus, index = small_copy
    change(corpus)
    with pytest.raises(qa.StaleIndexError) as e:
        qa.load(index, corpus_dir=corpus)
    assert reason in str(e.value) and FIX in str(e.value)


def test_a_corpus_folder_that_is_not_there_is_an_error_or_a_warning(small_copy, tmp_path, caplog):
    """Named by the caller, a missing folder is a mistake (a typo); recorded at build time, it is an index
    copied to a server without its documents: served, with a warning that they are not checked."""
    corpus, index = small_copy
    with pytest.raises(qa.CorpusError) as e:
        qa.load(index, corpus_dir=tmp_path / "typo")
    assert f"corpus folder {tmp_path / 'typo'} does not exist" in str(e.value)
    _edit_manifest(lambda m: m.update(corpus_dir=str(tmp_path / "gone")))(index)
    with caplog.at_level("WARNING", logger="qa.bot"):
        bot = qa.load(index)
    assert f"built from {tmp_path / 'gone'}/, which is not here" in caplog.text
    assert "Émile Roux" in bot.retrieve("Who founded the Lakeside Observatory?")[0].text
    assert qa.load(index, corpus_dir=corpus).data.chunks == bot.data.chunks  # the folder named is checked instead


def test_rebuild_after_an_edit_embeds_only_that_document(small_copy):
    corpus, index = small_copy
    path = corpus / "wrapped-crlf.txt"
    path.write_bytes(path.read_bytes().replace(b"ninety minutes", b"two hours"))
    with pytest.raises(qa.StaleIndexError, match="wrapped-crlf.txt changed"):
        qa.load(index, corpus_dir=corpus)
    report = build_index(corpus_dir=corpus, index_dir=index, query_encoder=False)
    assert 0 < report.embedded <= 4  # the edited chunk and sentence (and its quote unit), nothing else
    assert report.reused > 10 * report.embedded
    best = qa.load(index, corpus_dir=corpus).retrieve("How long does an evening tour last?")[0]
    assert "Tours last two hours" in best.text


def test_progress_bar_only_when_asked(small_copy, capfd):
    corpus, index = small_copy
    (corpus / "notes" / "new.md").write_text("# New\n\nA sentence to embed.\n", "utf-8")
    build_index(corpus_dir=corpus, index_dir=index, query_encoder=False, progress=True)  # the CLI asks on a TTY
    err = capfd.readouterr().err
    assert re.search(r"embedding: 100%.* (\d+)/\1 \[.*text/s", err), err  # texts/s, and the time left before
    (corpus / "notes" / "new.md").write_text("# New\n\nAnother sentence to embed.\n", "utf-8")
    seen = []
    build_index(corpus_dir=corpus, index_dir=index, query_encoder=False, progress=lambda *a: seen.append(a))
    assert "embedding" not in capfd.readouterr().err
    # the app's rebuild passes a function: (texts embedded, texts to embed)
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0 and {total for _, total in seen} == {seen[-1][1]}


def test_model_and_chunker_mismatch_are_reported(small_copy):
    _, index = small_copy
    manifest = read_manifest(index)
    assert staleness(manifest, model=DEFAULT_MODEL, settings=ChunkerSettings()) == []
    [reason] = staleness(manifest, model="sentence-transformers/all-MiniLM-L6-v2")
    assert DEFAULT_MODEL in reason and "all-MiniLM-L6-v2" in reason
    assert staleness(manifest, settings=ChunkerSettings(max_chars=300)) == ["the chunker settings changed"]


def test_an_index_of_the_previous_format_is_stale_with_the_fix_and_is_rebuilt(small_copy):
    """Format 1 (no quote units stored, sentences embedded twice) is never read as this format."""
    corpus, index = small_copy
    _edit_manifest(lambda m: m.update(format_version=1))(index)
    with pytest.raises(qa.StaleIndexError) as e:
        qa.load(index, corpus_dir=corpus)
    assert "an older version of qa (index format 1; this version reads format 2)" in str(e.value)
    assert FIX in str(e.value)
    report = build_index(corpus_dir=corpus, index_dir=index, query_encoder=False)
    assert report.reused == 0 and report.embedded >= report.chunks  # nothing of the old format is trusted
    assert qa.load(index, corpus_dir=corpus).data.unit_spans


def test_an_index_whose_sentence_vectors_were_made_another_way_is_stale(small_copy):
    corpus, index = small_copy
    other = next(d for d in SENTENCE_DESIGNS if d != SENTENCE_DESIGN)
    _edit_manifest(lambda m: m.update(sentence_vectors=other))(index)
    with pytest.raises(qa.StaleIndexError, match=re.escape(f"made as {other!r}; this version makes them as")):
        qa.load(index, corpus_dir=corpus)


def test_quote_units_are_stored_as_the_chunker_makes_them(small):
    """The bot reads each row's quote unit from the index; a build works them out once."""
    from qa.chunking import unit_spans

    data = load_index(small[1])
    assert data.unit_spans == unit_spans(data.chunks, data.documents)
    assert len(data.unit_spans) == len(data.sentence_vectors) == data.manifest["counts"]["sentences"]
    assert qa.load(small[1], corpus_dir=small[0]).units.spans == data.unit_spans


def test_vectors_are_mapped_read_only(small):
    data = load_index(small[1])
    assert isinstance(data.sentence_vectors, np.memmap) and not data.sentence_vectors.flags.writeable
    with pytest.raises(ValueError):
        data.sentence_vectors[0, 0] = 1.0


def test_an_index_cut_by_an_older_chunker_is_stale(small_copy):
    corpus, index = small_copy
    _edit_manifest(lambda m: m["chunker"].update(version=CHUNKER_VERSION - 1))(index)
    with pytest.raises(qa.StaleIndexError) as e:
        qa.load(index, corpus_dir=corpus)
    assert f"chunker version {CHUNKER_VERSION - 1}" in str(e.value) and FIX in str(e.value)


def test_another_model_reuses_no_vectors(small_copy):
    corpus, index = small_copy
    fake = FakeEmbedder()
    report = build_index(corpus_dir=corpus, index_dir=index, embedder=fake)
    assert report.reused == 0 and report.embedded >= report.chunks and fake.texts  # every chunk read again
    assert read_manifest(index)["model"] == {"name": "fake-sha256", "dim": 32}


def test_the_counting_embedder_cuts_the_chunks_production_cuts(small, seed_corpus, seed_index, tmp_path):
    """The rebuild tests below use CountingEmbedder; a build through it must be a production build
    (chunks cut with the model's tokenizer, not the chunker's rough estimate: on the seed that was 15
    chunks instead of 13), and reuse a production index's vectors."""
    for corpus, production in ((seed_corpus, seed_index), small):
        counting = CountingEmbedder()
        folder = tmp_path / corpus.name / "index"
        report = build_index(corpus_dir=corpus, index_dir=folder, embedder=counting)
        expected = load_index(production)
        built = load_index(folder)
        assert [c.id for c in built.chunks] == [c.id for c in expected.chunks]
        assert [c.sentences for c in built.chunks] == [c.sentences for c in expected.chunks]
        assert report.chunks == expected.manifest["counts"]["chunks"] and len(set(counting.texts)) == report.embedded
        np.testing.assert_allclose(built.sentence_vectors, expected.sentence_vectors, atol=1e-5)
        copy_index(production, tmp_path / corpus.name / "copy")
        again = CountingEmbedder()
        assert build_index(corpus_dir=corpus, index_dir=tmp_path / corpus.name / "copy", embedder=again).embedded == 0
        assert again.texts == []


def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}


def test_index_files_get_the_modes_the_umask_allows(seed_corpus, tmp_path):
    """An index built by one user (CI, an admin) is served by another: its files must not be private
    unless the umask says so (tempfile's 0600 files and 0700 folders made them private)."""
    shared, private = tmp_path / "shared", tmp_path / "private"
    before = os.umask(0o022)
    try:
        build_index(corpus_dir=seed_corpus, index_dir=shared)  # with the ONNX encoder folder
        os.umask(0o077)
        build_index(corpus_dir=seed_corpus, index_dir=private, query_encoder=False)
    finally:
        os.umask(before)
    modes = _modes(shared)
    assert any(name.startswith("encoder.") and name.endswith("/model.onnx") for name in modes)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o755 if (shared / name).is_dir() else 0o644)}
    assert wrong == {}
    wrong = {name: oct(mode) for name, mode in _modes(private).items() if mode & 0o077}
    assert wrong == {}


def test_an_index_built_by_one_user_is_served_to_another(seed_index, other_user):
    """Read by an unprivileged user who owns none of its files (`nobody`, when the tests run as root)."""
    code = ("import sys, qa; bot = qa.load(sys.argv[1], check_stale=False); "
            "print(bot.ask('How many member parliaments does the IPU have?').quotes[0].text)")
    index = other_user.share(seed_index)
    result = other_user.run([sys.executable, "-c", code, str(index)])
    assert result.returncode == 0, result.stderr
    assert "179 national member parliaments" in result.stdout


# --- errors that say what to do ----------------------------------------------------------------------


def test_missing_index(tmp_path):
    for folder in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(qa.IndexNotFoundError, match=FIX):
            qa.load(folder)


def _edit_manifest(edit):
    def change(index: Path) -> None:
        path = index / MANIFEST
        manifest = json.loads(path.read_text("utf-8"))
        edit(manifest)
        path.write_text(json.dumps(manifest), "utf-8")

    return change


@pytest.mark.parametrize(
    "damage, error",
    [
        (lambda i: (i / MANIFEST).write_text((i / MANIFEST).read_text("utf-8")[:100], "utf-8"), qa.IndexCorruptError),
        (lambda i: (i / MANIFEST).write_bytes(b"\xff\xfe garbage"), qa.IndexCorruptError),
        (lambda i: (i / MANIFEST).write_text("[]", "utf-8"), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m.pop("model")), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m.update(documents=[])), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m["model"].update(dim=128)), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1)), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m["files"]["chunks"].update(sha256="0" * 64)), qa.IndexCorruptError),
        (_edit_manifest(lambda m: m["files"]["vectors"].update(name="vectors.000000000000.faiss")),
         qa.IndexCorruptError),
        (_edit_manifest(lambda m: m.update(format_version=FORMAT_VERSION + 1)), qa.StaleIndexError),
    ],
    ids=["truncated", "not-utf8", "not-an-object", "no-model", "documents-not-a-map", "wrong-dimension",
         "wrong-count", "wrong-file-hash", "missing-file", "newer-format"],
)
def test_damaged_manifest_is_a_clear_error(small_copy, damage, error):
    corpus, index = small_copy
    damage(index)
    with pytest.raises(error) as e:
        qa.load(index, corpus_dir=corpus)
    assert FIX in str(e.value)


def test_damaged_data_file_is_a_clear_error(small_copy):
    corpus, index = small_copy
    chunks = index / read_manifest(index)["files"]["chunks"]["name"]
    chunks.write_text(chunks.read_text("utf-8").replace("Émile Roux", "Emile Roux"), "utf-8")
    with pytest.raises(qa.IndexCorruptError, match="does not match its manifest"):
        qa.load(index, corpus_dir=corpus)


def test_damaged_or_missing_lexicon_is_a_clear_error(small_copy):
    corpus, index = small_copy
    lexicon = index / read_manifest(index)["files"]["lexicon"]["name"]
    state = lexicon / "sentences" / "lexicon.json"
    state.write_text(state.read_text("utf-8").replace('"size": ', '"size": 1'), "utf-8")
    with pytest.raises(qa.IndexCorruptError, match="does not match its manifest"):
        qa.load(index, corpus_dir=corpus)
    # the fix the error names repairs it, reusing every vector (the lexicon is rebuilt under its own name)
    report = build_index(corpus_dir=corpus, index_dir=index, query_encoder=False)
    assert report.embedded == 0 and report.reused > 0
    assert qa.load(index, corpus_dir=corpus).ask("How many member parliaments does the IPU have?").quotes
    lexicon = index / read_manifest(index)["files"]["lexicon"]["name"]
    shutil.rmtree(lexicon)
    with pytest.raises(qa.IndexCorruptError, match="is missing"):
        qa.load(index, corpus_dir=corpus)


# --- atomic and incremental rebuilds (indexing logic: the fake embedder) --------------------------------


@pytest.mark.parametrize("failure", ["embedder", "manifest-rename"])
def test_failed_rebuild_leaves_the_previous_index(tmp_path, monkeypatch, failure):
    corpus, index = make_corpus(tmp_path / "corpus"), tmp_path / "index"
    build_index(corpus_dir=corpus, index_dir=index, embedder=CountingEmbedder())
    before = (index / MANIFEST).read_bytes()
    old_chunks = [c.text for c in load_index(index).chunks]

    (corpus / "notes" / "cafe-notes.md").write_text("# Café\n\nA different text altogether.\n", "utf-8")
    embedder = FakeEmbedder(fail=True) if failure == "embedder" else CountingEmbedder()
    if failure == "manifest-rename":
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == MANIFEST:
                raise OSError(28, "No space left on device")
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises((RuntimeError, OSError)):
        build_index(corpus_dir=corpus, index_dir=index, embedder=embedder)
    monkeypatch.undo()

    assert (index / MANIFEST).read_bytes() == before
    assert [c.text for c in load_index(index).chunks] == old_chunks
    assert not [p for p in index.iterdir() if p.name.startswith(f".{MANIFEST}")]  # no temporary manifest left

    build_index(corpus_dir=corpus, index_dir=index, embedder=CountingEmbedder())
    assert any("A different text altogether." in c.text for c in load_index(index).chunks)
    new, old = read_manifest(index), json.loads(before)
    # only the current and the previous generation remain: what the failed build wrote is gone
    assert data_files(index) == {MANIFEST, LOCK} | {e["name"] for m in (new, old) for e in m["files"].values()}


def test_failed_rebuild_with_the_real_model_keeps_answering(small_copy, monkeypatch):
    corpus, index = small_copy
    (corpus / "wrapped-crlf.txt").unlink()
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d, *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error"))
                        if Path(d).name == MANIFEST else real_replace(s, d, *a, **k))
    with pytest.raises(OSError):
        build_index(corpus_dir=corpus, index_dir=index, query_encoder=False)
    monkeypatch.undo()
    bot = qa.load(index, corpus_dir=corpus, check_stale=False)
    assert "Émile Roux" in bot.retrieve("Who founded the Lakeside Observatory?")[0].text


def test_concurrent_builds_into_one_folder_leave_a_loadable_index(tmp_path, monkeypatch):
    """A second build that starts while the first is between its data files and its manifest
    must not collect the first one's files: it waits for the build lock."""
    import fcntl

    import qa.build

    first_corpus, second_corpus = make_corpus(tmp_path / "first"), make_corpus(tmp_path / "second")
    (second_corpus / "later.txt").write_text("Later\n\nWritten by the second build.\n", "utf-8")
    index = tmp_path / "index"
    paused, resume, second_blocked = threading.Event(), threading.Event(), threading.Event()
    atomic_write, flock = qa.build.atomic_write, fcntl.flock

    def pausing_atomic_write(path, write):
        if threading.current_thread().name == "first":  # data files written, manifest not yet
            paused.set()
            resume.wait(timeout=120)
        return atomic_write(path, write)

    def observed_flock(f, operation):
        if threading.current_thread().name == "second" and operation == fcntl.LOCK_EX:
            try:  # the lock is free only if the first build does not hold it
                return flock(f, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                second_blocked.set()
        return flock(f, operation)

    monkeypatch.setattr(qa.build, "atomic_write", pausing_atomic_write)
    monkeypatch.setattr(fcntl, "flock", observed_flock)
    errors = []

    def build(corpus):
        try:
            build_index(corpus_dir=corpus, index_dir=index, embedder=CountingEmbedder())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    first = threading.Thread(target=build, args=(first_corpus,), name="first")
    second = threading.Thread(target=build, args=(second_corpus,), name="second")
    first.start()
    assert paused.wait(timeout=120)
    second.start()
    # Without the lock the second build would run through and collect the first one's files.
    blocked = second_blocked.wait(timeout=120)
    resume.set()
    first.join(timeout=120)
    second.join(timeout=120)
    assert blocked, "the second build did not wait for the first one's lock"
    assert errors == []
    data = load_index(index)
    assert "later.txt" in data.documents  # the second build ran last, over the first one's complete index


def test_incremental_rebuild_embeds_only_what_changed(tmp_path):
    corpus, index = make_corpus(tmp_path / "corpus"), tmp_path / "index"
    first = CountingEmbedder()
    r1 = build_index(corpus_dir=corpus, index_dir=index, embedder=first)
    assert r1.reused == 0 and r1.embedded == len(first.texts) == len(set(first.texts)) > 0
    assert (r1.documents, r1.skipped) == (3, (("empty.txt", "empty.txt is empty"),))

    again = CountingEmbedder()
    r2 = build_index(corpus_dir=corpus, index_dir=index, embedder=again)
    assert (r2.embedded, r2.reused, again.texts) == (0, r1.embedded, [])

    path = corpus / "notes" / "cafe-notes.md"
    path.write_text(path.read_text("utf-8").replace("Then she left.", "Then she left for Basel."), "utf-8")
    edit = CountingEmbedder()
    r3 = build_index(corpus_dir=corpus, index_dir=index, embedder=edit)
    assert 0 < r3.embedded == len(edit.texts) < r1.embedded / 4
    assert any("Then she left for Basel." in t for t in edit.texts)
    # everything embedded belongs to the edited document: it is among what that document alone gives the model
    (tmp_path / "alone").mkdir()
    shutil.copy(path, tmp_path / "alone" / "cafe-notes.md")
    alone = CountingEmbedder()
    build_index(corpus_dir=tmp_path / "alone", index_dir=tmp_path / "alone-index", embedder=alone)
    assert set(edit.texts) <= set(alone.texts)

    # Reused vectors sit where a build from scratch puts them.
    incremental = load_index(index)
    scratch = tmp_path / "scratch"
    r4 = build_index(corpus_dir=corpus, index_dir=scratch, embedder=CountingEmbedder())
    assert r3.embedded + r3.reused == r4.embedded
    fresh = load_index(scratch)
    assert [c.id for c in incremental.chunks] == [c.id for c in fresh.chunks]
    ntotal = fresh.vectors.ntotal
    assert np.array_equal(incremental.vectors.reconstruct_n(0, ntotal), fresh.vectors.reconstruct_n(0, ntotal))
    assert np.array_equal(incremental.sentence_vectors, fresh.sentence_vectors)


def test_messy_corpus_round_trips_through_the_index(tmp_path):
    shutil.copytree(MESSY, tmp_path / "corpus")
    index = tmp_path / "index"
    r1 = build_index(corpus_dir=tmp_path / "corpus", index_dir=index, embedder=CountingEmbedder())
    r2 = build_index(corpus_dir=tmp_path / "corpus", index_dir=index, embedder=CountingEmbedder())
    assert r2.embedded == 0 and r2.reused == r1.embedded
    data = load_index(index)  # verifies every chunk's offsets against its document
    assert set(data.documents) == {p.name for p in MESSY.iterdir()}
    for source, doc in data.documents.items():
        assert doc.text == (MESSY / source).read_bytes().decode("utf-8")  # CRLF, U+2028, U+0085 and all
    assert len(data.sentence_vectors) == data.manifest["counts"]["sentences"]


def test_a_title_only_corpus_is_an_error_not_an_empty_index(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "only-a-title.md").write_text("# Only a title\n", "utf-8")
    with pytest.raises(qa.CorpusError, match="no text to index"):
        build_index(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", embedder=CountingEmbedder())
    assert not (tmp_path / "index" / MANIFEST).exists()


def test_rebuild_deletes_only_its_own_files(tmp_path):
    corpus, index = make_corpus(tmp_path / "corpus"), tmp_path / "index"
    index.mkdir()
    foreign = ["README.md", ".gitignore", "chunks.md", "vectors.old.faiss", "notes"]
    for name in foreign[:-1]:
        (index / name).write_text("not the index's\n", "utf-8")
    (index / "notes").mkdir()
    for n in range(3):  # three generations: the first one's files are collected
        (corpus / "extra.txt").write_text(f"Extra\n\nGeneration {n}.\n", "utf-8")
        build_index(corpus_dir=corpus, index_dir=index, embedder=CountingEmbedder())
    assert set(foreign) <= data_files(index)
    assert len([n for n in data_files(index) if n.startswith("documents.")]) == 2


# --- the command line (in this process; tests/test_offline.py runs it as a subprocess) ------------------


def test_cli_build_prints_a_one_line_summary(small_copy, capsys):
    from qa.cli import main

    corpus, index = small_copy
    assert main(["build", "--corpus", str(corpus), "--index", str(index), "--no-onnx"]) == 0
    out, err = capsys.readouterr()
    counts = read_manifest(index)["counts"]
    prefix = f"built {index}/: 3 documents, 1 skipped, {counts['chunks']} chunks, {counts['sentences']} sentences, "
    assert out.startswith(prefix), out
    assert re.fullmatch(r"0 embedded, \d+ reused, flat, \d+\.\d s\n", out[len(prefix) :]), out
    assert "empty.txt" in err  # the skipped file is named


def test_cli_build_error_is_one_line_and_a_failure_code(tmp_path, capsys):
    from qa.cli import main

    assert main(["build", "--corpus", str(tmp_path / "missing"), "--index", str(tmp_path / "index")]) == 1
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert out == "" and line.startswith("error: corpus folder") and "does not exist" in line
    assert not (tmp_path / "index").exists()


def test_loading_an_index_imports_nothing_that_builds_one():
    """qa/index.py loads, qa/build.py writes: the loader needs neither the builder nor retrieval
    (no import cycle: retrieval and build, with its store and vectors, import index, never the other way round)."""
    import subprocess

    builders = "'qa.build', 'qa.store', 'qa.vectors', 'qa.retrieval', 'qa.embedding'"
    code = f"import sys, qa.index; print(sorted(m for m in sys.modules if m in ({builders})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_build_in_small_windows_writes_the_index_one_window_writes(small, tmp_path, monkeypatch):
    """Vectors are embedded and streamed to disk a window of chunks at a time (memory does not grow with
    the corpus). Windows of 2 chunks, a document repeated under another name (its chunks' vectors come
    back from an earlier window's rows, not from the model again): the same index as one window."""
    import qa.vectors

    corpus = tmp_path / "corpus"
    shutil.copytree(small[0], corpus)
    shutil.copy(corpus / "wrapped-crlf.txt", corpus / "notes" / "again.txt")
    whole, windows = tmp_path / "whole", tmp_path / "windows"
    r1 = build_index(corpus_dir=corpus, index_dir=whole, embedder=CountingEmbedder())
    monkeypatch.setattr(qa.vectors, "WINDOW", 2)
    monkeypatch.setattr(qa.vectors, "STEP", 3)
    counting = CountingEmbedder()
    r2 = build_index(corpus_dir=corpus, index_dir=windows, embedder=counting)
    a, b = load_index(whole), load_index(windows)
    # each distinct text read once: the repeated document's texts are not read again in a later window
    texts = {embedding_text(c.title, c.section, c.text) for c in b.chunks}
    owners = [c for c in b.chunks for _ in c.sentences]
    if b.plain_vectors is not None:
        texts |= {b.documents[c.source].text[s:e] for c, (s, e) in zip(owners, b.unit_spans)}
    if SENTENCE_DESIGN.startswith("placed"):
        texts |= set(sentence_embedding_texts(b.chunks, b.documents, b.unit_spans))
    assert r2.embedded == r1.embedded == len(counting.texts) == len(set(counting.texts)) == len(texts)
    assert len(texts) < r2.chunks + r2.sentences * (SENTENCE_DESIGN.count("+") + SENTENCE_DESIGN.startswith("placed"))
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    n = a.vectors.ntotal
    np.testing.assert_allclose(a.vectors.reconstruct_n(0, n), b.vectors.reconstruct_n(0, n), atol=1e-6)
    np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=1e-6)
    again = [i for i, c in enumerate(b.chunks) if c.source == "notes/again.txt"]
    first = [i for i, c in enumerate(b.chunks) if c.source == "wrapped-crlf.txt"]
    np.testing.assert_array_equal(b.vectors.reconstruct_n(again[0], len(again)),
                                  b.vectors.reconstruct_n(first[0], len(first)))
