"""Debian's headless Chromium, launched offline: one place for the executable and its flags.

Used by the browser tests (directions, MathJax, search) and by anything that prints pages."""

from __future__ import annotations

import shutil

from bnpaper.errors import MissingError

# no network, no GPU, no first-run or background services: a page gets only what the build shipped
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = "Debian's chromium is not installed (make system-deps installs it)"


def executable() -> str | None:
    """The chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright, **kwargs):
    """A headless Chromium through playwright's driver, with the offline flags; raises with the fix
    when the binary is missing."""
    exe = executable()
    if exe is None:
        raise MissingError(MISSING)
    return playwright.chromium.launch(executable_path=exe, args=ARGS, headless=True, **kwargs)
