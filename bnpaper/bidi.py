"""Left-to-right islands in right-to-left text: a number, an interval or a formula in an Arabic
sentence is wrapped in U+2066 (LEFT-TO-RIGHT ISOLATE) ... U+2069 (POP DIRECTIONAL ISOLATE), so the
browser keeps its characters in order («[0.5, 2]» would otherwise show as «[2 ,0.5]»)."""

from __future__ import annotations

import re

LRI, PDI = "\u2066", "\u2069"


def ltr(text: object, lang: str) -> str:
    """text isolated left-to-right in the Arabic edition; unchanged in the English one."""
    return f"{LRI}{text}{PDI}" if lang == "ar" else f"{text}"


_ISOLATED = re.compile(f"({LRI}.*?{PDI})", re.S)
_SIGNED = re.compile(r"(?<![A-Za-z0-9_.,])([+\-\u2212]\d[\d,]*(?:\.\d+)?(?:[eE][+\-]?\d+)?%?)")


def isolate_signed_numbers(text: str) -> str:
    """Arabic prose: every signed number ("-0.43", "+0.0534", "−2%") isolated left-to-right, so the
    sign stays before its digits ("0.43-" otherwise: in a right-to-left paragraph the bidi algorithm
    puts a leading minus after the number). Spans already isolated are left as they are; a hyphen
    between digits ("09-11") is not a sign."""
    parts = _ISOLATED.split(text)
    return "".join(p if p.startswith(LRI) else _SIGNED.sub(lambda m: f"{LRI}{m[1]}{PDI}", p) for p in parts)


def loose_signed_numbers(text: str) -> list[str]:
    """The signed numbers of `text` outside any isolate (what isolate_signed_numbers would wrap)."""
    return [n for p in _ISOLATED.split(text) if not p.startswith(LRI) for n in _SIGNED.findall(p)]
