"""Errors that cross a layer boundary, each with the exit code the CLI maps it to.

Every message says what failed, why, and what to try next; the CLI prints it to
stderr without a traceback. Library errors (duckdb, OSError, JSON) are translated
where they happen with ``raise ... from e`` so the cause stays inspectable.
"""

from __future__ import annotations


class KeytrailError(Exception):
    """Base class. ``exit_code`` follows the CLI contract in DESIGN.md."""

    exit_code = 2

    def __init__(self, msg: str, title: str = "keytrail error") -> None:
        super().__init__(msg)
        self.msg = msg
        self.title = title

    def __str__(self) -> str:
        return self.msg


class UsageError(KeytrailError):
    """Bad arguments or configuration (exit 2)."""

    exit_code = 2


class InputError(KeytrailError):
    """A path that does not exist, or input that yields nothing usable (exit 2)."""

    exit_code = 2


class CaseLockedError(KeytrailError):
    """Another process holds the case file's write lock (exit 2)."""

    exit_code = 2


class CaseError(KeytrailError):
    """The case file is missing, not a keytrail case, or from a newer schema (exit 2)."""

    exit_code = 2


class StrictRejectError(KeytrailError):
    """``--strict`` was given and at least one record was rejected (exit 3)."""

    exit_code = 3


class NotFoundError(KeytrailError):
    """The analysis found nothing for the given id (exit 1); ``suggestions`` lists close ids."""

    exit_code = 1

    def __init__(self, msg: str, suggestions: list[str] | None = None) -> None:
        super().__init__(msg, "not found")
        self.suggestions = suggestions or []


class ConfigError(UsageError):
    """A configuration file or value is invalid; the message names the key and allowed values."""


class Cancelled(KeytrailError):
    """An analysis call was stopped by :meth:`keytrail.store.case.CaseSession.interrupt`
    (the TUI's Escape)."""

    exit_code = 130  # like Ctrl-C

    def __init__(
        self, msg: str = "cancelled: the analysis was interrupted before it finished"
    ) -> None:
        super().__init__(msg, "cancelled")


class CaseWriteError(KeytrailError):
    """Writing the case failed: disk full, file too large, an I/O error (exit 4).

    The ingest stops at the first such error: the file being loaded is rolled back, files committed
    before it stay, and ``case_meta.finalized`` stays ``false`` until the same command is re-run."""

    exit_code = 4
