"""More click-log readers into the canonical impression log, and a registry of all of them.

Every reader returns the impression log of :mod:`hybridrank.columns`, one row per
shown result, with exactly the columns and dtypes

``session_id int64, ts float64, qid str, docid str, position int16 (1-based),
click int8 (0/1), dwell_s float64 (NaN where unknown or not clicked)``

and takes ``on_bad``: ``"error"`` (the default) raises
:class:`~hybridrank.errors.DataFormatError` at the first bad record, naming the
file, the 1-based line (or the 0-based table row for parquet) and the column;
``"skip"`` leaves bad records out, counts them and logs a warning. Either way the
frame carries a :class:`ReadReport` in ``frame.attrs["read_report"]``.

Example:
    >>> log = read_click_log("sessions.xml", "tiangong", on_bad="skip")  # doctest: +SKIP
    >>> log.attrs["read_report"].rows_skipped  # doctest: +SKIP
    3
"""

from __future__ import annotations

import bz2
import csv
import gzip
import inspect
import itertools
import logging
import lzma
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridrank import columns as C
from hybridrank.data._clicklogs import _impressions_frame, read_clara2, read_yandex_sample
from hybridrank.data._text import raise_first_non_utf8_line
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError

logger = logging.getLogger(__name__)

OnBad = Literal["error", "skip"]

_REPORT_ATTR: Final = "read_report"
_MAX_REPORTED: Final = 5
_MAX_INT16: Final = int(np.iinfo(np.int16).max)
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")
_CSV_SEPARATORS: Final = {".csv": ",", ".tsv": "\t"}
_COMPRESSION_SUFFIXES: Final = (".gz", ".bz2", ".xz", ".zst", ".zip")
_LINE_ATTR: Final = "__hybridrank_line__"
# Spellings of a missing number in text files (as written by numpy, R, SQL dumps).
_MISSING_NUMBERS: Final = ("nan", "na", "null", "none")
#: Canonical columns a log row cannot leave empty (``ts`` and ``dwell_s`` may be).
_MUST_HAVE: Final = (C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK)


@dataclass(frozen=True)
class ReadReport:
    """What a click-log reader read, skipped and dropped; in ``frame.attrs["read_report"]``.

    Attributes:
        path: The file read.
        rows_read: Input records read, good and bad. The record is a row of the
            file for :func:`read_impression_log`, a query (one result page) for
            :func:`read_tiangong_st`, a parquet row (one query session) for
            :func:`read_baidu_ultr` and a result page for the Yandex and
            CLARA2 readers.
        rows_skipped: Bad records left out (only with ``on_bad="skip"``).
        first_errors: The messages of the first few bad records, in file order.
        rows_dropped: Good data left out on purpose, not errors: impression rows
            beyond ``max_position`` (Baidu-ULTR), queries showing no result
            (TianGong-ST). Unit: impression rows for Baidu-ULTR, queries for
            TianGong-ST.
        clicks_dropped: Clicks left out because no impression showed their
            document: a clicked URL its session did not show (Yandex), a click
            matching no earlier impression of its session (CLARA2).
        clicks_merged: Repeated clicks on a result already clicked on the same
            page, folded into its one click (Yandex, CLARA2: the canonical log
            holds one click flag per shown result).
    """

    path: str
    rows_read: int
    rows_skipped: int
    first_errors: tuple[str, ...]
    rows_dropped: int = 0
    clicks_dropped: int = 0
    clicks_merged: int = 0


class _Reporter:
    """Raises at the first bad record (``on_bad="error"``) or counts and keeps their messages."""

    def __init__(self, path: Path, on_bad: str) -> None:
        if on_bad not in ("error", "skip"):
            raise ConfigError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        self.path = path
        self.skip = on_bad == "skip"
        self.skipped = 0
        self.messages: list[str] = []

    def bad(self, errors: Sequence[DataFormatError], count: int | None = None) -> None:
        """Record ``count`` bad records (default ``len(errors)``), the first of them ``errors``."""
        if not errors:
            return
        if not self.skip:
            raise errors[0]
        self.skipped += len(errors) if count is None else count
        room = _MAX_REPORTED - len(self.messages)
        self.messages.extend(str(e) for e in errors[: max(room, 0)])

    def finish(self, frame: pd.DataFrame, *, rows_read: int, rows_dropped: int = 0) -> pd.DataFrame:
        report = ReadReport(
            path=str(self.path),
            rows_read=rows_read,
            rows_skipped=self.skipped,
            first_errors=tuple(self.messages),
            rows_dropped=rows_dropped,
        )
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad of %d records; first: %s",
                self.path,
                self.skipped,
                rows_read,
                self.messages[0],
            )
        frame.attrs[_REPORT_ATTR] = report
        return frame


# --------------------------------------------------------------------------------------
# Vectorised parsing and validation of a raw table into the canonical impression log.


def _is_text_like(s: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(s)
        or pd.api.types.is_bool_dtype(s)
        or pd.api.types.is_datetime64_any_dtype(s)
    )


def _as_text(s: pd.Series) -> pd.Series:
    """Values as stripped strings, missing values kept missing."""
    if pd.api.types.is_float_dtype(s):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (values == np.round(values))
        if integral[~np.isnan(values)].all():
            # Integer ids widened to float by a missing value: "12", not "12.0".
            s = s.astype("Int64")
    notna = s.notna()
    text = pd.Series(pd.NA, index=s.index, dtype="str")
    text[notna] = s[notna].astype(str).str.strip()
    return text


