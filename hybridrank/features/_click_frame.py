"""The dataframe engine of the click features: the sums in pandas or Dask column arithmetic.

The code uses only column arithmetic, ``groupby(...).sum()/min()/max()`` and
``merge``, which pandas and Dask provide with the same meaning, and returns
frames of the library it was given. On Dask it is the cluster engine: one
pass over the log, a broadcast of the per-session click table, and no shuffle
of the log itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.features._click_definitions import (
    DOC_SUMS,
    PAIR_SUMS,
    QUERY_SUMS,
    ClickSums,
    entropy_terms,
)

_Q, _D = "_q", "_d"
# Per-row terms summed into each level of ClickSums, in the order of its columns.
_PAIR_TERMS = (
    "_imp", "_click", "_exam", "_pos", "_dwell", "_sat", "_first", "_last", "_skip", "_dwell_n",
)  # fmt: skip
_DOC_TERMS = ("_imp", "_click", "_exam", "_sat", "_one")
_QUERY_TERMS = ("_sessions", "_abandoned", "_sclicks", "_h")
_Totals = tuple[float, float, float]
_Uniques = tuple[Any, Any]


def frame_sums(log: Any, exam: np.ndarray, sat_dwell_s: float) -> ClickSums:
    """The :class:`ClickSums` of a pandas or Dask impression log (lazy for Dask)."""
    rows, totals, (q_uniques, d_uniques) = _rows(log, exam, sat_dwell_s)
    pairs = _group_sum(rows, [_Q, _D], list(_PAIR_TERMS))
    docs = _doc_sums(rows)
    queries = _query_sums(rows, split_out=_split_out(log))
    # One mapping per level, naming only its columns: Dask pushes column
    # projections back through a rename, and an ambiguous inverse breaks it.
    pair_names = dict(zip(_PAIR_TERMS, PAIR_SUMS, strict=True))
    doc_names = dict(zip(_DOC_TERMS, DOC_SUMS, strict=True))
    query_names = dict(zip(_QUERY_TERMS, QUERY_SUMS, strict=True))
    impressions, clicks, examinations = totals
    return ClickSums(
        pairs=_decode(_decode(pairs, _Q, C.QID, q_uniques), _D, C.DOCID, d_uniques).rename(
            columns=pair_names
        ),
        docs=_decode(docs, _D, C.DOCID, d_uniques).rename(columns=doc_names),
        queries=_decode(queries, _Q, C.QID, q_uniques).rename(columns=query_names),
        impressions=impressions,
        clicks=clicks,
        examinations=examinations,
    )


def _rows(log: Any, exam: np.ndarray, sat_dwell_s: float) -> tuple[Any, _Totals, _Uniques]:
    """Per-row terms of the sums; the log's totals (impressions, clicks, examinations);
    the ids of the integer query and document keys (None for Dask's string keys)."""
    dask = is_dask(log)
    pos = log[C.POSITION].astype("int64")

    def lookup(p: pd.Series) -> pd.Series:
        # Examination beyond the curve's end: keep its last value.
        idx = np.clip(p.to_numpy(dtype=np.int64), 1, len(exam)) - 1
        return pd.Series(exam[idx], index=p.index, dtype="float64")

    exam_of_row = pos.map_partitions(lookup, meta=("_exam", "f8")) if dask else lookup(pos)
    click = log[C.CLICK].astype("int64")
    known = ~log[C.DWELL_S].isna()
    dwell = log[C.DWELL_S].fillna(0.0)
    sat = ((click == 1) & (dwell >= sat_dwell_s)).astype("int64")

    # Group by integer codes: pandas factorises string keys on every groupby,
    # which dominated the run time; factorise once and decode at the end.
    # (Dask keeps the strings: a global factorisation would need a full pass.)
    uniques: _Uniques = (None, None)
    if dask:
        qkey, dkey = log[C.QID], log[C.DOCID]
    else:
        q_codes, q_uniques = pd.factorize(log[C.QID])
        d_codes, d_uniques = pd.factorize(log[C.DOCID])
        qkey = pd.Series(q_codes, index=log.index)
        dkey = pd.Series(d_codes, index=log.index)
        uniques = (q_uniques, d_uniques)

    # First and last clicked position per session, from the clicked rows only
    # (sessions without a click have neither), and the log-wide totals.
    clicked = log[[C.SESSION_ID]].assign(_clickpos=pos)[click == 1]
    per_session = clicked.groupby(C.SESSION_ID)["_clickpos"].agg(["min", "max"])
    total_imp, total_click, total_exam = click.count(), click.sum(), exam_of_row.sum()
    if dask:
        # One pass over the log. The per-session table (one row per session
        # with a click) comes back to this process and is looked up from each
        # log partition where it lies: a broadcast join, never a shuffle of the log.
        per_session, total_imp, total_click, total_exam = compute(
            per_session, total_imp, total_click, total_exam
        )
    session_clicks = _SessionClicks.of(per_session)
    rows = log[[C.SESSION_ID]].assign(
        _q=qkey,
        _d=dkey,
        _imp=1,
        _click=click,
        _exam=exam_of_row,
        _pos=pos.astype("float64"),
        _dwell=dwell.where(click == 1, 0.0),
        _sat=sat,
        _dwell_n=((click == 1) & known).astype("int64"),
    )
    rows = (
        rows.map_partitions(session_clicks.attach, meta=session_clicks.attach(rows._meta))
        if dask
        else session_clicks.attach(rows)
    )
    clicked_row = rows["_click"] == 1
    rows = rows.assign(
        _first=((rows["_pos"] == rows["_first_pos"]) & clicked_row).astype("int64"),
        _last=((rows["_pos"] == rows["_last_pos"]) & clicked_row).astype("int64"),
        _skip=((rows["_click"] == 0) & (rows["_pos"] < rows["_last_pos"])).astype("int64"),
    )
    return rows, (float(total_imp), float(total_click), float(total_exam)), uniques


def _doc_sums(rows: Any) -> Any:
    doc = _group_sum(rows, [_D], ["_imp", "_click", "_exam", "_sat"])
    # Start again from `rows`, not from the pair sums: Dask's column projection
    # through a reused multi-column groupby drops columns it needs.
    n_queries = _group_sum(rows[[_Q, _D]].drop_duplicates().assign(_one=1), [_D], ["_one"])
    return doc.merge(n_queries, on=_D, how="left")


def _query_sums(rows: Any, split_out: int) -> Any:
    # One group per session: on Dask, spread over several output partitions.
    sessions = _group_sum(rows, [C.SESSION_ID, _Q], ["_click"], split_out=split_out)
    sessions = sessions.rename(columns={"_click": "_sclicks"})
    sessions = sessions.assign(_sessions=1, _abandoned=(sessions["_sclicks"] == 0).astype("int64"))
    q = _group_sum(sessions, [_Q], ["_sessions", "_abandoned", "_sclicks"])
    qd = _group_sum(rows, [_Q, _D], ["_click"])
    qclicks = _group_sum(qd, [_Q], ["_click"]).rename(columns={"_click": "_qclicks"})
    qd = qd.merge(qclicks, on=_Q, how="left")
    qd = qd.assign(_h=entropy_terms(qd["_click"], qd["_qclicks"]))
    return q.merge(_group_sum(qd, [_Q], ["_h"]), on=_Q, how="left")


@dataclass(frozen=True)
class _SessionClicks:
    """First and last clicked position of each session with a click, sorted by session id.

    ``attach`` adds them to rows as ``_first_pos`` / ``_last_pos`` (NaN for
    sessions without a click) by binary search: the same lookup for a pandas
    frame and for every Dask partition, with no hash table rebuilt per partition.
    """

    sessions: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, per_session: pd.DataFrame) -> _SessionClicks:
        ordered = per_session.sort_index()
        return cls(
            sessions=ordered.index.to_numpy(),
            first=ordered["min"].to_numpy(dtype=np.float64),
            last=ordered["max"].to_numpy(dtype=np.float64),
        )

    def attach(self, rows: pd.DataFrame) -> pd.DataFrame:
        sid = rows[C.SESSION_ID].to_numpy()
        if self.sessions.size == 0:
            first = last = np.full(sid.shape[0], np.nan)
        else:
            at = np.minimum(np.searchsorted(self.sessions, sid), self.sessions.size - 1)
            found = self.sessions[at] == sid
            first = np.where(found, self.first[at], np.nan)
            last = np.where(found, self.last[at], np.nan)
        return rows.assign(_first_pos=first, _last_pos=last)


