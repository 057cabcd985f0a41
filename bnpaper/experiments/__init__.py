"""One module per chapter's experiments: a dataclass config + a run(config) -> dict function, and
the claims the chapter measures (`CLAIMS`, each with its protocol) and the arms it tunes (`TUNINGS`).

Results are plain JSON-able dicts so bnpaper.cache can store them and both editions reuse them.
"""

import importlib
from pathlib import Path

NAMES = (
    "conv",
    "population",
    "learning_rate",
    "regularization",
    "figure1",
    "inception",
    "ics",
    "replicas",
)  # ledger order


def names() -> list[str]:
    """The experiment modules: the book's chapters in NAMES' order, then any other module of this
    package (a reader's own, dropped in here), alphabetically. Adding one needs no other edit."""
    here = Path(__file__).parent
    found = sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))
    return list(NAMES) + [n for n in found if n not in NAMES]


def modules() -> list:
    """The experiment modules, in the ledger's order (`names`)."""
    return [importlib.import_module(f"bnpaper.experiments.{n}") for n in names()]
