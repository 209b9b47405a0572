"""The errors a user can act on: a bad config value, data file, or model file.

Entry points print them as one line naming the key or file (no traceback) and exit with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message names the key or file and, where it can, the
    fix."""


class ConfigError(UserError, ValueError):
    """An invalid config value; the message starts with the offending key."""


class DataError(UserError, ValueError):
    """Bad input data; the message names the file (or source) and the problem."""


class ModelFileError(UserError):
    """A model file that cannot be used: missing, damaged, foreign, or holding code."""