def _parse_float(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(values, unparsable)``: float64 values (NaN where missing or bad) and a mask of bad ones."""
    if pd.api.types.is_datetime64_any_dtype(s):
        # Datetimes count as seconds since the epoch (naive ones as UTC).
        stamps = pd.to_datetime(s)
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        values = (stamps - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype="float64")
        return values, np.zeros(len(s), dtype=bool)
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        values = s.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        return values, np.zeros(len(s), dtype=bool)
    text = _as_text(s)
    text = text.mask(text.str.lower().isin(_MISSING_NUMBERS))
    parsed = pd.to_numeric(text, errors="coerce")
    values = pd.Series(parsed, index=s.index).astype("Float64").to_numpy("float64", na_value=np.nan)
    unparsable = text.notna().to_numpy() & np.isnan(values)
    return values, unparsable


def _parse_int(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(values, bad)``: int64 values (0 where bad) and a mask of missing or non-integer ones."""
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        bad = s.isna().to_numpy()
        return s.astype("Int64").to_numpy(dtype="int64", na_value=0), bad
    if _is_text_like(s):
        text = _as_text(s)
        exact = text.str.fullmatch(r"[+-]?\d{1,18}").fillna(False).to_numpy(dtype=bool)
        if exact.all():
            # Parse plain integers exactly (session ids can exceed float precision).
            return text.astype("int64").to_numpy(), np.zeros(len(s), dtype=bool)
    values, _ = _parse_float(s)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**63)
    return np.where(ok, values, 0).astype(np.int64), ~ok


