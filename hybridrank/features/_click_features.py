"""Click features computed from a training impression log (never from expert labels).

One implementation serves pandas and Dask DataFrames: the code uses only
column arithmetic, ``groupby(...).sum()/max()/min()`` and ``merge``, which
both libraries provide with the same meaning, and returns frames of the same
library it was given (call ``.compute()`` on Dask results).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank.errors import ConfigError, DataFormatError, MissingColumnError, MissingInputError

logger = logging.getLogger(__name__)

#: Query-document click features, in output order.
PAIR_FEATURES: tuple[str, ...] = (
    "qd_impressions",
    "qd_clicks",
    "qd_ctr",
    "qd_ctr_smooth",
    "qd_debiased_ctr",
    "qd_debiased_ctr_smooth",
    "qd_mean_position",
    "qd_first_click_rate",
    "qd_last_click_rate",
    "qd_skip_above_rate",
    "qd_mean_dwell",
    "qd_sat_click_rate",
)
#: Document features aggregated across queries (authority, quality, popularity).
DOC_FEATURES: tuple[str, ...] = (
    "doc_impressions",
    "doc_clicks",
    "doc_ctr_smooth",
    "doc_debiased_ctr_smooth",
    "doc_sat_share",
    "doc_n_queries",
)
#: Query features.
QUERY_FEATURES: tuple[str, ...] = (
    "q_sessions",
    "q_click_entropy",
    "q_abandonment_rate",
    "q_clicks_per_session",
)
CLICK_FEATURES: tuple[str, ...] = PAIR_FEATURES + DOC_FEATURES + QUERY_FEATURES


@dataclass(frozen=True)
class ClickFeatureConfig:
    """Options of the click features.

    Attributes:
        examination: Examination probability by rank 1..n used to debias CTR
            (clicks / expected examinations); None means the click world's
            default curve. Pass a click model's ``examination_`` to use a
            fitted one.
        prior_strength: Pseudo-impressions of the Bayesian smoothing: a
            smoothed rate is ``(clicks + m * prior) / (impressions + m)`` with
            the log's global rate as ``prior``.
        sat_dwell_s: A click with at least this dwell is a satisfied click.
    """

    examination: tuple[float, ...] | None = None
    prior_strength: float = 5.0
    sat_dwell_s: float = 30.0

    def __post_init__(self) -> None:
        if self.prior_strength < 0 or self.sat_dwell_s < 0:
            raise ConfigError("click_features: prior_strength and sat_dwell_s must be >= 0")
        if self.examination is not None and any(not 0 < e <= 1 for e in self.examination):
            raise ConfigError("click_features.examination must be probabilities in (0, 1]")

    @classmethod
    def from_dict(cls, values: Any) -> ClickFeatureConfig:
        return config_from_dict(cls, values, "click_features")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


@dataclass(frozen=True)
class ClickFeatures:
    """Click features of one log at three levels.

    Attributes:
        pairs: ``qid, docid`` and :data:`PAIR_FEATURES`.
        docs: ``docid`` and :data:`DOC_FEATURES`.
        queries: ``qid`` and :data:`QUERY_FEATURES`.
    """

    pairs: Any
    docs: Any
    queries: Any


def _examination(config: ClickFeatureConfig) -> np.ndarray:
    if config.examination is not None:
        return np.asarray(config.examination, dtype=np.float64)
    from hybridrank.data import DEFAULT_EXAMINATION

    return np.asarray(DEFAULT_EXAMINATION, dtype=np.float64)


def _smooth(clicks: Any, impressions: Any, prior: float, strength: float) -> Any:
    return (clicks + strength * prior) / (impressions + strength)


def compute_click_features(log: Any, config: ClickFeatureConfig | None = None) -> ClickFeatures:
    """Aggregate an impression log into query-document, document and query features.

    Args:
        log: Impression log (pandas or Dask DataFrame) with the columns of
            :data:`hybridrank.columns.IMPRESSION_COLUMNS`.
        config: Debiasing curve, smoothing and satisfaction threshold.

    Returns:
        :class:`ClickFeatures`; rates are NaN where the denominator is 0.
    """
    config = config or ClickFeatureConfig()
    missing = [c for c in C.IMPRESSION_COLUMNS if c not in log.columns]
    if missing:
        raise MissingColumnError(f"impression log lacks columns {missing}")
    exam = _examination(config)
    # Examination beyond the curve's end: keep its last value.
    pos = log[C.POSITION].astype("int64")

    def lookup(p: pd.Series) -> pd.Series:
        idx = np.clip(p.to_numpy(dtype=np.int64), 1, len(exam)) - 1
        return pd.Series(exam[idx], index=p.index, dtype="float64")

    exam_of_row = pos.map_partitions(lookup, meta=("_exam", "f8")) if _is_dask(log) else lookup(pos)
    click = log[C.CLICK].astype("int64")
    dwell = log[C.DWELL_S].fillna(0.0)
    sat = ((click == 1) & (dwell >= config.sat_dwell_s)).astype("int64")

    # Group by integer codes: pandas factorises string keys on every groupby,
    # which dominated the run time; factorise once and decode at the end.
    # (Dask keeps the strings: a global factorisation would need a full pass.)
    if _is_dask(log):
        qkey, dkey, q_uniques, d_uniques = log[C.QID], log[C.DOCID], None, None
    else:
        q_codes, q_uniques = pd.factorize(log[C.QID])
        d_codes, d_uniques = pd.factorize(log[C.DOCID])
        qkey = pd.Series(q_codes, index=log.index)
        dkey = pd.Series(d_codes, index=log.index)

    # First and last clicked position per session, from the clicked rows only
    # (sessions without a click have neither), and the log-wide totals.
    clicked = log[[C.SESSION_ID]].assign(_clickpos=pos)[click == 1]
    per_session = clicked.groupby(C.SESSION_ID)["_clickpos"].agg(["min", "max"])
    total_imp = click.count()
    total_click = click.sum()
    total_exam = exam_of_row.sum()
    if _is_dask(log):
        # One pass over the log. The per-session table (one row per session
        # with a click) comes back to this process and is looked up from each
        # log partition where it lies: a broadcast join, never a shuffle of the log.
        per_session, total_imp, total_click, total_exam = _compute(
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
    )
    rows = (
        rows.map_partitions(session_clicks.attach, meta=session_clicks.attach(rows._meta))
        if _is_dask(log)
        else session_clicks.attach(rows)
    )
    rows = rows.assign(
        _first_click=((rows["_pos"] == rows["_first"]) & (rows["_click"] == 1)).astype("int64"),
        _last_click=((rows["_pos"] == rows["_last"]) & (rows["_click"] == 1)).astype("int64"),
        _skip_above=((rows["_click"] == 0) & (rows["_pos"] < rows["_last"])).astype("int64"),
    )
    sums = [
        "_imp",
        "_click",
        "_exam",
        "_pos",
        "_dwell",
        "_sat",
        "_first_click",
        "_last_click",
        "_skip_above",
    ]

    global_ctr = float(total_click) / max(float(total_imp), 1.0)
    global_debiased = float(total_click) / max(float(total_exam), 1e-12)
    m = config.prior_strength

    pair = _group_sum(rows, [_Q, _D], sums)
    imp = pair["_imp"]
    clicks = pair["_click"]
    pairs = pair[[_Q, _D]].assign(
        qd_impressions=imp.astype("float64"),
        qd_clicks=clicks.astype("float64"),
        qd_ctr=clicks / imp,
        qd_ctr_smooth=_smooth(clicks, imp, global_ctr, m),
        qd_debiased_ctr=clicks / pair["_exam"],
        qd_debiased_ctr_smooth=_smooth(clicks, pair["_exam"], global_debiased, m),
        qd_mean_position=pair["_pos"] / imp,
        qd_first_click_rate=pair["_first_click"] / imp,
        qd_last_click_rate=pair["_last_click"] / imp,
        qd_skip_above_rate=pair["_skip_above"] / imp,
        qd_mean_dwell=(pair["_dwell"] / clicks).where(clicks > 0),
        qd_sat_click_rate=pair["_sat"] / imp,
    )

    doc = _group_sum(rows, [_D], ["_imp", "_click", "_exam", "_sat"])
    # Aggregates below start again from `rows`, not from `pair`: Dask's column
    # projection through a reused multi-column groupby drops columns it needs.
    qd_clicks = _group_sum(rows, [_Q, _D], ["_click"])
    n_queries = _group_sum(rows[[_Q, _D]].drop_duplicates().assign(_one=1), [_D], ["_one"])
    doc = doc.merge(n_queries, on=_D, how="left")
    dimp, dclick = doc["_imp"], doc["_click"]
    docs = doc[[_D]].assign(
        doc_impressions=dimp.astype("float64"),
        doc_clicks=dclick.astype("float64"),
        doc_ctr_smooth=_smooth(dclick, dimp, global_ctr, m),
        doc_debiased_ctr_smooth=_smooth(dclick, doc["_exam"], global_debiased, m),
        doc_sat_share=(doc["_sat"] / dclick).where(dclick > 0),
        doc_n_queries=doc["_one"].astype("float64"),
    )

    # One group per session: on Dask, spread over several output partitions.
    sessions = _group_sum(rows, [C.SESSION_ID, _Q], ["_click"], split_out=_split_out(log))
    sessions = sessions.rename(columns={"_click": "_sclicks"})
    sessions = sessions.assign(_one=1, _abandoned=(sessions["_sclicks"] == 0).astype("int64"))
    q = _group_sum(sessions, [_Q], ["_one", "_abandoned", "_sclicks"])
    # Click entropy: spread of the query's clicks over its documents.
    qd = qd_clicks
    qclicks = _group_sum(qd, [_Q], ["_click"]).rename(columns={"_click": "_qclicks"})
    qd = qd.merge(qclicks, on=_Q, how="left")
    p = (qd["_click"] / qd["_qclicks"]).where(qd["_click"] > 0, 1.0)
    qd = qd.assign(_h=-(p * np.log2(p)))
    entropy = _group_sum(qd, [_Q], ["_h"])
    q = q.merge(entropy, on=_Q, how="left")
    queries = q[[_Q]].assign(
        q_sessions=q["_one"].astype("float64"),
        q_click_entropy=q["_h"],
        q_abandonment_rate=q["_abandoned"] / q["_one"],
        q_clicks_per_session=q["_sclicks"] / q["_one"],
    )
    pairs = _decode(_decode(pairs, _Q, C.QID, q_uniques), _D, C.DOCID, d_uniques)
    docs = _decode(docs, _D, C.DOCID, d_uniques)
    queries = _decode(queries, _Q, C.QID, q_uniques)
    return ClickFeatures(pairs=pairs, docs=docs, queries=queries)


_Q, _D = "_q", "_d"


@dataclass(frozen=True)
class _SessionClicks:
    """First and last clicked position of each session with a click, sorted by session id.

    ``attach`` adds them to rows as ``_first`` / ``_last`` (NaN for sessions
    without a click) by binary search: the same lookup for a pandas frame and
    for every Dask partition, with no hash table rebuilt per partition.
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
        return rows.assign(_first=first, _last=last)


