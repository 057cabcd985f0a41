"""One module per chapter's experiments: a dataclass config + a run(config) -> dict function.

Results are plain JSON-able dicts so bnpaper.cache can store them and both editions reuse them.
"""