@dataclass(frozen=True)
class _Check:
    """One rule over the rows of a raw table: a mask of the rows that break it."""

    column: str | None
    bad: np.ndarray
    describe: Callable[[int], str]


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the canonical dtypes (those of ``_impressions_frame``)."""
    empty = _impressions_frame({c: [] for c in C.IMPRESSION_COLUMNS})
    return frame[list(C.IMPRESSION_COLUMNS)].astype(empty.dtypes.to_dict())


def _finish_canonical(
    raw: pd.DataFrame,
    *,
    units: np.ndarray,
    locate: Callable[[int], dict[str, int]],
    reporter: _Reporter,
    names: dict[str, str] | None = None,
    unit_checks: Sequence[_Check] = (),
) -> pd.DataFrame:
    """Validate a raw impression table and convert it to the canonical log.

    Args:
        raw: The seven canonical columns, as read (any dtype).
        units: ``(len(raw),)`` the record (line, parquet row) each row comes from;
            a bad row makes its whole record bad. Non-decreasing.
        locate: Record -> ``{"line": n}`` or ``{"row": n}`` for the error message.
        reporter: Raises at the first bad record, or counts the bad ones.
        names: Canonical column -> the file's column name, for messages.
        unit_checks: Rules over records found before ``raw`` was built, their
            ``bad`` masks indexed by record; records they flag have no rows in ``raw``.

    Returns:
        The canonical log of the good records.
    """
    names = names or {}
    n = len(raw)

    def name(col: str | None) -> str | None:
        return None if col is None else names.get(col, col)

    def shown(col: str, i: int) -> str:
        value = raw[col].iloc[i]
        if isinstance(value, np.generic):
            value = value.item()
        return f"{name(col)} {value!r}" if isinstance(value, str) else f"{name(col)} {value}"

    session, session_bad = _parse_int(raw[C.SESSION_ID])
    ts, ts_bad = _parse_float(raw[C.TS])
    qid = _as_text(raw[C.QID])
    docid = _as_text(raw[C.DOCID])
    position, position_bad = _parse_int(raw[C.POSITION])
    click_raw = raw[C.CLICK]
    if _is_text_like(click_raw):
        click_raw = _as_text(click_raw).str.lower().replace({"true": "1", "false": "0"})
    click, click_bad = _parse_float(click_raw)
    dwell, dwell_bad = _parse_float(raw[C.DWELL_S])
    with np.errstate(invalid="ignore"):
        checks = [
            _Check(
                C.SESSION_ID,
                session_bad,
                lambda i: f"{shown(C.SESSION_ID, i)} is not an integer",
            ),
            _Check(C.TS, ts_bad | np.isinf(ts), lambda i: f"{shown(C.TS, i)} is not a number"),
            _Check(
                C.QID, (qid.isna() | qid.eq("")).to_numpy(), lambda i: f"{name(C.QID)} is empty"
            ),
            _Check(
                C.DOCID,
                (docid.isna() | docid.eq("")).to_numpy(),
                lambda i: f"{name(C.DOCID)} is empty",
            ),
            _Check(
                C.POSITION,
                position_bad | (position < 1) | (position > _MAX_INT16),
                lambda i: f"{shown(C.POSITION, i)} is not an integer in 1..{_MAX_INT16}",
            ),
            _Check(
                C.CLICK,
                click_bad | ~np.isin(click, (0.0, 1.0)),
                lambda i: f"{shown(C.CLICK, i)} is not 0 or 1",
            ),
            _Check(
                C.DWELL_S,
                dwell_bad | (dwell < 0) | np.isinf(dwell),
                lambda i: f"{shown(C.DWELL_S, i)} is not a number >= 0 (or empty)",
            ),
        ]
    row_bad = np.logical_or.reduce([c.bad for c in checks]) if n else np.zeros(0, dtype=bool)

    # Rules across rows, over the rows that pass the rules above.
    ok = np.flatnonzero(~row_bad)
    keys = pd.DataFrame({"s": session[ok], "p": position[ok]})
    duplicate = np.zeros(n, dtype=bool)
    duplicate[ok[keys.duplicated(keep="first").to_numpy()]] = True
    checks.append(
        _Check(
            C.POSITION,
            duplicate,
            lambda i: (
                f"session {session[i]} shows {name(C.POSITION)} {position[i]} twice; "
                "each (session, position) must be unique"
            ),
        )
    )
    ok = np.flatnonzero(~row_bad & ~duplicate)
    first_qid = np.empty(n, dtype=object)
    first_qid[ok] = (
        pd.Series(qid.to_numpy(dtype=object)[ok]).groupby(session[ok]).transform("first").to_numpy()
    )
    mixed = np.zeros(n, dtype=bool)
    mixed[ok] = qid.to_numpy(dtype=object)[ok] != first_qid[ok]
    checks.append(
        _Check(
            C.QID,
            mixed,
            lambda i: (
                f"session {session[i]} has {name(C.QID)} {qid.iloc[i]!r} but began with "
                f"{first_qid[i]!r}; rows of one session must share one qid"
            ),
        )
    )
    # A time on some rows of a session and none on others: a time split would cut it.
    ok = np.flatnonzero(~row_bad & ~duplicate & ~mixed)
    timed = ~np.isnan(ts)
    partial = np.zeros(n, dtype=bool)
    if ok.size:
        some = pd.Series(timed[ok]).groupby(session[ok]).transform("any").to_numpy(dtype=bool)
        partial[ok] = some & ~timed[ok]
    checks.append(
        _Check(
            C.TS,
            partial,
            lambda i: (
                f"session {session[i]} has no {name(C.TS)} on this row but one on others; "
                "give every row of a session its time, or none"
            ),
        )
    )

    # Bad records in file order; each is reported by its first bad row, then first rule.
    per_check_units = [np.unique(units[c.bad]) for c in checks]
    pre_units = [np.flatnonzero(c.bad) for c in unit_checks]
    bad_units = np.unique(np.concatenate([*pre_units, *per_check_units, np.zeros(0, np.int64)]))
    errors: list[DataFormatError] = []
    for unit in bad_units[:_MAX_REPORTED].tolist():
        first: tuple[int, int, str | None, str] | None = None  # (row, rule, column, message)
        for k, check in enumerate(unit_checks):
            if check.bad[unit]:
                first = (-1, k, check.column, check.describe(unit))
                break
        if first is None:
            for k, check in enumerate(checks):
                hits = np.flatnonzero(check.bad & (units == unit))
                if hits.size and (first is None or (int(hits[0]), k) < first[:2]):
                    row = int(hits[0])
                    first = (row, k, name(check.column), check.describe(row))
        assert first is not None  # a bad record is flagged by some rule
        errors.append(
            DataFormatError(first[3], path=reporter.path, column=first[2], **locate(unit))
        )
    reporter.bad(errors, count=len(bad_units))

    keep = ~np.isin(units, bad_units)
    click_kept = click[keep]
    dwell_kept = dwell[keep]
    cleared = int(np.count_nonzero((click_kept == 0) & ~np.isnan(dwell_kept)))
    if cleared:
        logger.info("%s: dwell of %d unclicked rows set to NaN", reporter.path, cleared)
    dwell_kept = np.where(click_kept == 1, dwell_kept, np.nan)
    frame = pd.DataFrame(
        {
            C.SESSION_ID: session[keep],
            C.TS: ts[keep],
            C.QID: qid.to_numpy(dtype=object)[keep],
            C.DOCID: docid.to_numpy(dtype=object)[keep],
            C.POSITION: position[keep],
            C.CLICK: click_kept,
            C.DWELL_S: dwell_kept,
        }
    )
    return _typed(frame)


# --------------------------------------------------------------------------------------
# The canonical log as a file.


def _table_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise MissingInputError(f"{path}: is a directory; give the log file in it")
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file")


def _missing_columns(have: Sequence[str], path: Path, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in have]
    if missing:
        raise DataFormatError(
            f"missing columns {missing}; the file has {list(have)}. "
            f"Expected at least {list(required)}",
            path=path,
        )


def _read_parquet_columns(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=None if columns is None else list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(f"not a readable parquet file ({exc})", path=path) from None


def _parquet_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(f"not a readable parquet file ({exc})", path=path) from None


def _read_delimited(
    path: Path, sep: str, must_have: Sequence[str] = ()
) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """Read a CSV/TSV as strings.

    Args:
        must_have: Columns a row cannot leave empty. A line that ends before one
            of them (a cut file, a lost separator) is malformed, named by its
            field count; a line leaving out only trailing columns that may be
            empty (``dwell_s`` of an unclicked row) is read with them empty.

    Returns:
        The table (blank lines left out), the 1-based line of each of its rows,
        and the lines left out as malformed (too many fields, or too few for a
        ``must_have`` column), with the reason.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            raw = pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                on_bad_lines="warn",
            )
    except pd.errors.EmptyDataError:
        raise DataFormatError("empty file; expected a header line", path=path) from None
    except UnicodeDecodeError:
        opener = _binary_opener(path)
        if opener is not None:
            raise_first_non_utf8_line(path, opener)  # names the line
        raise DataFormatError("not UTF-8 text; save the file as UTF-8", path=path) from None
    except pd.errors.ParserError as exc:
        line = _line_in_message(str(exc))
        raise DataFormatError(f"malformed file ({exc})", path=path, line=line) from None
    malformed: dict[int, str] = {}
    for warning in caught:
        if issubclass(warning.category, pd.errors.ParserWarning):
            for text in str(warning.message).splitlines():
                line = _line_in_message(text)
                if line is not None:
                    malformed[line] = text.partition(":")[2].strip() or text
    # Rows are lines 2, 3, ... (the header is line 1) less the malformed lines.
    candidates = np.arange(2, 2 + len(raw) + len(malformed))
    lines = candidates[~np.isin(candidates, list(malformed))]
    filled = raw.notna().any(axis=1).to_numpy()
    position = {name: i for i, name in enumerate(raw.columns)}
    needed = [position[c] for c in must_have if c in position]
    if needed:
        # pandas pads a line with too few fields with NaN. Only a line missing a value it
        # must have can be such a line, and would be refused anyway: the file is counted
        # again (in Python) only for those, to name the real fault.
        empty = raw.iloc[:, needed].isna().any(axis=1).to_numpy() & filled
        if empty.any():
            counts = _field_counts(path, sep, set(lines[empty].tolist()))
            n_columns = raw.shape[1]
            for line in lines[empty]:
                count = counts.get(int(line), n_columns)
                if count < n_columns and any(i >= count for i in needed):
                    malformed[int(line)] = (
                        f"{count} fields where the header has {n_columns} "
                        f"({', '.join(map(str, raw.columns))}); was the file cut or a "
                        "separator lost?"
                    )
            short = np.isin(lines, list(malformed))
            filled = filled & ~short
    return raw[filled].reset_index(drop=True), lines[filled], malformed


