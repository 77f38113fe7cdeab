"""PDF, HTML and DOCX extraction on real Debian documents (installed by `make system-packages`), bad files, and the
index built from a folder mixing all five formats with the real model."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import qa
from qa import extract
from qa.corpus import load_corpus
from qa.errors import CorpusError
from qa.build import build_index
from qa.index import read_manifest

from conftest import SEED_FILE
from test_index import FakeEmbedder

LIBTASN1 = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
MIME_SPEC = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")
USERS = Path("/usr/share/doc/base-passwd/users-and-groups.html")
LIBFFI = Path("/usr/share/doc/libffi8/html")
# libffi's manual in reading order (its index.html links them in this order)
LIBFFI_PAGES = ["index", "Introduction", "Using-libffi", "The-Basics", "Simple-Example", "Types",
                "Primitive-Types", "Structures", "Size-and-Alignment", "Arrays-Unions-Enums"]


@pytest.fixture(scope="module")
def debian_documents() -> None:
    # A failure, not a skip: skipped tests would let a broken install step pass.
    if not all(p.exists() for p in (LIBTASN1, MIME_SPEC, USERS, LIBFFI)) or shutil.which("pandoc") is None:
        pytest.fail("the Debian documents or pandoc are not installed: run `make system-packages` (`make test` does)")


needs_debian = pytest.mark.usefixtures("debian_documents")


def _headings(doc) -> list[tuple[str, int]]:
    return [(doc.text[s:e], level) for s, e, level in doc.headings]


@pytest.fixture(scope="module")
def libffi_docx(tmp_path_factory) -> Path:
    """libffi's HTML manual made into one Word document by a real converter, Debian's pandoc."""
    out = tmp_path_factory.mktemp("docx") / "libffi.docx"
    pages = [str(LIBFFI / f"{name}.html") for name in LIBFFI_PAGES]
    subprocess.run(["pandoc", "-f", "html", "-t", "docx", "-o", str(out), *pages], check=True)
    return out


def _read(path: Path, name: str | None = None):
    return extract.read_file(path.read_bytes(), name or path.name)


# ---- real documents -------------------------------------------------------------------------------


@needs_debian
def test_pdf_pages_outline_and_running_headers_libtasn1():
    doc = _read(LIBTASN1)
    assert len(doc.pages) == 36 and doc.pages[0] == 0 and list(doc.pages) == sorted(doc.pages)
    heads = [(doc.text[s:e], level) for s, e, level in doc.headings]
    # the outline's entries, found on their pages, nested as the outline nests them
    assert ("2 ASN.1 structure handling", 1) in heads and ("2.1 ASN.1 syntax", 2) in heads
    assert ("3.2 Invoking asn1Coding", 2) in heads
    assert doc.title == "Libtasn1"
    # running headers and page numbers are gone; the table of contents' dot leaders too
    assert "Chapter 2: ASN.1 structure handling" not in doc.text
    assert not re.search(r"\. \. \. \.", doc.text)
    # PDFium's line-end hyphenation marks are joined, not left as "manip-" + "ulation"
    assert "manipulation" in doc.text and "\ufffe" not in doc.text and "manip-" not in doc.text
    # a sentence the pdftotext of page 5 shows, on page 5 (1-based, as viewers count)
    at = doc.text.index("The parser is case sensitive.")
    assert sum(1 for p in doc.pages if p <= at) == 5


@needs_debian
def test_pdf_title_from_first_line_when_the_file_has_none():
    doc = _read(MIME_SPEC)
    assert doc.title == "Shared MIME-info Database"
    # the running header of all 17 pages is dropped
    assert not any(doc.text.startswith("Shared MIME-info Database", p) for p in doc.pages)
    assert len(doc.pages) == 17
    assert ("2.4. The glob files", 2) in _headings(doc)
    # page numbers at the foot of each page are not text: no line is a bare number
    assert not re.search(r"(?m)^\d{1,2}$", doc.text)


@needs_debian
def test_html_headings_terms_and_no_navigation():
    doc = _read(USERS)
    assert doc.title == "Users and Groups in the Debian System"
    heads = _headings(doc)
    assert ("Chapter 2. Users and Groups", 1) in heads
    assert ("daemon", extract.TERM_LEVEL) in heads  # <dt> terms head their definitions
    assert "Root is (typically) the superuser." in doc.text

    page = _read(LIBFFI / "The-Basics.html")
    assert _headings(page)[0] == ("2.1 The Basics", 3)
    assert "The cif in ffi_cif stands for Call InterFace." in page.text
    # Texinfo's navigation bar (div.header), its <style> and the comment with the licence are dropped
    assert "Next:" not in page.text and "copiable-anchor" not in page.text
    assert "Permission is hereby granted" not in page.text


@needs_debian
def test_docx_made_by_pandoc_keeps_heading_styles(libffi_docx):
    doc = _read(libffi_docx)
    heads = _headings(doc)
    assert ("2.1 The Basics", 3) in heads and ("2.3.4.1 Arrays", 4) in heads
    assert "To emulate an array, simply create an ffi_type using FFI_TYPE_STRUCT" in doc.text
    assert doc.pages == ()


@needs_debian
def test_sections_come_from_the_documents_structure():
    from qa.chunking import chunk_document
    from qa.corpus import read_document

    doc = read_document(USERS, "users-and-groups.html")
    sections = {c.section for c in chunk_document(doc)}
    assert "Chapter 2. Users and Groups › daemon" in sections
    # nothing guessed: a short line in the page does not become a section
    assert all(part in {t for t, _ in _headings(doc)} for s in sections if s for part in s.split(" › "))


# ---- bad files ------------------------------------------------------------------------------------


def minimal_pdf(pages: list[str], extra: bytes = b"") -> bytes:
    """A valid PDF written by hand: one page per string, its text in Helvetica (an empty string: no text)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", None, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        body = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b"0 0 m 100 100 l S"
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(body), body))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                       b"/Contents %d 0 R >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, extra, xref)
    return bytes(out)


