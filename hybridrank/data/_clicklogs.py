"""Readers for real click logs into the canonical impression log, and CTR by rank.

The impression log has one row per shown result (see :mod:`hybridrank.columns`):
``session_id, ts, qid, docid, position (1-based), click (0/1), dwell_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.data._text import text_lines
from hybridrank.errors import DataFormatError

logger = logging.getLogger(__name__)


def _impressions_frame(rows: dict[str, list[object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(C.IMPRESSION_COLUMNS))
    return frame.astype(
        {
            C.SESSION_ID: "int64",
            C.TS: "float64",
            C.QID: "str",
            C.DOCID: "str",
            C.POSITION: "int16",
            C.CLICK: "int8",
            C.DWELL_S: "float64",
        }
    )


def read_yandex_sample(path: str | Path) -> pd.DataFrame:
    """Read the Yandex relevance-prediction sample as shipped with PyClick.

    A line holds ``;``-separated sessions ``QUERY<TAB>URL1,...,URL10 : CLICKED``
    where ``CLICKED`` is a comma-separated list of clicked URLs (possibly
    repeated, possibly empty). Each session becomes 10 impression rows; a URL
    counts as clicked once however often it was clicked. Dwell is unknown (NaN).
    An empty URL slot shows nothing: no row, and the URLs after it keep their
    positions. A clicked URL the session did not show is left out, counted in
    ``frame.attrs["clicks_dropped"]`` and logged; repeated clicks on a shown URL,
    folded into its one click, are counted in ``frame.attrs["clicks_merged"]``.
    """
    path = Path(path)
    rows: dict[str, list[object]] = {c: [] for c in C.IMPRESSION_COLUMNS}
    session = 0
    dropped = 0
    merged = 0
    for lineno, line in text_lines(path):
        for record in line.split(";"):
            record = record.strip()
            if not record:
                continue
            head, sep, clicked_part = record.partition(":")
            if not sep or "\t" not in head:
                raise DataFormatError(
                    f"session {record[:40]!r} is not 'QUERY<TAB>URLS : CLICKS'",
                    path=path,
                    line=lineno,
                )
            query, urls_part = head.split("\t", 1)
            slots = [u.strip() for u in urls_part.split(",")]
            if not any(slots):
                raise DataFormatError("session shows no URLs", path=path, line=lineno)
            tokens = [u.strip() for u in clicked_part.split(",") if u.strip()]
            clicked, on_page = set(tokens), set(slots)
            dropped += len(clicked - on_page)
            merged += sum(u in on_page for u in tokens) - len(clicked & on_page)
            for pos, url in enumerate(slots, start=1):
                if not url:
                    continue
                rows[C.SESSION_ID].append(session)
                rows[C.TS].append(float(session))
                rows[C.QID].append(query.strip())
                rows[C.DOCID].append(url)
                rows[C.POSITION].append(pos)
                rows[C.CLICK].append(int(url in clicked))
                rows[C.DWELL_S].append(np.nan)
            session += 1
    if dropped:
        logger.warning("%s: %d clicks on URLs their session did not show; skipped", path, dropped)
    frame = _impressions_frame(rows)
    frame.attrs["clicks_dropped"] = dropped
    frame.attrs["clicks_merged"] = merged
    return frame


#: CLARA2's TIME field counts milliseconds (see :func:`read_clara2`).
CLARA2_TIME_UNITS_PER_S = 1000.0


def read_clara2(path: str | Path) -> pd.DataFrame:
    """Read the NAVER CLARA2 search log (``CLARA2SearchLog_beta``).

    ``Q`` rows are ``SESSION TIME Q QUERY_ID REGION URL1..URL10`` and ``C`` rows
    ``SESSION TIME C URL``. A click belongs to the latest impression of the same
    session that shows its URL; a click matching no impression is counted and
    logged. TIME counts milliseconds (a session's first click follows its query
    by a median of 3,204 in the shared sample: 3.2 seconds, not 53 minutes), so
    ``ts`` and ``dwell_s`` are TIME / 1000, in seconds as everywhere else (a
    dataset imported before 2026-12-05 holds milliseconds: import it again).
    Dwell is the time to the session's next event (NaN for the last event). The
    count of clicks left out is in ``frame.attrs["clicks_dropped"]``; a repeated click on a result already
    clicked on that page is folded into its one click (the later click's dwell)
    and counted in ``frame.attrs["clicks_merged"]``. A ``Q`` row must hold its
    ten URL slots (15 tab-separated fields; an empty slot keeps its tab).
    """
    path = Path(path)
    impressions: list[tuple[int, float, str, list[str], int]] = []
    clicks: list[tuple[int, float, str, int]] = []
    last = ""
    for lineno, line in text_lines(path):
        last = line
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f for f in line.rstrip("\n").split("\t")]
        if len(fields) < 4:
            raise DataFormatError(
                f"expected at least 4 fields, got {len(fields)}", path=path, line=lineno
            )
        try:
            session, ts = int(fields[0]), float(fields[1]) / CLARA2_TIME_UNITS_PER_S
        except ValueError:
            raise DataFormatError(
                "SESSION and TIME must be numbers",
                path=path,
                line=lineno,
                column="session/time",
            ) from None
        kind = fields[2]
        if kind == "Q":
            if len(fields) != 15:
                raise DataFormatError(
                    f"a query row has {len(fields)} fields, expected 15 (SESSION TIME Q "
                    "QUERY_ID REGION URL1..URL10; an empty URL slot keeps its tab): was "
                    "the line cut or a tab lost?",
                    path=path,
                    line=lineno,
                    column="urls",
                )
            urls = list(fields[5:])  # an empty slot keeps the positions after it
            if not any(urls):
                raise DataFormatError("query row shows no URLs", path=path, line=lineno)
            impressions.append((session, ts, fields[3], urls, lineno))
        elif kind == "C":
            clicks.append((session, ts, fields[3], lineno))
        else:
            raise DataFormatError(
                f"unknown row type {kind!r} (Q or C)", path=path, line=lineno, column="type"
            )

    if last and not last.endswith("\n"):
        logger.warning(
            "%s: no newline after the last line: if the file was cut there, its last value "
            "is partial", path,
        )  # fmt: skip
    # Attribute each click to the latest earlier impression of its session showing the URL.
    by_session: dict[int, list[int]] = {}
    for idx, (session, *_rest) in enumerate(impressions):
        by_session.setdefault(session, []).append(idx)
    clicked: set[tuple[int, str]] = set()
    events: dict[int, list[float]] = {}
    for session, ts, *_unused in impressions:
        events.setdefault(session, []).append(ts)
    for session, ts, _url, _ in clicks:
        events.setdefault(session, []).append(ts)
    click_dwell: dict[tuple[int, str], float] = {}
    unmatched = 0
    merged = 0
    for session, ts, url, _lineno in clicks:
        match = None
        for idx in reversed(by_session.get(session, [])):
            if impressions[idx][1] <= ts and url in impressions[idx][3]:
                match = idx
                break
        if match is None:
            unmatched += 1
            continue
        merged += (match, url) in clicked
        clicked.add((match, url))
        later = [t for t in events[session] if t > ts]
        click_dwell[(match, url)] = (min(later) - ts) if later else np.nan
    if unmatched:
        logger.warning(
            "%s: %d clicks match no impression of their session; skipped", path, unmatched
        )

    rows: dict[str, list[object]] = {c: [] for c in C.IMPRESSION_COLUMNS}
    for idx, (_session, ts, query, urls, _lineno) in enumerate(impressions):
        for pos, url in enumerate(urls, start=1):
            if not url:
                continue
            is_click = (idx, url) in clicked
            rows[C.SESSION_ID].append(idx)
            rows[C.TS].append(ts)
            rows[C.QID].append(query)
            rows[C.DOCID].append(url)
            rows[C.POSITION].append(pos)
            rows[C.CLICK].append(int(is_click))
            rows[C.DWELL_S].append(click_dwell.get((idx, url), np.nan) if is_click else np.nan)
    frame = _impressions_frame(rows)
    frame.attrs["clicks_dropped"] = unmatched
    frame.attrs["clicks_merged"] = merged
    return frame


def ctr_by_rank(log: pd.DataFrame, *, max_rank: int = 10) -> np.ndarray:
    """Click-through rate at positions 1..max_rank of an impression log.

    Returns:
        Array of shape ``(max_rank,)``; NaN at a position never shown.
    """
    pos = log[C.POSITION].to_numpy()
    keep = (pos >= 1) & (pos <= max_rank)
    shown = np.bincount(pos[keep] - 1, minlength=max_rank).astype(float)
    clicked = np.bincount(pos[keep] - 1, weights=log[C.CLICK].to_numpy()[keep], minlength=max_rank)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(shown > 0, clicked / shown, np.nan)


def examination_from_ctr(ctr: np.ndarray) -> np.ndarray:
    """Examination-by-rank curve from CTR by rank, normalised to 1 at rank 1.

    Treats CTR(r) = exam(r) * mean attractiveness, with mean attractiveness
    the same at every rank: a first-order estimate that ignores that better
    documents sit higher (so it somewhat overstates the decay).
    """
    ctr = np.asarray(ctr, dtype=float)
    if not np.isfinite(ctr[0]) or ctr[0] <= 0:
        raise ValueError("CTR at rank 1 must be positive to normalise the curve")
    return np.minimum(ctr / ctr[0], 1.0)