#: Openers of the compressions whose lines can be read again in Python.
_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _binary_opener(path: Path) -> Callable[..., Any] | None:
    """What opens ``path`` (plain, .gz, .bz2 or .xz); None for another compression."""
    name = path.name.lower()
    suffix = next((s for s in _COMPRESSION_SUFFIXES if name.endswith(s)), None)
    if suffix is not None and suffix not in _OPENERS:
        return None
    return _OPENERS.get(suffix or "", open)


def _field_counts(path: Path, sep: str, wanted: set[int]) -> dict[int, int]:
    """The number of fields on each of the ``wanted`` 1-based lines of a CSV/TSV file
    (plain, .gz, .bz2 or .xz); empty for another compression (the check is skipped)."""
    opener = _binary_opener(path)
    if opener is None:
        return {}
    counts: dict[int, int] = {}
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        start = 1
        for fields in reader:
            if start in wanted:
                counts[start] = len(fields)
            start = reader.line_num + 1
    return counts


def _line_in_message(text: str) -> int | None:
    words = text.replace(":", " ").replace(",", " ").split()
    for before, word in itertools.pairwise(words):
        if before.lower() == "line" and word.isdigit():
            return int(word)
    return None


def read_impression_log(path: str | Path, *, on_bad: OnBad = "error") -> pd.DataFrame:
    """Read an impression log stored in the canonical layout, as parquet, CSV or TSV.

    The format follows the suffix: ``.parquet``/``.pq``, ``.csv`` or ``.tsv``
    (CSV/TSV may be compressed: ``.csv.gz`` ...). The file has a header and at
    least the columns ``session_id, ts, qid, docid, position, click, dwell_s``
    (others are ignored). Rules, each checked on every row at once:

    * ``session_id`` an integer (``12`` or ``12.0``); ``ts`` a number or empty
      (datetimes in parquet become seconds since the epoch);
    * ``qid`` and ``docid`` not empty;
    * ``position`` an integer in ``1..32767``; ``click`` ``0``/``1`` (or a boolean);
    * ``dwell_s`` a number >= 0 or empty; it is set to NaN where ``click`` is 0;
    * no ``(session_id, position)`` twice (later copies are the bad rows);
    * all rows of a session share the qid of its first row (rows with another
      qid are the bad rows).

    Errors name the 1-based line of a CSV/TSV (the header is line 1; quoted
    fields spanning lines shift the count) or the 0-based row of a parquet file.
    A CSV/TSV line with too many fields is a bad row; blank lines are ignored.

    Args:
        path: The file.
        on_bad: ``"error"`` raises at the first bad row; ``"skip"`` leaves bad rows out.

    Returns:
        The canonical log, rows in file order, with a :class:`ReadReport` in
        ``attrs["read_report"]`` (``rows_read`` counts the file's rows).

    Raises:
        DataFormatError: Unknown suffix, unreadable file, missing columns, or
            (``on_bad="error"``) a bad row.
    """
    path = Path(path)
    reporter = _Reporter(path, on_bad)
    _require_file(path)
    suffix = _table_suffix(path)
    required = list(C.IMPRESSION_COLUMNS)
    unit_checks: list[_Check] = []
    if suffix in _PARQUET_SUFFIXES:
        _missing_columns(_parquet_schema(path).names, path, required)
        raw = _read_parquet_columns(path, required).to_pandas()
        numbers = np.arange(len(raw))
        where = "row"
    elif suffix in _CSV_SEPARATORS:
        raw, numbers, malformed = _read_delimited(
            path, _CSV_SEPARATORS[suffix], must_have=_MUST_HAVE
        )
        _missing_columns(list(raw.columns), path, required)
        raw = raw[required]
        where = "line"
        if malformed:
            # Lines with too many fields take part as empty rows that a record rule flags,
            # so that the first bad line in the file is the one reported.
            placeholders = pd.DataFrame(
                {c: [None] * len(malformed) for c in required}, dtype=object
            )
            raw = pd.concat([raw.astype(object), placeholders], ignore_index=True)
            numbers = np.concatenate([numbers, np.fromiter(malformed, dtype=np.int64)])
            order = np.argsort(numbers, kind="stable")
            raw, numbers = raw.iloc[order].reset_index(drop=True), numbers[order]
            is_malformed = np.isin(numbers, list(malformed))
            unit_checks.append(
                _Check(None, is_malformed, lambda i: f"malformed line: {malformed[numbers[i]]}")
            )
    else:
        raise DataFormatError(
            f"unknown suffix {suffix!r}; use .parquet, .pq, .csv or .tsv", path=path
        )
    frame = _finish_canonical(
        raw[required],
        units=np.arange(len(raw)),
        locate=lambda i: {where: int(numbers[i])},
        reporter=reporter,
        unit_checks=unit_checks,
    )
    return reporter.finish(frame, rows_read=len(raw))


