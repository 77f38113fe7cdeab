"""Read PDF, HTML and DOCX files as plain text that keeps their structure.

What a reader returns *is* the document from then on: offsets, chunks and quotes refer to
the extracted text (stored in the index), never to the file's bytes. The text is built as
blocks (headings, paragraphs, list items) separated by blank lines, which is what the
chunker reads; headings are recorded as spans with a level, and PDF pages as start offsets.

Libraries, chosen by measurement on Debian's own documents (figures in the README):
- PDF: pypdfium2 (PDFium, the engine of Chrome's viewer; Apache-2.0/BSD-3). ~400 pages/s here
  against 27-58 for pypdf and 6-11 for pdfminer.six; it keeps the reading order where
  pdfminer.six reorders lines of a paragraph, and it marks line-end hyphenation (U+FFFE),
  so "manip-/ulation" is joined without guessing. The trade-off: it is C++, so a PDF crafted
  to crash it would take the build down with it (PDFium is fuzzed continuously, as Chrome's).
  Paragraphs are not marked in a PDF: a short line ending a sentence ends one. Running headers
  and footers (page numbers, "Chapter 2: … 3") are dropped; outline entries become headings.
- HTML: lxml.html (BSD), walked by hand: headings h1-h6, paragraphs, list items, table rows and
  <pre> become blocks; navigation (nav, header, footer, aside, menus), scripts and styles are
  dropped. A main-content extractor (trafilatura) was measured and not used: see the README.
- DOCX: python-docx (MIT): paragraphs and table rows in body order; "Heading N" and "Title"
  styles (and outline levels) become headings.

Every reader enforces the limits below and raises CorpusError naming the file and the reason;
the corpus loader skips such a file with a warning and indexes the rest.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass

from .errors import CorpusError

EXTRACTOR_VERSION = 1  # part of the cache key: a change here re-extracts every PDF/HTML/DOCX
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PAGES = 2_000
MAX_CHARS = 5_000_000  # extracted text of one document (~2,000 dense pages)
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024  # a DOCX's parts, as declared by the archive (zipfile enforces them)
MAX_ZIP_RATIO = 100  # uncompressed/compressed per part; Word's XML compresses 5-20x, zip bombs 1000x
MIN_CHARS_PER_PAGE = 10  # fewer letters than this per page on average: a scan without a text layer

HTML_SUFFIXES = (".html", ".htm")
SUFFIXES = (".pdf", ".docx") + HTML_SUFFIXES

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    title: str  # from the file's own metadata (<title>, document properties); "" when it has none
    headings: tuple[tuple[int, int, int], ...]  # (start, end, level) of each heading in text
    pages: tuple[int, ...]  # offset where each page starts (PDF); () for formats without pages


_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
# Control characters but tab and newline, and the soft hyphen: invisible, and they split words.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u00ad\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean(text: str) -> str:
    """Text as it should be quoted: NFC, ligatures spelled out, invisible characters gone, one line per line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).translate(_LIGATURES)
    return _INVISIBLE.sub("", text)


class _Writer:
    """Accumulates blocks separated by blank lines, recording heading spans and page starts."""

    def __init__(self, source: str):
        self.source, self.parts, self.size = source, [], 0
        self.headings: list[tuple[int, int, int]] = []
        self.pages: list[int] = []
        self._page_pending = False

    def new_page(self) -> None:
        self.pages.append(-1)  # filled in by the page's first block (an empty page shares the next start)
        self._page_pending = True

    def block(self, text: str, level: int = 0) -> None:
        """A paragraph (level 0) or a heading of that level; its lines are kept, blank lines squeezed."""
        lines = [_SPACES.sub(" ", line).strip() for line in clean(text).split("\n")]
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        if level:
            text = " ".join(text.split())
        if self.parts:
            self.parts.append("\n\n")
            self.size += 2
        start = self.size
        if self._page_pending:
            self.pages = [start if p == -1 else p for p in self.pages]
            self._page_pending = False
        self.parts.append(text)
        self.size += len(text)
        if level:
            self.headings.append((start, self.size, level))
        if self.size > MAX_CHARS:
            raise CorpusError(f"{self.source} holds more than {MAX_CHARS:,} characters of text (the limit per document)")

    def result(self, title: str) -> Extracted:
        text = "".join(self.parts)
        pages = [len(text) if p == -1 else p for p in self.pages]
        if not text.strip():
            raise CorpusError(f"{self.source} holds no text")
        return Extracted(text + "\n", " ".join(title.split()), tuple(self.headings), tuple(pages))