def _group_sum(frame: Any, keys: list[str], cols: list[str], split_out: int = 1) -> Any:
    """``frame.groupby(keys)[cols].sum().reset_index()``, the same call for pandas and Dask."""
    grouped = frame[[*keys, *cols]].groupby(keys)[cols]
    summed = grouped.sum(split_out=split_out) if _is_dask(frame) else grouped.sum()
    return summed.reset_index()


def _split_out(frame: Any) -> int:
    """Output partitions of a Dask groupby with about one group per input row's session:
    one per 16 input partitions, so no single partition holds every session."""
    return max(1, int(frame.npartitions) // 16) if _is_dask(frame) else 1


def _decode(frame: Any, code: str, name: str, uniques: Any) -> Any:
    """Replace an integer key column by the original ids (identity for Dask's string keys)."""
    if uniques is None:
        out = frame.rename(columns={code: name})
    else:
        out = frame.assign(**{code: np.asarray(uniques, dtype=object)[frame[code].to_numpy()]})
        out = out.rename(columns={code: name})
    # The same string dtype from both paths (Dask's groupby keys come back as ``string``).
    out[name] = out[name].astype("str")
    return out


def join_click_features(candidates: pd.DataFrame, features: ClickFeatures) -> pd.DataFrame:
    """Left-join click features onto a candidate table, keeping its row order.

    Candidates never shown get 0 impressions and clicks and NaN rates (the
    GBDT treats NaN as missing: "no click evidence" is its own regime).
    """
    out = candidates.drop(columns=[c for c in CLICK_FEATURES if c in candidates.columns])
    n = len(out)
    out = out.merge(_pandas(features.pairs), on=[C.QID, C.DOCID], how="left")
    out = out.merge(_pandas(features.docs), on=C.DOCID, how="left")
    out = out.merge(_pandas(features.queries), on=C.QID, how="left")
    if len(out) != n:
        raise ValueError("click features hold duplicate keys; the join changed the row count")
    counts = [
        "qd_impressions",
        "qd_clicks",
        "doc_impressions",
        "doc_clicks",
        "doc_n_queries",
        "q_sessions",
    ]
    out[counts] = out[counts].fillna(0.0)
    return out


def _is_dask(frame: Any) -> bool:
    return type(frame).__module__.startswith("dask")


def _pandas(frame: Any) -> pd.DataFrame:
    return frame.compute() if _is_dask(frame) else frame


def _compute(*values: Any) -> Sequence[Any]:
    import dask

    result: Sequence[Any] = dask.compute(*values)
    return result


# ------------------------------------------------------------ parquet logs


def compute_click_features_parquet(
    path: str | Path,
    config: ClickFeatureConfig | None = None,
    *,
    dask: bool = True,
    partition_rows: int = 1_000_000,
    scheduler: str | None = None,
) -> ClickFeatures:
    """Click features of a parquet impression log: one file or a directory of files.

    With ``dask=True`` the log is read lazily, one partition per run of row
    groups of about ``partition_rows`` rows, and aggregated by
    :func:`compute_click_features` on Dask: memory stays bounded by a few
    partitions plus the aggregates (the per-session click table, the pair,
    document and query tables), whatever the log's size. ``dask=False``
    reads the whole log with pandas. Both give the same features.

    Args:
        path: A ``.parquet`` file, or a directory searched for ``*.parquet``.
        config: Debiasing curve, smoothing and satisfaction threshold.
        dask: Aggregate out of core with ``dask.dataframe``.
        partition_rows: Rows per Dask partition (whole row groups are
            combined up to it; a larger row group is one partition). Rows,
            not bytes: parquet's sizes are of dictionary-encoded data, many
            times smaller than the frames in memory.
        scheduler: Dask scheduler for this call (``"threads"``,
            ``"processes"``, ``"sync"``); None uses Dask's default (a
            ``distributed.Client`` if one is active, else threads).

    Returns:
        :class:`ClickFeatures` of pandas frames.

    Raises:
        FileNotFoundError: ``path`` is missing or holds no parquet file.
        DataFormatError: A file is corrupt or truncated, or lacks impression
            columns; the message names the file.
    """
    files = _parquet_files(path)
    parts = _row_group_parts(files, partition_rows)
    if not dask:
        log = pd.concat([_read_part(part) for part in parts], ignore_index=True)
        return compute_click_features(log, config)

    import dask as dask_
    import dask.dataframe as dd

    meta = _read_part((parts[0][0], []))
    log_dd = dd.from_map(_read_part, parts, meta=meta, enforce_metadata=False)
    with dask_.config.set(scheduler=scheduler) if scheduler else nullcontext():
        feats = compute_click_features(log_dd, config)
        pairs, docs, queries = _compute(feats.pairs, feats.docs, feats.queries)
    return ClickFeatures(pairs=pairs, docs=docs, queries=queries)


def _parquet_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file())
        if not files:
            raise MissingInputError(f"{p}: no *.parquet files in this directory")
        return files
    if not p.exists():
        raise MissingInputError(f"{p}: no such impression log")
    return [p]