def zip_bytes(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(minimal_pdf(["A secret report about the harbour."])))
    writer.encrypt("open sesame", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


GOOD_PDF = minimal_pdf(["The harbour opens at dawn every day.", "Boats leave the harbour at noon."])

BAD_FILES = {
    "encrypted.pdf": (encrypted_pdf, "encrypted with a password"),
    "scan.pdf": (lambda: minimal_pdf(["", ""]), "no text layer"),
    "truncated.pdf": (lambda: GOOD_PDF[: len(GOOD_PDF) // 2], "truncated or damaged?"),
    "really-a-docx.pdf": (lambda: zip_bytes({"word/document.xml": b"<w/>"}), "not a PDF but a zip archive"),
    "not-a-zip.docx": (lambda: b"Plain words pretending to be Word.\n", "not a Word document"),
    "truncated.docx": (lambda: zip_bytes({"word/document.xml": b"<w/>" * 100})[:-30], "damaged or truncated zip"),
    "bomb.docx": (lambda: zip_bytes({"word/document.xml": b" " * (20 << 20)}), "a zip bomb?"),
    "other-zip.docx": (lambda: zip_bytes({"hello.txt": b"hi"}), "no word/document.xml"),
    "pdf-named.html": (lambda: GOOD_PDF, "not an HTML page but a PDF"),
    "pdf-named.txt": (lambda: GOOD_PDF, "is not text but a PDF — rename it .pdf"),
    "scripts-only.html": (lambda: b"<html><head><script>var a = 'no text';</script></head><body><nav>Home</nav>"
                          b"</body></html>", "holds no text"),
}


def test_a_hand_written_pdf_is_read_with_its_pages():
    doc = extract.read_file(GOOD_PDF, "harbour.pdf")
    assert doc.text == "The harbour opens at dawn every day.\n\nBoats leave the harbour at noon.\n"
    assert doc.pages == (0, doc.text.index("Boats"))


def test_malformed_html_is_read_for_what_it_says():
    doc = extract.read_file(b"<html><body><h2>Tides<p>High tide at <b>six<div>Low tide at noon.</p></span>",
                            "broken.html")
    assert doc.text == "Tides\n\nHigh tide at six\n\nLow tide at noon.\n"
    assert doc.headings == ((0, 5, 2),)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_with_its_reason(tmp_path, name):
    from qa.corpus import read_document

    make, reason = BAD_FILES[name]
    (tmp_path / name).write_bytes(make())
    with pytest.raises(CorpusError) as e:
        read_document(tmp_path / name, name)
    assert name in str(e.value) and reason in str(e.value)


def test_bad_files_are_skipped_and_the_rest_indexed(tmp_path, caplog):
    for name, (make, _) in BAD_FILES.items():
        (tmp_path / name).write_bytes(make())
    (tmp_path / "harbour.pdf").write_bytes(GOOD_PDF)
    (tmp_path / "notes.md").write_text("# Notes\n\nThe ferry is late on Sundays.\n")
    with caplog.at_level("WARNING"):
        corpus = load_corpus(tmp_path)
    assert [d.source for d in corpus.documents] == ["harbour.pdf", "notes.md"]
    assert sorted(s for s, _ in corpus.skipped) == sorted(BAD_FILES)
    for name, (_, reason) in BAD_FILES.items():
        assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records), name


def test_limits_on_pages_and_characters(monkeypatch):
    three = minimal_pdf(["One page.", "Two pages.", "Three pages."])
    monkeypatch.setattr(extract, "MAX_PAGES", 2)
    with pytest.raises(CorpusError, match="has 3 pages; the limit is 2"):
        extract.read_file(three, "long.pdf")
    monkeypatch.setattr(extract, "MAX_CHARS", 12)
    with pytest.raises(CorpusError, match="more than 12 characters"):
        extract.read_file(b"<p>Thirteen chars and more</p>", "big.html")
    monkeypatch.setattr(extract, "MAX_FILE_BYTES", 100)
    with pytest.raises(CorpusError, match="the limit is 0 MB"):
        extract.read_file(three, "huge.pdf")


# ---- the index ------------------------------------------------------------------------------------


def test_unchanged_files_are_not_parsed_again_on_rebuild(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbour.pdf").write_bytes(GOOD_PDF)
    (corpus / "tides.html").write_bytes(b"<h1>Tides</h1><p>High tide is at six.</p>")
    (corpus / "notes.txt").write_text("Notes\n\nThe ferry is late on Sundays.\n")
    build_index(corpus_dir=corpus, index_dir=tmp_path / "index", embedder=FakeEmbedder())
    parsed = []
    real = extract.read_file
    monkeypatch.setattr(extract, "read_file", lambda data, source: parsed.append(source) or real(data, source))
    build_index(corpus_dir=corpus, index_dir=tmp_path / "index", embedder=FakeEmbedder())
    assert parsed == []
    (corpus / "tides.html").write_bytes(b"<h1>Tides</h1><p>High tide is at seven.</p>")
    build_index(corpus_dir=corpus, index_dir=tmp_path / "index", embedder=FakeEmbedder())
    assert parsed == ["tides.html"]
    manifest = read_manifest(tmp_path / "index")
    assert manifest["documents"]["harbour.pdf"]["pages"] == 2


def test_a_changed_pdf_makes_the_index_stale(tmp_path):
    from qa.index import staleness

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbour.pdf").write_bytes(GOOD_PDF)
    build_index(corpus_dir=corpus, index_dir=tmp_path / "index", embedder=FakeEmbedder())
    assert staleness(read_manifest(tmp_path / "index"), corpus) == []
    (corpus / "harbour.pdf").write_bytes(minimal_pdf(["The harbour closes at dusk."]))
    assert staleness(read_manifest(tmp_path / "index"), corpus) == ["harbour.pdf changed"]


@pytest.fixture(scope="module")
def mixed_bot(tmp_path_factory, libffi_docx):
    """The five formats in one folder, built with the real model."""
    corpus = tmp_path_factory.mktemp("mixed")
    shutil.copy(MIME_SPEC, corpus / MIME_SPEC.name)
    shutil.copy(USERS, corpus / USERS.name)
    shutil.copy(libffi_docx, corpus / "libffi.docx")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    (corpus / "tides.md").write_text("# Tides\n\nHigh tide at the harbour is at six in the morning.\n")
    index = tmp_path_factory.mktemp("mixed-index") / "index"
    report = build_index(corpus_dir=corpus, index_dir=index)
    assert report.documents == 5 and report.skipped == ()
    return qa.load(index)


QUESTIONS = {
    "Which namespace URI must the elements of the XML source files have?": ("shared-mime-info-spec.pdf", "namespace"),
    "What does cif stand for in ffi_cif?": ("libffi.docx", "Call InterFace"),
    "Which user do proxy daemons run as?": ("users-and-groups.html", "proxy daemons"),
    "How many national member parliaments does the IPU have?": ("inter-parliamentary-union.txt", "179"),
}


@needs_debian
@pytest.mark.slow
@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_mixed_corpus_answers_with_verbatim_quotes_and_pages(mixed_bot, question):
    source, words = QUESTIONS[question]
    answer = mixed_bot.ask(question)
    assert not answer.abstained
    for q in answer.quotes:
        document = mixed_bot.document(q.source)
        assert document.text[q.start : q.end] == q.text
        assert q.page == document.page_at(q.start)
        assert (q.page is not None) == q.source.endswith(".pdf")
    first = answer.quotes[0]
    assert first.source == source and words in first.text
    if source.endswith(".pdf"):
        assert f", p. {first.page}" in first.citation and f", p. {first.page}" in answer.text
    passages = mixed_bot.retrieve(question, k=3)
    assert all(p.page == mixed_bot.document(p.source).page_at(p.start) for p in passages)
