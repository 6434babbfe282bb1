"""Errors that the command line turns into one clear line and a non-zero exit code."""

from __future__ import annotations


class TdsaError(Exception):
    """Base class: a user-facing error. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(TdsaError, ValueError):
    """A bad config file, key or value (exit code 2)."""

    exit_code = 2


class DataError(TdsaError):
    """A dataset root, annotation file or image that is missing or unreadable (exit code 1)."""

    exit_code = 1


class CheckpointError(TdsaError):
    """A checkpoint that is missing, corrupt or does not fit the model (exit code 1)."""

    exit_code = 1