def _row_group_parts(files: Sequence[Path], max_rows: int) -> list[tuple[Path, list[int]]]:
    """Runs of consecutive row groups of at most ``max_rows`` rows (or one bigger row group),
    checking every file's footer."""
    import pyarrow.parquet as pq

    parts: list[tuple[Path, list[int]]] = []
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise DataFormatError(
                f"not a readable parquet file ({_one_line(exc)}); it is corrupt or truncated: "
                "rewrite it, or move it out of the log",
                path=f,
            ) from None
        names = set(meta.schema.names)
        missing = [c for c in C.IMPRESSION_COLUMNS if c not in names]
        if missing:
            raise DataFormatError(f"impression log file lacks columns {missing}", path=f)
        run: list[int] = []
        rows = 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            if run and rows + n > max_rows:
                parts.append((f, run))
                run, rows = [], 0
            run.append(i)
            rows += n
        if run or meta.num_row_groups == 0:
            parts.append((f, run))
    return parts


def _read_part(part: tuple[Path, list[int]]) -> pd.DataFrame:
    """The impression columns of some row groups of one file (an empty frame for none)."""
    import pyarrow.parquet as pq

    path, row_groups = part
    try:
        pf = pq.ParquetFile(path)
        if row_groups:
            table = pf.read_row_groups(row_groups, columns=list(C.IMPRESSION_COLUMNS))
        else:
            table = pf.schema_arrow.empty_table().select(list(C.IMPRESSION_COLUMNS))
    except Exception as exc:
        raise DataFormatError(
            f"cannot read row groups {row_groups} ({_one_line(exc)}); the file is corrupt or truncated: "
            "rewrite it, or move it out of the log",
            path=path,
        ) from None
    return table.to_pandas()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
