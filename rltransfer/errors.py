"""Errors that mean bad input: the CLI reports them as one message and exits with code 2."""

from __future__ import annotations


class UserInputError(ValueError):
    """Something the user gave (config, argument, bundle) is wrong; the message says what."""


class ConfigError(UserInputError):
    """An invalid config: the message names the key and what is allowed."""


class BundleError(UserInputError):
    """A bundle that is missing, corrupted, or does not fit what it is loaded into."""


class GateError(UserInputError):
    """Too few pre-trainings passed ``pretrain.min_source_score`` within ``pretrain.max_seeds``."""
