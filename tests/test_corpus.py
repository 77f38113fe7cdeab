"""The corpus loader: which files become documents, their text, titles and sources, and what is skipped."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys

import pytest

import qa
from qa.chunking import chunk_document
from qa.corpus import load_corpus

from conftest import DATA, SEED_FILE

MESSY = DATA / "messy"


def _write(path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def test_seed_document_is_loaded_verbatim(seed_corpus):
    corpus = load_corpus(seed_corpus)
    assert corpus.skipped == ()
    [doc] = corpus.documents
    raw = SEED_FILE.read_bytes()
    assert doc.source == "inter-parliamentary-union.txt"
    assert doc.title == "Inter-Parliamentary Union"
    assert doc.text == raw.decode("utf-8")
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()


def test_reads_every_txt_and_md_below_the_folder_with_posix_sources(tmp_path):
    for name in ["top.txt", "a/b/deep.md", "a/Shout.TXT", "notes.rst", "data.json", ".hidden.txt", ".git/HEAD.txt",
                 "a/.cache/x.md"]:
        _write(tmp_path / name, f"Title of {name}\n\nSome text in {name}.\n")
    corpus = load_corpus(tmp_path)
    assert [d.source for d in corpus.documents] == ["a/Shout.TXT", "a/b/deep.md", "top.txt"]
    assert corpus.skipped == ()


@pytest.mark.parametrize(
    "name, text, title",
    [
        ("a.md", "# Annual report 2020 #\n\nBody text.\n", "Annual report 2020"),
        ("a.md", "\n\n#  Leading blank lines\n\nBody text.\n", "Leading blank lines"),
        ("a.md", "## Starts at level two?\n\nBody text.\n", "Starts at level two?"),
        ("a.md", "Setext title\n============\n\nBody text.\n", "Setext title"),
        ("a.txt", "Plain first line\r\n\r\nBody text.\r\n", "Plain first line"),
        ("a.txt", "\ufeffWith a byte order mark\n\nBody.\n", "With a byte order mark"),
        # a first line that is a sentence, a rule, or too long is no title: the file name is used
        ("annual_report-2020.txt", "This file starts with a sentence.\n", "Annual report 2020"),
        ("front-matter.md", "---\ntitle: x\n---\n\nBody text.\n", "Front matter"),
        ("long.txt", "word " * 40 + "\n\nBody.\n", "Long"),
        # a line with a link: every Debian copyright file opens with the same one
        ("zstd.txt", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
                     "Upstream-Name: zstd\n\nFiles: *\nLicense: BSD-3-clause\n", "Zstd"),
    ],
)
def test_title(tmp_path, name, text, title):
    _write(tmp_path / name, text)
    [doc] = load_corpus(tmp_path).documents
    assert doc.title == title


def test_byte_order_mark_is_dropped_and_crlf_kept(tmp_path):
    _write(tmp_path / "bom.txt", b"\xef\xbb\xbfTitle\r\n\r\nFirst line.\r\nSecond line.\r\n")
    [doc] = load_corpus(tmp_path).documents
    assert doc.text == "Title\r\n\r\nFirst line.\r\nSecond line.\r\n"


def test_key_value_header_lines_stay_searchable_text(seed_corpus):
    [doc] = load_corpus(seed_corpus).documents
    texts = [c.text for c in chunk_document(doc)]
    for line in ["Established: 1", "Address: Chem. du Pommier 5, 1218 Le Grand-Saconnex, Switzerland",
                 "Website: https://ipu.org"]:
        assert any(line in t for t in texts), line


def test_html_and_script_text_is_loaded_verbatim():
    corpus = load_corpus(MESSY)
    doc = next(d for d in corpus.documents if d.source == "markup.txt")
    assert doc.text == (MESSY / "markup.txt").read_text("utf-8")
    assert '<script>alert("hi")</script>' in doc.text
    assert any('<script>alert("hi")</script>' in c.text for c in chunk_document(doc))


def test_unusable_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    _write(tmp_path / "good.txt", "Good document\n\nIt has one sentence.\n")
    _write(tmp_path / "empty.txt", b"")
    _write(tmp_path / "blank.md", " \n\t\r\n")
    _write(tmp_path / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    _write(tmp_path / "sub/latin1.md", "Caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")

    with caplog.at_level(logging.WARNING, logger="qa.corpus"):
        corpus = load_corpus(tmp_path)

    assert [d.source for d in corpus.documents] == ["good.txt"]
    reasons = dict(corpus.skipped)
    assert sorted(reasons) == ["blank.md", "dangling.txt", "empty.txt", "image.txt", "sub/latin1.md"]
    assert "empty" in reasons["empty.txt"] and "empty" in reasons["blank.md"]
    assert "binary" in reasons["image.txt"]
    assert "UTF-8" in reasons["sub/latin1.md"]
    assert "cannot read" in reasons["dangling.txt"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for source in reasons:
        assert any(source in w for w in warnings), (source, warnings)


def test_unreadable_file_is_skipped_with_a_warning(other_user):
    """Run by a user who may not read it: as root (CI) the file would be readable whatever its mode."""
    corpus = other_user.folder / "corpus"
    _write(corpus / "good.txt", "Good document\n\nIt has one sentence.\n")
    _write(corpus / "secret.txt", "Secret\n\nNobody may read this.\n")
    corpus.chmod(0o755)
    (corpus / "good.txt").chmod(0o644)
    (corpus / "secret.txt").chmod(0)
    code = ("import json, logging, sys; from qa.corpus import load_corpus; logging.basicConfig(); "
            "c = load_corpus(sys.argv[1]); print(json.dumps([[d.source for d in c.documents], c.skipped]))")
    result = other_user.run([sys.executable, "-c", code, str(corpus)])
    assert result.returncode == 0, result.stderr
    documents, skipped = json.loads(result.stdout)
    assert documents == ["good.txt"]
    assert [source for source, _ in skipped] == ["secret.txt"] and "cannot read" in skipped[0][1]
    assert "WARNING:qa.corpus:" in result.stderr and "secret.txt" in result.stderr


def test_corpus_with_no_usable_document_is_a_clear_error(tmp_path):
    with pytest.raises(qa.CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(qa.CorpusError, match=r"no usable document \(\.txt, \.md, \.pdf"):
        load_corpus(tmp_path / "empty")
    _write(tmp_path / "bad/empty.txt", b"")
    _write(tmp_path / "bad/readme.rst", "Not a corpus file.\n")
    with pytest.raises(qa.CorpusError, match=r"no usable .*1 skipped: empty\.txt is empty"):
        load_corpus(tmp_path / "bad")
    assert issubclass(qa.CorpusError, qa.QAError)


def test_build_of_an_unusable_corpus_writes_no_index(tmp_path):
    """Never half an index: the error comes before anything is written."""
    _write(tmp_path / "corpus/empty.txt", b"")
    _write(tmp_path / "corpus/binary.md", b"\x00\x01\x02")
    with pytest.raises(qa.CorpusError):
        qa.build_index(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", query_encoder=False)
    assert not (tmp_path / "index").exists()


def test_the_messy_corpus_loads_whole(tmp_path):
    # A copy, so that nothing a test does can touch tests/data.
    shutil.copytree(MESSY, tmp_path / "messy")
    corpus = load_corpus(tmp_path / "messy")
    assert corpus.skipped == ()
    assert {d.source: d.title for d in corpus.documents} == {
        "cafe-notes.md": "Café Übersicht — Field Notes",
        "markup.txt": "Web page notes",
        "valley-chronicle.txt": "Valley chronicle",
        "wrapped-crlf.txt": "Lakeside Observatory",
    }
    for doc in corpus.documents:
        assert doc.text == (MESSY / doc.source).read_bytes().decode("utf-8")