# --------------------------------------------------------------------------------------
# TianGong-ST.


def _line_of(elem: ET.Element) -> int | None:
    line = elem.get(_LINE_ATTR)
    return int(line) if line is not None else None


def _text_of(elem: ET.Element, *tags: str) -> str | None:
    for tag in tags:
        child = elem.find(tag)
        if child is not None and child.text is not None and child.text.strip():
            return child.text.strip()
    return None


def _attr_or_child(elem: ET.Element, attrs: Sequence[str], tags: Sequence[str]) -> str | None:
    for attr in attrs:
        value = elem.get(attr)
        if value is not None and value.strip():
            return value.strip()
    return _text_of(elem, *tags)


def _rank(text: str | None) -> int | None:
    """``text`` as a rank in ``1..32767``, or None."""
    if text is None or not text.isascii() or not text.isdigit():
        return None
    rank = int(text)
    return rank if 1 <= rank <= _MAX_INT16 else None


def _timestamp(text: str) -> float:
    """Seconds: a number as is, a date-time (naive ones taken as UTC) since the epoch."""
    try:
        return float(text)
    except ValueError:
        pass
    stamp = pd.Timestamp(text)  # ValueError if not a date-time either
    if pd.isna(stamp):
        raise ValueError(f"not a time: {text!r}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


@dataclass(frozen=True)
class _TianGongQuery:
    qid: str
    ts: float
    docids: list[str]
    ranks: list[int]
    clicks: list[int]
    dwell: list[float]


def _tiangong_query(elem: ET.Element, path: Path) -> _TianGongQuery:
    """One ``<interaction>``/``<query>`` element as a result page; DataFormatError if bad."""

    def fail(message: str, where: ET.Element, column: str) -> NoReturn:
        raise DataFormatError(message, path=path, line=_line_of(where), column=column)

    qid = _text_of(elem, "query_id")
    if qid is None:
        fail("query has no <query_id>", elem, "query_id")
    holder = elem.find("results")
    results = (holder if holder is not None else elem).findall("result")
    docids: list[str] = []
    ranks: list[int] = []
    by_rank: dict[int, int] = {}
    by_docid: dict[str, int] = {}
    for result in results:
        rank_text = _attr_or_child(result, ("rank",), ("rank",))
        rank = _rank(rank_text)
        if rank is None:
            fail(f"result rank {rank_text!r} is not an integer in 1..{_MAX_INT16}", result, "rank")
        if rank in by_rank:
            fail(f"query {qid!r} shows rank {rank} twice", result, "rank")
        docid = _attr_or_child(result, ("id",), ("docid", "result_id"))
        if docid is None:
            fail("result has no id (attribute id= or <docid>)", result, "docid")
        by_rank[rank] = len(docids)
        by_docid.setdefault(docid, len(docids))
        docids.append(docid)
        ranks.append(rank)

    holder = elem.find("clicked")
    click_elems = (holder if holder is not None else elem).findall("click")
    clicked = [0] * len(docids)
    click_times: list[tuple[float, int, int]] = []  # (time, order, result index)
    for order, click in enumerate(click_elems):
        rank_text = _attr_or_child(click, ("rank",), ("rank",))
        click_id = _attr_or_child(click, ("result_id", "id"), ("result_id", "docid"))
        index: int | None = None
        if rank_text is not None:
            rank = _rank(rank_text)
            if rank is None:
                fail(
                    f"click rank {rank_text!r} is not an integer in 1..{_MAX_INT16}", click, "rank"
                )
            index = by_rank.get(rank)
        if index is None and click_id is not None:
            index = by_docid.get(click_id)
        if index is None:
            fail(
                f"click (rank {rank_text!r}, result id {click_id!r}) matches no result "
                f"of query {qid!r}",
                click,
                "rank" if rank_text is not None else "result_id",
            )
        clicked[index] = 1
        time_text = _attr_or_child(click, ("timestamp", "starttime"), ("timestamp",))
        if time_text is not None:
            try:
                click_times.append((_timestamp(time_text), order, index))
            except ValueError:
                fail(
                    f"click timestamp {time_text!r} is not a number or date-time",
                    click,
                    "timestamp",
                )

    # Dwell: time from a click to the next click of the query; a result clicked
    # more than once keeps its longest known dwell.
    dwell = [np.nan] * len(docids)
    click_times.sort()
    for (t, _, index), (t_next, _, _) in itertools.pairwise(click_times):
        gap = t_next - t
        dwell[index] = gap if np.isnan(dwell[index]) else max(dwell[index], gap)

    ts_text = _attr_or_child(elem, ("starttime", "timestamp"), ("timestamp",))
    if ts_text is not None:
        try:
            ts = _timestamp(ts_text)
        except ValueError:
            fail(f"query timestamp {ts_text!r} is not a number or date-time", elem, "timestamp")
    else:
        ts = click_times[0][0] if click_times else np.nan
    return _TianGongQuery(qid, ts, docids, ranks, clicked, dwell)


def read_tiangong_st(path: str | Path, *, on_bad: OnBad = "error") -> pd.DataFrame:
    """Read a TianGong-ST session file (Chen et al., CIKM 2019; Sogou search log) as XML.

    Each query element becomes one impression session (``session_id`` 0, 1, ...
    in file order; ``qid`` its ``<query_id>``; one row per ``<result>``). The
    release nests ``<interaction>`` elements (with ``<query>`` holding the query
    text); a ``<query>`` element with child elements is read the same way::

        <session num="1">                               (any wrapper; ignored)
          <interaction num="1" starttime="...">         or <query num="1">
            <query_id>q27</query_id>                    required
            <query>text</query>                         or <query_text>; ignored
            <results>
              <result rank="1" id="d9">                 rank: attribute or <rank>
                <docid>d9</docid>                       id: attribute id= or <docid>/<result_id>
                <url>...</url> <title>...</title> ...   ignored
              </result>
            </results>
            <clicked>                                   optional
              <click num="1">
                <rank>1</rank>                          matched by rank, else by
                <result_id>d9</result_id>               <result_id>/<docid> (or attributes)
                <timestamp>1.5e9</timestamp>            optional; seconds or a date-time
              </click>
            </clicked>
          </interaction>
        </session>

    ``click`` is 1 for a result clicked at least once. ``dwell_s`` is the time
    from a click to the next timed click of the same query (NaN for the last
    one, or without timestamps); a result clicked more than once keeps the
    longest. ``ts`` is the query's ``starttime``/``timestamp`` (attribute or
    child), else its first click time, else NaN. Bad queries (no
    ``<query_id>``, a rank that is not a positive integer or shown twice, a
    result without id, a click that matches no result, an unreadable time)
    raise or are skipped whole; queries showing no result are dropped and
    counted in ``ReadReport.rows_dropped``.

    The file is parsed as a stream, line by line (memory holds one session), so
    errors name the line of the offending element.

    Args:
        path: The XML file.
        on_bad: ``"error"`` raises at the first bad query; ``"skip"`` leaves it out.

    Returns:
        The canonical log with a :class:`ReadReport` in ``attrs["read_report"]``
        (``rows_read`` counts query elements).

    Raises:
        DataFormatError: Malformed XML (always), or (``on_bad="error"``) a bad query.
    """
    path = Path(path)
    reporter = _Reporter(path, on_bad)
    _require_file(path)
    rows: dict[str, list[object]] = {c: [] for c in C.IMPRESSION_COLUMNS}
    # XMLPullParser is what iterparse runs on; feeding it a line at a time tells
    # the line every element starts on.
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    n_read = n_dropped = n_sessions = 0
    open_interactions = 0  # a <query> inside an <interaction> is its text, never a page

    def handle(events: Iterable[Any], lineno: int) -> None:  # (event, element) pairs
        nonlocal root, n_read, n_dropped, n_sessions, open_interactions
        for event, elem in events:
            if event == "start":
                if root is None:
                    root = elem
                elem.set(_LINE_ATTR, str(lineno))
                open_interactions += elem.tag == "interaction"
                continue
            if elem.tag == "interaction":
                open_interactions -= 1
            elif not (elem.tag == "query" and len(elem) > 0 and open_interactions == 0):
                continue
            n_read += 1
            try:
                query = _tiangong_query(elem, path)
            except DataFormatError as err:
                reporter.bad([err])
            else:
                if not query.docids:
                    n_dropped += 1
                else:
                    k = len(query.docids)
                    rows[C.SESSION_ID].extend([n_sessions] * k)
                    rows[C.TS].extend([query.ts] * k)
                    rows[C.QID].extend([query.qid] * k)
                    rows[C.DOCID].extend(query.docids)
                    rows[C.POSITION].extend(query.ranks)
                    rows[C.CLICK].extend(query.clicks)
                    rows[C.DWELL_S].extend(query.dwell)
                    n_sessions += 1
            # Keep memory bounded: forget the query, detach what the root holds.
            elem.clear()
            if root is not None and root is not elem:
                root.clear()

    try:
        lineno = 0
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                parser.feed(line)
                handle(parser.read_events(), lineno)
        parser.close()
        handle(parser.read_events(), lineno)
    except ET.ParseError as exc:
        raise DataFormatError(f"malformed XML ({exc})", path=path, line=exc.position[0]) from None
    if n_dropped:
        logger.info("%s: dropped %d queries showing no result", path, n_dropped)
    return reporter.finish(_impressions_frame(rows), rows_read=n_read, rows_dropped=n_dropped)


# --------------------------------------------------------------------------------------
# Baidu-ULTR.

_BAIDU_DOCID_COLUMNS: Final = ("query_document_id", "url_md5")
_BAIDU_DWELL_COLUMN: Final = "dwell_time"


def _is_list_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def read_baidu_ultr(
    path: str | Path,
    *,
    on_bad: OnBad = "error",
    max_position: int | None = 10,
    dwell_column: str | None = None,
) -> pd.DataFrame:
    """Read the Baidu-ULTR click subset (Hager et al., 2024) from a parquet file.

    One parquet row per query session, with list columns of equal length per row:

    ========================= ============== ==========================================
    column                    type           use
    ========================= ============== ==========================================
    ``query_id``              str or int     ``qid`` (required)
    ``query_document_id``     list[str|int]  ``docid`` (required, or ``url_md5``)
    or ``url_md5``            list[str]
    ``position``              list[int]      ``position``, 1-based (required)
    ``click``                 list[int|bool] ``click``, 0/1 (required)
    ``dwell_time``            list[float]    ``dwell_s`` if present, else NaN
    ``session_id``            int            ``session_id`` if present, else the row index
    ========================= ============== ==========================================

    Other columns (``query_md5``, ``text_md5``, ``displayed_time``, ``media_type``,
    ``serp_height``, embeddings, ...) are not read. ``displayed_time`` is how long
    a result stayed on screen, not post-click dwell, so it is used only when
    asked for with ``dwell_column="displayed_time"``. The subset has no time
    stamps: ``ts`` is NaN. ``position`` is taken as stored (the subset notes it
    does not always match the original rank).

    A row is bad (and skipped whole with ``on_bad="skip"``) when a list is null
    or of another length than the docid list, or any element breaks the rules
    of :func:`read_impression_log` (a position shown twice in a session, a click
    that is not 0/1, ...). Rows beyond ``max_position`` are then dropped and
    counted in ``ReadReport.rows_dropped``.

    Args:
        path: One parquet file (read column by column; other columns cost nothing).
        on_bad: ``"error"`` raises at the first bad row; ``"skip"`` leaves it out.
        max_position: Keep positions ``<= max_position``; ``None`` keeps all.
        dwell_column: The list column giving ``dwell_s``; default ``dwell_time``
            when present.

    Returns:
        The canonical log, sessions in file order and results in list order,
        with a :class:`ReadReport` in ``attrs["read_report"]`` (``rows_read``
        counts parquet rows; errors name the 0-based parquet row).

    Raises:
        DataFormatError: Unreadable parquet, missing columns or a required
            column that is not a list, or (``on_bad="error"``) a bad row.
        ConfigError: ``max_position`` below 1.
    """
    path = Path(path)
    reporter = _Reporter(path, on_bad)
    if max_position is not None and max_position < 1:
        raise ConfigError(f"max_position must be >= 1 or None, got {max_position}")
    _require_file(path)
    schema = _parquet_schema(path)
    have = schema.names
    doc_col = next((c for c in _BAIDU_DOCID_COLUMNS if c in have), _BAIDU_DOCID_COLUMNS[0])
    if doc_col not in have:
        raise DataFormatError(
            f"missing the docid list column: one of {list(_BAIDU_DOCID_COLUMNS)}; "
            f"the file has {have}",
            path=path,
        )
    _missing_columns(have, path, ["query_id", doc_col, "position", "click"])
    if dwell_column is None and _BAIDU_DWELL_COLUMN in have:
        dwell_column = _BAIDU_DWELL_COLUMN
    if dwell_column is not None:
        _missing_columns(have, path, [dwell_column])
    list_cols = [doc_col, "position", "click"] + ([dwell_column] if dwell_column else [])
    for col in list_cols:
        if not _is_list_type(schema.field(col).type):
            raise DataFormatError(
                f"expected a list column (one list per query session), got {schema.field(col).type}",
                path=path,
                column=col,
            )
    scalar_cols = ["query_id"] + (["session_id"] if "session_id" in have else [])
    table = _read_parquet_columns(path, list(dict.fromkeys(scalar_cols + list_cols)))
    n = table.num_rows

    # Record-level rules: every list present and as long as the docid list.
    def lengths(col: str) -> np.ndarray:
        length = pc.list_value_length(table.column(col)).to_pandas()  # NaN for a null list
        return length.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)

    def null_list(col: str) -> Callable[[int], str]:
        return lambda i: f"{col} is null; expected a list"

    def other_length(col: str, size: np.ndarray) -> Callable[[int], str]:
        return lambda i: f"{col} has {int(size[i])} items but {doc_col} has {int(base[i])}"

    base = lengths(doc_col)
    unit_checks: list[_Check] = []
    for col in list_cols:
        size = lengths(col)
        null = np.isnan(size)
        unit_checks.append(_Check(col, null, null_list(col)))
        if col != doc_col:
            unit_checks.append(
                _Check(col, ~null & ~np.isnan(base) & (size != base), other_length(col, size))
            )
    if "session_id" in have:
        # One row is one query session: a session id on two rows would merge two pages.
        ids = pd.Series(table.column("session_id").to_pandas())
        again = ids.duplicated(keep="first").to_numpy() & ids.notna().to_numpy()
        first_row = pd.Series(np.arange(n)).groupby(ids.to_numpy(), dropna=True).transform("min")

        def repeated_session(i: int) -> str:
            value = ids.iloc[i]
            value = value.item() if isinstance(value, np.generic) else value
            return (
                f"session_id {value!r} is also on row {int(first_row.iloc[i])}; "
                "each row must be one query session"
            )

        unit_checks.append(_Check("session_id", again, repeated_session))
    record_bad = np.logical_or.reduce([c.bad for c in unit_checks]) if n else np.zeros(0, bool)

    good = np.flatnonzero(~record_bad)
    kept = table.take(pa.array(good, type=pa.int64()))
    units = np.repeat(good, base[good].astype(np.int64))
    take_units = pa.array(np.repeat(np.arange(len(good)), base[good].astype(np.int64)))

    def flat(col: str) -> pd.Series:
        return pd.Series(pc.list_flatten(kept.column(col)).to_pandas())

    def repeated(col: str) -> pd.Series:
        return pd.Series(kept.column(col).take(take_units).to_pandas())

    raw = pd.DataFrame(
        {
            C.SESSION_ID: repeated("session_id") if "session_id" in have else pd.Series(units),
            C.TS: pd.Series(np.full(len(units), np.nan)),
            C.QID: repeated("query_id"),
            C.DOCID: flat(doc_col),
            C.POSITION: flat("position"),
            C.CLICK: flat("click"),
            C.DWELL_S: flat(dwell_column)
            if dwell_column
            else pd.Series(np.full(len(units), np.nan)),
        }
    )
    frame = _finish_canonical(
        raw,
        units=units,
        locate=lambda i: {"row": int(i)},
        reporter=reporter,
        names={C.QID: "query_id", C.DOCID: doc_col, C.DWELL_S: dwell_column or C.DWELL_S},
        unit_checks=unit_checks,
    )
    dropped = 0
    if max_position is not None:
        beyond = frame[C.POSITION].to_numpy() > max_position
        dropped = int(beyond.sum())
        if dropped:
            frame = frame[~beyond].reset_index(drop=True)
            logger.info("%s: dropped %d rows beyond position %d", path, dropped, max_position)
    return reporter.finish(frame, rows_read=n, rows_dropped=dropped)


