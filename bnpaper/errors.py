"""The one error base of bnpaper: what the command line prints as a message, without a traceback.

Every problem a user can cause (a wrong parameter, missing or corrupt data, no GPU, a dead replica,
a build folder that is a file) raises a `BnpaperError` naming the problem and the fix. Anything
else is a bug and keeps its traceback. The subclasses keep the built-in class they replace
(`ConfigError` is a ValueError too), so `except ValueError` around library calls still works.
"""

from __future__ import annotations


class BnpaperError(Exception):
    """A problem with what was asked for, or with the machine it runs on; says what and how to fix it."""


class ConfigError(BnpaperError, ValueError):
    """A parameter, profile, setting or name that is not valid: raised before any work starts."""


class UnknownNameError(BnpaperError, KeyError):
    """A name (an experiment, a claim, a tuning, a label) that is not known; lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0]) if self.args else ""


class MissingError(BnpaperError, FileNotFoundError):
    """A file, a folder or a program that the work needs and that is not there."""


class EnvironmentProblem(BnpaperError, RuntimeError):
    """The machine cannot do what was asked (no GPU, a worker process died, a tool changed)."""


class DistributedError(EnvironmentProblem):
    """A process group could not be formed, or a replica failed or stopped answering."""
