"""Exceptions raised on bad input from outside (files, configs, CLI flags)."""

from __future__ import annotations

from os import PathLike


class HybridRankError(Exception):
    """Base class of every error hybridrank raises on purpose."""


class DataFormatError(HybridRankError, ValueError):
    """A file or table does not follow its documented format.

    The message names the file, the 1-based line (or table row) and the
    column, so the user can open the file at the right place.

    Example:
        >>> str(DataFormatError("bad grade 'x'", path="qrels", line=3, column="grade"))
        "qrels, line 3, column 'grade': bad grade 'x'"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.row = row
        self.column = column
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(HybridRankError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class ChecksumError(HybridRankError):
    """A downloaded or cached file does not match its pinned checksum."""


class ClusterError(HybridRankError, RuntimeError):
    """A Dask cluster could not be reached, or failed while working."""


class WorkerLostError(ClusterError):
    """A Dask worker died while a job needed it; the job's result was not kept."""


class StorageError(HybridRankError):
    """A study storage (database server, journal file) cannot be reached or used.

    Nothing stored there is changed by the failed attempt; run again once it is back.
    """


class ServiceUnreachableError(HybridRankError, ConnectionError):
    """A remote service (an LLM endpoint) cannot be reached at all: connection refused,
    unknown host. Nothing is recorded for the pairs it did not answer; run again once it is
    reachable (the answers it gave are kept)."""


class MissingInputError(HybridRankError, FileNotFoundError):
    """A file or directory the user named (or a default one) does not exist."""


class OutputExistsError(HybridRankError, FileExistsError):
    """An output path is taken by something hybridrank did not write (or of another kind);
    nothing was replaced."""


class OutputNotWritableError(HybridRankError, PermissionError):
    """An output path whose folder cannot be written (read-only disk, no permission)."""


class DatasetChangedError(HybridRankError, RuntimeError):
    """A dataset was rewritten by another process between this one's read and its write;
    nothing was written."""


class MissingColumnError(DataFormatError, KeyError):
    """A table lacks a column a step needs; the message names it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(HybridRankError, ValueError, AttributeError, RuntimeError):
    """A model was used before ``fit`` (or ``load``).

    A ``ValueError`` and an ``AttributeError``, as scikit-learn's
    ``sklearn.exceptions.NotFittedError`` is, so code written for scikit-learn
    estimators catches it the same way (and a ``RuntimeError``, as it was before).
    """


__all__ = [
    "ChecksumError",
    "ClusterError",
    "ConfigError",
    "DataFormatError",
    "DatasetChangedError",
    "HybridRankError",
    "MissingColumnError",
    "MissingInputError",
    "NotFittedError",
    "OutputExistsError",
    "OutputNotWritableError",
    "StorageError",
    "WorkerLostError",
]