def _group_sum(frame: Any, keys: list[str], cols: list[str], split_out: int = 1) -> Any:
    """``frame.groupby(keys)[cols].sum().reset_index()``, the same call for pandas and Dask."""
    grouped = frame[[*keys, *cols]].groupby(keys)[cols]
    summed = grouped.sum(split_out=split_out) if is_dask(frame) else grouped.sum()
    return summed.reset_index()


def _split_out(frame: Any) -> int:
    """Output partitions of a Dask groupby with about one group per input row's session:
    one per 16 input partitions, so no single partition holds every session."""
    return max(1, int(frame.npartitions) // 16) if is_dask(frame) else 1


def _decode(frame: Any, code: str, name: str, uniques: Any) -> Any:
    """Replace an integer key column by the original ids (identity for Dask's string keys)."""
    if uniques is None:
        out = frame.rename(columns={code: name})
    else:
        out = frame.assign(**{code: np.asarray(uniques, dtype=object)[frame[code].to_numpy()]})
        out = out.rename(columns={code: name})
    # The same string dtype from every engine (Dask's groupby keys come back as ``string``).
    out[name] = out[name].astype("str")
    return out


def is_dask(frame: Any) -> bool:
    return type(frame).__module__.startswith("dask")


def compute(*values: Any) -> Sequence[Any]:
    import dask

    result: Sequence[Any] = dask.compute(*values)
    return result
