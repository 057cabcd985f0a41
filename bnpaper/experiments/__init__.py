"""One module per chapter's experiments: a dataclass config + a run(config) -> dict function, and
the claims the chapter measures (`CLAIMS`, each with its protocol) and the arms it tunes (`TUNINGS`).

Results are plain JSON-able dicts so bnpaper.cache can store them and both editions reuse them.
"""

import importlib

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


def modules() -> list:
    """The experiment modules that own claims, in the ledger's order."""
    return [importlib.import_module(f"bnpaper.experiments.{n}") for n in NAMES]