# --------------------------------------------------------------------------------------
# Registry.

def _with_click_report(frame: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The :class:`ReadReport` of a reader that stops at the first bad record."""
    dropped = int(frame.attrs.pop("clicks_dropped", 0))
    merged = int(frame.attrs.pop("clicks_merged", 0))
    frame.attrs[_REPORT_ATTR] = ReadReport(
        path=str(path), rows_read=int(frame[C.SESSION_ID].nunique()), rows_skipped=0,
        first_errors=(),
        clicks_dropped=dropped,
        clicks_merged=merged,
    )  # fmt: skip
    return frame


def _read_yandex(path: str | Path) -> pd.DataFrame:
    return _with_click_report(read_yandex_sample(path), path)


def _read_clara2(path: str | Path) -> pd.DataFrame:
    return _with_click_report(read_clara2(path), path)


_read_yandex.__doc__ = read_yandex_sample.__doc__
_read_clara2.__doc__ = read_clara2.__doc__

LOG_READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "impressions": read_impression_log,
    "yandex": _read_yandex,
    "clara2": _read_clara2,
    "tiangong": read_tiangong_st,
    "baidu-ultr": read_baidu_ultr,
}


def read_click_log(path: str | Path, format: str, **kw: Any) -> pd.DataFrame:
    """Read a click log with the reader registered under ``format`` in :data:`LOG_READERS`.

    Keyword arguments go to the reader. ``yandex`` and ``clara2`` take none: they
    stop at the first bad record, so ``on_bad="error"`` is accepted (and does
    nothing) and ``on_bad="skip"`` is refused.

    Raises:
        ConfigError: Unknown format, or a keyword the reader does not take.
    """
    reader = LOG_READERS.get(format)
    if reader is None:
        raise ConfigError(
            f"unknown click-log format {format!r}; known formats: {sorted(LOG_READERS)}"
        )
    params = inspect.signature(reader).parameters
    takes = list(params)[1:]  # after the path
    if "on_bad" not in params and kw.get("on_bad", "error") == "error":
        kw.pop("on_bad", None)
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [] if any_keyword else [k for k in kw if k not in takes]
    if unknown:
        raise ConfigError(
            f"the {format!r} click-log reader does not take {unknown}; it takes {takes or 'nothing'}"
            + (" and stops at the first bad record" if "on_bad" in unknown else "")
        )
    return reader(path, **kw)


__all__ = [
    "LOG_READERS",
    "ReadReport",
    "read_baidu_ultr",
    "read_click_log",
    "read_impression_log",
    "read_tiangong_st",
]
