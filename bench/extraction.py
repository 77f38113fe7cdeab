"""Extraction speed and the library comparison behind qa/extract.py, on Debian's own documents.

    python bench/extraction.py            # qa's readers: PDF pages/s, HTML and DOCX documents/s, mixed build
    python bench/extraction.py --compare  # also the candidates (pip install -e '.[compare]')

Needs the Debian packages of `make system-packages`. Prints a Markdown table per part; the README quotes them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import extract  # noqa: E402

PDFS = [Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"), Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")]
HTML = sorted(Path("/usr/share/doc/libffi8/html").glob("*.html")) + [Path("/usr/share/doc/base-passwd/users-and-groups.html")]
# Checks on the text each PDF reader gives (whitespace-insensitive): a paragraph of libtasn1's page 6
# in reading order (pdfminer.six puts its second sentence after the line that follows it), and a
# word hyphenated across lines, joined.
IN_ORDER = "This version doesn’t handle the REAL type. It doesn’t support the AUTOMATIC TAGS option"
JOINED = "manipulation."


def timed(fn, repeat: int = 3) -> tuple[object, float]:
    """The result and the median seconds of `repeat` calls."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


def flat(text: str) -> str:
    return " ".join(text.split())


def pdf_readers() -> dict:
    readers = {"pypdfium2 (qa)": lambda data: extract.read_pdf(data, "x.pdf").text}
    try:
        import io

        import pypdf

        readers["pypdf"] = lambda data: "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    except ImportError:
        pass
    try:
        import io

        from pdfminer.high_level import extract_text

        readers["pdfminer.six"] = lambda data: extract_text(io.BytesIO(data))
    except ImportError:
        pass
    return readers


def html_readers() -> dict:
    readers = {"lxml walk (qa)": lambda data: extract.read_html(data, "x.html").text}
    try:
        from selectolax.lexbor import LexborHTMLParser

        def selectolax(data):
            tree = LexborHTMLParser(data)
            tree.strip_tags(["script", "style", "nav"])
            return tree.body.text(separator="\n") if tree.body else ""

        readers["selectolax"] = selectolax
    except ImportError:
        pass
    try:
        from bs4 import BeautifulSoup

        def soup(data):
            page = BeautifulSoup(data, "lxml")
            for tag in page(["script", "style", "nav"]):
                tag.decompose()
            return page.get_text("\n")

        readers["beautifulsoup4+lxml"] = soup
    except ImportError:
        pass
    try:
        import trafilatura

        readers["trafilatura"] = lambda data: trafilatura.extract(data, output_format="markdown",
                                                                 include_comments=False) or ""
    except ImportError:
        pass
    return readers


def compare_pdf() -> None:
    print("\n| PDF reader | pages/s (2 PDFs, 53 pages) | reading order kept | line-end hyphens joined |\n|---|---:|---|---|")
    blobs = [p.read_bytes() for p in PDFS]
    pages = 36 + 17
    for name, read in pdf_readers().items():
        texts, seconds = timed(lambda: [read(b) for b in blobs], repeat=1 if "pdfminer" in name else 3)
        tasn1 = flat(texts[0])
        hyphens = len(re.findall(r"[a-z]-\n[a-z]", texts[0]))
        print(f"| {name} | {pages / seconds:.0f} | {'yes' if IN_ORDER in tasn1 else 'no'} | "
              f"{'yes' if JOINED in tasn1 and not hyphens else f'no ({hyphens} left)'} |")


def compare_html() -> None:
    print(f"\n| HTML reader | documents/s ({len(HTML)} pages) | libffi nav bar dropped | headings kept as structure |"
          " a libffi sentence intact |\n|---|---:|---|---|---|")
    blobs = [p.read_bytes() for p in HTML]
    basics = (Path("/usr/share/doc/libffi8/html/The-Basics.html")).read_bytes()
    for name, read in html_readers().items():
        _, seconds = timed(lambda: [read(b) for b in blobs])
        text = read(basics)
        structure = "yes (h1-h6, dt)" if "qa" in name else ("as Markdown #" if "trafilatura" in name else "no")
        print(f"| {name} | {len(blobs) / seconds:.0f} | {'no' if 'Next:' in text else 'yes'} | {structure} | "
              f"{'yes' if 'The cif in ffi_cif stands for Call InterFace.' in flat(text) else 'no'} |")


def qa_readers(folder: Path) -> None:
    docx = folder / "libffi.docx"
    subprocess.run(["pandoc", "-f", "html", "-t", "docx", "-o", str(docx), *map(str, HTML[:-1])], check=True)
    print("\n| qa reader | files | speed |\n|---|---|---:|")
    for path in PDFS:
        data = path.read_bytes()
        doc, seconds = timed(lambda: extract.read_pdf(data, path.name))
        print(f"| PDF {path.name} | {len(doc.pages)} pages | {len(doc.pages) / seconds:.0f} pages/s |")
    blobs = [p.read_bytes() for p in HTML]
    _, seconds = timed(lambda: [extract.read_html(b, "x.html") for b in blobs])
    print(f"| HTML | {len(blobs)} pages (libffi, base-passwd) | {len(blobs) / seconds:.0f} documents/s |")
    data = docx.read_bytes()
    _, seconds = timed(lambda: extract.read_docx(data, "libffi.docx"))
    print(f"| DOCX | libffi's manual via pandoc ({len(data) // 1024} KB) | {1 / seconds:.1f} documents/s |")


def mixed_build(folder: Path) -> None:
    """A folder of all five formats built from scratch, then rebuilt unchanged (extraction cached)."""
    import qa

    corpus = folder / "mixed"
    corpus.mkdir()
    for path in PDFS + HTML:
        shutil.copy(path, corpus / path.name)
    shutil.copy(folder / "libffi.docx", corpus / "libffi.docx")
    root = Path(__file__).resolve().parent.parent
    shutil.copy(root / "corpus" / "inter-parliamentary-union.txt", corpus)
    shutil.copy(root / "tests" / "data" / "general" / "zstd.md", corpus)
    index = folder / "index"
    first = qa.build_index(corpus_dir=corpus, index_dir=index)
    again = qa.build_index(corpus_dir=corpus, index_dir=index)
    print(f"\nmixed corpus ({first.documents} documents: 2 PDF, {len(HTML)} HTML, 1 DOCX, 1 TXT, 1 MD): "
          f"{first.chunks} chunks, {first.sentences} sentences; build {first.seconds:.1f} s; "
          f"unchanged rebuild {again.seconds:.1f} s ({again.embedded} embedded, nothing re-extracted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="store_true", help="also measure the candidate libraries")
    parser.add_argument("--no-build", action="store_true", help="skip the mixed-corpus build (~3 min)")
    args = parser.parse_args()
    missing = [p for p in PDFS + HTML if not p.exists()]
    if missing or shutil.which("pandoc") is None:
        sys.exit(f"missing {missing[0] if missing else 'pandoc'} — run: make system-packages")
    if args.compare:
        compare_pdf()
        compare_html()
    with tempfile.TemporaryDirectory() as tmp:
        qa_readers(Path(tmp))
        if not args.no_build:
            mixed_build(Path(tmp))


if __name__ == "__main__":
    main()