def sniff(data: bytes) -> str | None:
    """What the bytes are, whatever the file is called: "pdf", "zip", "html" or None."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if data[:1024].find(b"%PDF-") != -1:  # the header may follow a little junk
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    if re.match(rb"(?i)<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", head):
        return "html"
    return None


def _check_kind(data: bytes, source: str, expected: str, what: str) -> None:
    kind = sniff(data)
    if kind == expected:
        return
    actual = {"pdf": "a PDF", "zip": "a zip archive", "html": "an HTML page"}.get(kind)
    if not data:
        raise CorpusError(f"{source} is empty")
    if actual:
        raise CorpusError(f"{source} is not {what} but {actual} — rename it with the right extension")
    raise CorpusError(f"{source} is not {what} (its content does not start like one)")


def read_file(data: bytes, source: str) -> Extracted:
    """Extract one file by its extension; raises CorpusError when it cannot be used."""
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(f"{source} is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    suffix = "." + source.rsplit(".", 1)[-1].lower()
    if suffix == ".pdf":
        _check_kind(data, source, "pdf", "a PDF")
        return read_pdf(data, source)
    if suffix == ".docx":
        _check_kind(data, source, "zip", "a Word document (.docx is a zip archive)")
        return read_docx(data, source)
    if suffix in HTML_SUFFIXES:
        if sniff(data) in ("pdf", "zip") or b"\x00" in data[:4096]:
            _check_kind(data, source, "html", "an HTML page")
        return read_html(data, source)
    raise CorpusError(f"{source}: no reader for {suffix} files")


# --- PDF ---------------------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"(?:page\s+)?(?:\d{1,4}|[ivxlc]{1,6})(?:\s*(?:/|of)\s*\d{1,4})?", re.I)
_DIGITS = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"[.!?:;]['\"’”)]*$")
_DOT_LEADER = re.compile(r"(?:\.\s?){4,}\s*(?:\d{1,4}|[ivxlc]{1,6})$")  # a table-of-contents line: "2.2 Naming . . . 3"
_BULLET = re.compile(r"(?:[-*•◦‣▪–]|\d{1,3}[.)]|\(?[a-z]\))\s")


def read_pdf(data: bytes, source: str) -> Extracted:
    """A PDF's text page by page, outline entries as headings, running headers and footers dropped."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as e:
        reason = str(e)
        if "password" in reason.lower():
            raise CorpusError(f"{source} is encrypted with a password — save an unprotected copy") from e
        raise CorpusError(f"{source} is not a readable PDF ({reason}) — is it truncated or damaged?") from e
    try:
        n = len(pdf)
        if n > MAX_PAGES:
            raise CorpusError(f"{source} has {n:,} pages; the limit is {MAX_PAGES:,} — split it")
        if n == 0:
            raise CorpusError(f"{source} has no pages — is it truncated?")
        pages = []
        for i in range(n):
            textpage = pdf[i].get_textpage()
            pages.append(clean(textpage.get_text_range().replace("\ufffe\r\n", "").replace("\ufffe", "")))
            if sum(map(len, pages)) > MAX_CHARS:
                raise CorpusError(f"{source} holds more than {MAX_CHARS:,} characters of text (the limit per document)")
        outline = _outline(pdf)
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
    except pypdfium2.PdfiumError as e:
        raise CorpusError(f"{source} is damaged ({e})") from e
    finally:
        pdf.close()

    letters = sum(ch.isalnum() for page in pages for ch in page)
    if letters < MIN_CHARS_PER_PAGE * n:
        raise CorpusError(
            f"{source} has no text layer ({letters} letters in {n} pages; a scan?) — run OCR on it first "
            "(e.g. ocrmypdf) and add the result"
        )
    lines = [[line.strip() for line in page.split("\n") if line.strip()] for page in pages]
    running = _running_lines(lines)
    # Without a /Title, the first line of the first page ("Shared MIME-info Database", also the running
    # header dropped below); the corpus loader falls back to the text's first line or the file name.
    title = title or next((line for line in lines if line), [""])[0]
    writer = _Writer(source)
    for number, page_lines in enumerate(lines):
        writer.new_page()
        body = [line for j, line in enumerate(page_lines)
                if not ((j == 0 or j == len(page_lines) - 1) and _is_running(line, running))
                and not _DOT_LEADER.search(line)]
        for text, level in _pdf_blocks(body, outline.get(number, [])):
            writer.block(text, level)
    return writer.result(title)


