"""What an Arabic reader sees: the visible text of a built page, and the Latin words in it.

Used by tests/test_arabic_pages.py over every page of the Arabic edition (issue 12: no English
outside code, math and names). Code (`pre`, `code`, cell inputs), math (MathJax), elements marked
`lang="en"` (the glossary's English column, the bibliography) and the language switch are not
prose; numbers (1.2e-16 included), single-letter symbols and hexadecimal revisions are not words.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# Names a reader meets as names: tools, datasets, the paper's models, units of data formats.
ALLOWED = frozenset(
    """
    bnpaper torch PyTorch papermill jupytext Jupyter Book Sphinx MathJax Chromium Python NumPy SciPy pandas
    matplotlib scipy numpy mlxtend pip git GitHub arXiv MNIST ImageNet CIFAR CIFAR-10 VGG ResNet
    JSON PDF pdf ipynb md ResNet-50
    CPU GPU CUDA MKL OpenMP Intel Xeon AMD EPYC autograd float16 float32 float64 L1 L2
    Inception BN-Inception GoogLeNet Baseline BN-Baseline BN-x5 BN-x30 BN-x5-Sigmoid
    Inception-Sigmoid ReLU TOST Ioffe Szegedy Santurkar Bjorck Yang Glorot He Wu van Laarhoven Arora CC BY MIT
    Hoffer Johnson gloo NCCL torchrun Ba makemore
    """.split()
)
_SKIP = (
    "script, style, pre, code, kbd, .math, mjx-container, div.cell_input, .highlight, "
    ".headerlink, [lang=en], .bnpaper-langswitch, img, svg"
)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.'\-]*")
_SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][-+−]?\d+")
# numbers, 1.2e-16 and 2026-11-26T03:53 included, and products written with x: 3x3, 2.3x
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*(?:[eE][-+−]?\d+)?(?:x\d*|-\d\d-\d\dT\d\d)?[.]?")
_HEX = re.compile(r"[0-9a-f]{7,40}")


def visible_text(html: str) -> str:
    """The page's text as read: header, sidebar, article and footer, without code and math."""
    from bs4 import BeautifulSoup  # pydata-sphinx-theme's dependency

    soup = BeautifulSoup(html, "html.parser")
    body = soup.body or soup
    for el in body.select(_SKIP):
        el.decompose()
    tips = [  # what a reader meets as tooltips, placeholders and screen-reader labels
        el.get(a)
        for el in body.find_all(True)
        for a in ("title", "placeholder", "aria-label", "data-bs-title")
        if el.get(a) and "references.html" not in (el.get("href") or "")  # a citation's tooltip: the entry
    ]
    return body.get_text(" ") + " " + " ".join(tips)


def latin_words(text: str) -> Counter:
    """Latin-script words in `text` that are neither names, numbers, symbols nor revisions."""
    words = (t.strip("-'.") for t in _TOKEN.findall(_SCIENTIFIC.sub(" ", text)))
    return Counter(
        w
        for w in words
        if re.search("[A-Za-z]", w)
        and len(w) > 1
        and w not in ALLOWED
        and not _NUMBER.fullmatch(w)
        and not _HEX.fullmatch(w)
    )


def scan(html_dir: Path) -> dict[str, Counter]:
    """{page: Counter of leaked Latin words} for every built page of one edition."""
    out = {}
    for page in sorted(Path(html_dir).glob("*.html")):
        found = latin_words(visible_text(page.read_text(encoding="utf-8")))
        if found:
            out[str(page.relative_to(html_dir))] = found
    return out
