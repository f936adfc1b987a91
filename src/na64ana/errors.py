"""User-facing errors. The CLI prints them as one line and exits non-zero (see cli.EXIT_CODES)."""

from __future__ import annotations


class Na64Error(Exception):
    """Base class for errors the CLI reports as one line naming file and field."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.field) if p)
        return f"{where}: {self.message}" if where else self.message


class InputError(Na64Error):
    """Bad user input: a config/summary/datasets file that fails validation, a bad option value."""

    exit_code = 2


class DataError(Na64Error):
    """Bad event data: missing branch, truncated or non-ROOT file, empty tree."""

    exit_code = 3


class OutputError(Na64Error):
    """The output folder cannot be used (exists with foreign content, not writable)."""

    exit_code = 4
