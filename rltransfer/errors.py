"""Errors the CLI reports as one message, without a traceback: bad input (:class:`UserInputError` and its kinds,
exit 2; an interruption, 130 or 143) and worker processes that died under work the grid needs (exit 1)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, or "" where none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


class UserInputError(ValueError):
    """Something the user gave (config, argument, bundle) is wrong; the message says what."""


class ConfigError(UserInputError):
    """An invalid config: the message names the key and what is allowed."""


class BundleError(UserInputError):
    """A bundle that is missing, corrupted, or does not fit what it is loaded into."""


class GateError(UserInputError):
    """Too few pre-trainings passed ``pretrain.min_source_score`` within ``pretrain.max_seeds``."""


class Interrupted(UserInputError):
    """Ctrl-C or SIGTERM: finished runs are kept; the message says how to resume."""

    def __init__(self, message: str, signal_name: str | None = "SIGINT"):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


class WorkerDied(Exception):
    """Worker processes died where no run can be failed alone while the rest goes on: under a pre-training (the
    grid needs it), or as they started (every run would fail on it). Not bad input: the message says what was
    kept and how to resume; the CLI exits with code 1."""


class EndlessEpisode(UserInputError):
    """An evaluation episode that did not end within the evaluator's step limit: its env has no time limit."""