def _outline(pdf) -> dict[int, list[tuple[str, int]]]:
    """{page index: [(title, level 1..), ...]} from the PDF's bookmarks; {} when it has none."""
    entries: dict[int, list[tuple[str, int]]] = {}
    try:
        for item in pdf.get_toc(max_depth=6):
            dest = item.get_dest()
            title = " ".join(clean(item.get_title() or "").split())
            if dest is not None and title and dest.get_index() is not None:
                entries.setdefault(dest.get_index(), []).append((title, item.level + 1))
    except Exception:  # a broken outline costs the headings, not the document
        return {}
    return entries


def _running_lines(pages: list[list[str]]) -> set[str]:
    """First or last lines (digits removed) that recur on several pages: running headers and footers."""
    edges = Counter()
    for lines in pages:
        for line in {lines[0], lines[-1]} if lines else ():
            edges[_DIGITS.sub("#", line)] += 1
    # With a page number in it, twice is enough ("Chapter 2: ASN.1 structure handling 3" and "… 4");
    # without, it must recur on a third of the pages (a title repeated on every page).
    return {key for key, count in edges.items()
            if count >= 2 and ("#" in key or count >= max(3, len(pages) // 3))}


def _is_running(line: str, running: set[str]) -> bool:
    return bool(_PAGE_NUMBER.fullmatch(line)) or _DIGITS.sub("#", line) in running


def _pdf_blocks(lines: list[str], headings: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A page's lines grouped into (text, heading level or 0) blocks.

    A line that is an outline entry of this page is a heading; a paragraph ends after a line
    that ends a sentence and stops well short of the page's longest line.
    """
    wanted = [(" ".join(t.lower().split()), level) for t, level in headings]
    width = max((len(line) for line in lines), default=0)
    blocks: list[tuple[str, int]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(("\n".join(current), 0))
            current.clear()

    for line in lines:
        low = line.lower()
        match = next((w for w in wanted if len(low) <= len(w[0]) + 12 and low.endswith(w[0])), None)
        if match:
            flush()
            blocks.append((line, match[1]))
            wanted.remove(match)
            continue
        if current and _BULLET.match(line) and not _BULLET.match(current[0]):
            flush()
        current.append(line)
        if _SENTENCE_END.search(line) and len(line) < 0.8 * width:
            flush()
    flush()
    return blocks


# --- HTML --------------------------------------------------------------------------------------

_DROP = {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "button",
         "select", "svg", "iframe", "object", "embed", "head", "title", "meta", "link", "dialog"}
# class/id words that mark navigation in generated pages (Texinfo's div.header, Sphinx's sphinxsidebar…)
_NAV_WORDS = re.compile(r"(?:^|[\s_-])(?:nav|navbar|navigation|navheader|navfooter|header|footer|menu|breadcrumbs?|"
                        r"sidebar|sphinxsidebar|skip|cookie|banner)(?:$|[\s_-])", re.I)
_BLOCK_TAGS = {"p", "div", "li", "dt", "dd", "blockquote", "tr", "caption", "figcaption", "address", "section",
               "article", "main", "body", "ul", "ol", "dl", "table", "tbody", "thead", "tfoot", "center",
               "details", "summary", "fieldset", "legend", "hr", "br"}
_CELLS = {"td", "th"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
TERM_LEVEL, MAX_TERM_CHARS = 7, 80  # <dt> terms nest below h6
_ANY_HEADING = "boolean(.//h1 | .//h2 | .//h3 | .//h4 | .//h5 | .//h6)"


def read_html(data: bytes, source: str) -> Extracted:
    """An HTML page's main text: h1-h6 as headings, block elements as paragraphs, navigation dropped."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(data)
    except (etree.ParserError, ValueError) as e:
        raise CorpusError(f"{source} is not readable HTML ({e})") from e
    title = root.findtext(".//title") or ""
    body = root.find("body")
    writer = _Writer(source)
    _html_walk(body if body is not None else root, writer, [])
    return writer.result(title)


def _html_walk(element, writer: _Writer, inline: list[str]) -> None:
    """Depth-first: inline text gathers in `inline` until a block element flushes it as one block."""
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""  # comments and processing instructions
        if tag and not _dropped(child, tag):
            if tag in _HEADINGS:
                _flush(writer, inline)
                writer.block(child.text_content(), _HEADINGS[tag])
            elif tag == "dt" and len(child.text_content().strip()) <= MAX_TERM_CHARS:
                _flush(writer, inline)  # a defined term heads its definition: "daemon" › "Some unprivileged…"
                writer.block(child.text_content(), TERM_LEVEL)
            elif tag == "pre":
                _flush(writer, inline)
                writer.block(child.text_content())
            elif tag in _BLOCK_TAGS:
                _flush(writer, inline)
                if child.text:
                    inline.append(child.text)
                _html_walk(child, writer, inline)
                _flush(writer, inline)
            else:
                if child.text:
                    inline.append(child.text)
                _html_walk(child, writer, inline)
                if tag in _CELLS:
                    inline.append(" \t ")  # cells of a row stay apart
        if child.tail:
            inline.append(child.tail)


def _dropped(element, tag: str) -> bool:
    if tag in _DROP or element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    if element.get("role") in ("navigation", "banner", "contentinfo", "search"):
        return True
    marks = f"{element.get('class') or ''} {element.get('id') or ''}"
    # "section-header" around an <h2> is content: a marked element is dropped only if it holds no heading
    return bool(_NAV_WORDS.search(marks)) and not element.xpath(_ANY_HEADING)


def _flush(writer: _Writer, inline: list[str]) -> None:
    if inline:
        writer.block(" ".join("".join(inline).split()))
        inline.clear()


# --- DOCX --------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"(?:heading|überschrift|titre)\s*(\d)", re.I)


def read_docx(data: bytes, source: str) -> Extracted:
    """A Word document's paragraphs and table rows in order; heading styles become headings."""
    _check_zip(data, source)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise CorpusError(f"{source} is not a Word document ({type(e).__name__}: {e})") from e
    except Exception as e:  # lxml's XMLSyntaxError and kin: a damaged part
        raise CorpusError(f"{source} is a damaged Word document ({type(e).__name__}: {e})") from e
    writer = _Writer(source)
    from docx.enum.style import WD_STYLE_TYPE
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    # Style names by id, read once: python-docx resolves paragraph.style with an XPath search per call
    # (half of the reading time).
    names = {s.style_id: s.name or "" for s in document.styles}
    default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style_id = item._p.style  # the w:pStyle value, or None for the default paragraph style
            name = names.get(style_id, "") if style_id else (default.name if default is not None else "")
            writer.block(item.text, _docx_level(name or ""))
        elif isinstance(item, Table):
            for row in item.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells))  # merged cells repeat
                writer.block(" \t ".join(c for c in cells if c))
    return writer.result(document.core_properties.title or "")


def _docx_level(name: str) -> int:
    """The heading level a paragraph style name stands for; 0 for body text."""
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.search(name)
    return int(match.group(1)) if match else 0


def _check_zip(data: bytes, source: str) -> None:
    """Refuse zip bombs before anything is decompressed: declared sizes are checked (zipfile stops at them)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise CorpusError(f"{source} is not a Word document (a damaged or truncated zip archive: {e})") from e
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED_BYTES:
        raise CorpusError(
            f"{source} would unpack to {total / 2**20:,.0f} MB; the limit is {MAX_UNZIPPED_BYTES // 2**20} MB "
            "(a zip bomb?)")
    for info in infos:
        if info.file_size > 1 << 20 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise CorpusError(
                f"{source}: its part {info.filename} expands {info.file_size // max(info.compress_size, 1):,}x; "
                f"the limit is {MAX_ZIP_RATIO}x (a zip bomb?)")
    if "word/document.xml" not in archive.namelist():
        raise CorpusError(f"{source} is a zip archive but not a Word document (no word/document.xml)")
