"""Left-to-right islands in right-to-left text: a number, an interval or a formula in an Arabic
sentence is wrapped in U+2066 (LEFT-TO-RIGHT ISOLATE) ... U+2069 (POP DIRECTIONAL ISOLATE), so the
browser keeps its characters in order («[0.5, 2]» would otherwise show as «[2 ,0.5]»)."""

from __future__ import annotations

LRI, PDI = "\u2066", "\u2069"


def ltr(text: object, lang: str) -> str:
    """text isolated left-to-right in the Arabic edition; unchanged in the English one."""
    return f"{LRI}{text}{PDI}" if lang == "ar" else f"{text}"
