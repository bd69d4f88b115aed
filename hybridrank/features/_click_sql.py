"""The DuckDB engine of the click features: the sums as SQL, in memory or out of core.

One SQL definition serves every single-machine input: a pandas frame or an
Arrow table (scanned in place) and a list of parquet files (streamed, so the
log is never in memory). DuckDB runs it on every core of the machine within
``memory_limit``, spilling its hash tables and window partitions to a
temporary directory beyond it: the run's memory is bounded whatever the
log's size.

Float sums (examination, dwell, click entropy) are accumulated as 128-bit
decimals, whose addition is exact: the result does not depend on how the
threads split the rows, so two runs, or a frame and its parquet files, give
identical features.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.features._click_definitions import ClickSums

if TYPE_CHECKING:
    from hybridrank.features._click_features import ClickFeatureConfig

logger = logging.getLogger(__name__)

# Fixed-point types of the exact float sums. Rounding each term to 17 decimals
# (examination probabilities, in (0, 1]) or 18 (dwells, in seconds, below 1e20)
# keeps the sums within 1e-12 of the float ones for dwells from a microsecond
# up; 30 decimals for the entropy terms, which lie in [0, 0.54].
_EXAM = "DECIMAL(18, 17)"
_DWELL = "DECIMAL(38, 18)"
_ENTROPY = "DECIMAL(38, 30)"

# The log relation ``log`` holds the impression columns. Filled in by ``str.format``
# with numbers this module formats (DuckDB takes no parameters in DDL):
# ``exam``, the examination curve as a list literal, ``n_exam`` its length and
# ``sat_dwell_s``.
_PAIR_SUMS = f"""
CREATE TEMP TABLE pair_sums AS
WITH rows AS (
    SELECT
        {C.QID} AS qid,
        {C.DOCID} AS docid,
        {C.POSITION}::BIGINT AS position,
        {C.CLICK}::BIGINT AS click,
        CASE WHEN {C.CLICK} = 1 AND NOT isnan(coalesce({C.DWELL_S}::DOUBLE, 'NaN'::DOUBLE))
             THEN {C.DWELL_S}::DOUBLE ELSE 0.0 END AS dwell,
        ({C.CLICK} = 1 AND NOT isnan(coalesce({C.DWELL_S}::DOUBLE, 'NaN'::DOUBLE)))
            AS dwell_known,
        -- first and last clicked position of the row's session (NULL without a click)
        min(CASE WHEN {C.CLICK} = 1 THEN {C.POSITION}::BIGINT END)
            OVER (PARTITION BY {C.SESSION_ID}) AS first_pos,
        max(CASE WHEN {C.CLICK} = 1 THEN {C.POSITION}::BIGINT END)
            OVER (PARTITION BY {C.SESSION_ID}) AS last_pos
    FROM log
)
SELECT
    qid,
    docid,
    count(*) AS imp,
    sum(click)::BIGINT AS clicks,
    sum(CAST({{exam}} AS {_EXAM}[])[least(greatest(position, 1), {{n_exam}})]) AS exam,
    sum(position)::DOUBLE AS pos,
    coalesce(sum(dwell::{_DWELL}) FILTER (WHERE click = 1), 0) AS dwell,
    count(*) FILTER (WHERE click = 1 AND dwell >= {{sat_dwell_s}}) AS sat,
    count(*) FILTER (WHERE click = 1 AND position = first_pos) AS first_clicks,
    count(*) FILTER (WHERE click = 1 AND position = last_pos) AS last_clicks,
    count(*) FILTER (WHERE click = 0 AND position < last_pos) AS skip_above,
    count(*) FILTER (WHERE dwell_known) AS dwell_clicks
FROM rows
GROUP BY qid, docid
"""

_PAIRS = """
SELECT qid, docid, imp, clicks, exam::DOUBLE AS exam, pos, dwell::DOUBLE AS dwell, sat,
       first_clicks, last_clicks, skip_above, dwell_clicks
FROM pair_sums ORDER BY qid, docid
"""

_DOCS = """
SELECT docid, sum(imp)::BIGINT AS imp, sum(clicks)::BIGINT AS clicks, sum(exam)::DOUBLE AS exam,
       sum(sat)::BIGINT AS sat, count(*) AS n_queries
FROM pair_sums GROUP BY docid ORDER BY docid
"""

_QUERIES = f"""
WITH sessions AS (
    SELECT {C.QID} AS qid, sum({C.CLICK})::BIGINT AS clicks
    FROM log GROUP BY {C.SESSION_ID}, {C.QID}
),
per_query AS (
    SELECT qid, count(*) AS sessions, count(*) FILTER (WHERE clicks = 0) AS abandoned,
           sum(clicks)::BIGINT AS clicks
    FROM sessions GROUP BY qid
),
-- click entropy: the spread of the query's clicks over its documents
entropy AS (
    SELECT qid, sum(CASE WHEN clicks > 0 THEN
                    (-(clicks / q_clicks) * log2(clicks / q_clicks))::{_ENTROPY}
                    ELSE 0 END)::DOUBLE AS entropy
    FROM (SELECT qid, clicks, sum(clicks) OVER (PARTITION BY qid) AS q_clicks FROM pair_sums)
    GROUP BY qid
)
SELECT qid, sessions, abandoned, clicks, entropy
FROM per_query JOIN entropy USING (qid) ORDER BY qid
"""

_TOTALS = """
SELECT sum(imp)::DOUBLE, sum(clicks)::DOUBLE, sum(exam)::DOUBLE FROM pair_sums
"""

_LOG_COLUMNS = ", ".join((C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK, C.DWELL_S))


def frame_sums(log: pd.DataFrame, exam: np.ndarray, config: ClickFeatureConfig) -> ClickSums:
    """The sums of an in-memory log (a pandas frame, scanned in place by DuckDB)."""
    with _connection(config) as con:
        con.register("log_frame", log)
        _run(con, f"CREATE TEMP VIEW log AS SELECT {_LOG_COLUMNS} FROM log_frame")
        tables, totals = _sums(con, exam, config)
    return _to_pandas(tables, totals)


def parquet_sums(files: Sequence[Path], exam: np.ndarray, config: ClickFeatureConfig) -> ClickSums:
    """The sums of a parquet log, streamed from its files (out of core)."""
    with _connection(config) as con:
        names = ", ".join(_quote(str(f)) for f in files)
        _run(con, f"CREATE TEMP VIEW log AS SELECT {_LOG_COLUMNS} FROM read_parquet([{names}])")
        tables, totals = _sums(con, exam, config)
    return _to_pandas(tables, totals)


def _sums(
    con: Any, exam: np.ndarray, config: ClickFeatureConfig
) -> tuple[list[Any], tuple[Any, ...]]:
    """The pair, document and query sums as Arrow tables, and the log's totals."""
    curve = ", ".join(f"'{float(e):.17f}'" for e in exam)
    _run(
        con,
        _PAIR_SUMS.format(
            exam=f"[{curve}]", n_exam=len(exam), sat_dwell_s=repr(float(config.sat_dwell_s))
        ),
    )
    totals = _run(con, _TOTALS)[0]
    return [_fetch(con, sql) for sql in (_PAIRS, _DOCS, _QUERIES)], totals


def _to_pandas(tables: list[Any], totals: tuple[Any, ...]) -> ClickSums:
    """Converted once DuckDB has let its memory go: the peak holds the Arrow tables
    and the frames, not DuckDB's working memory as well."""
    frames = []
    for table in tables:
        frame = table.to_pandas()
        for key in (C.QID, C.DOCID):
            if key in frame.columns:
                frame[key] = frame[key].astype("str")
        frames.append(frame)
    impressions, clicks, examined = (0.0, 0.0, 0.0) if totals[0] is None else totals
    return ClickSums(
        pairs=frames[0],
        docs=frames[1],
        queries=frames[2],
        impressions=float(impressions),
        clicks=float(clicks),
        examinations=float(examined),
    )


def _run(con: Any, sql: str) -> list[Any]:
    """Run a statement to its end (DuckDB 2 keeps a result open until it is fetched)."""
    rows: list[Any] = con.execute(sql).fetchall()
    return rows


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _fetch(con: Any, sql: str) -> Any:
    """The result of ``sql`` as an Arrow table."""
    relation = con.sql(sql)
    # ``to_arrow_table`` in recent DuckDB; ``arrow`` in old ones (a reader in DuckDB 2).
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


@contextlib.contextmanager
def _connection(config: ClickFeatureConfig) -> Iterator[Any]:
    """An in-memory DuckDB connection on ``config.threads`` threads within
    ``config.memory_limit``, spilling to a temporary directory removed afterwards."""
    import duckdb

    threads = config.threads or cores()
    with tempfile.TemporaryDirectory(prefix="hybridrank-duckdb-", dir=config.temp_directory) as tmp:
        settings: dict[str, Any] = {
            "threads": threads,
            "temp_directory": tmp,
            # Rows of a hash aggregate may come back in any order: the outputs are sorted.
            "preserve_insertion_order": False,
        }
        if config.memory_limit is not None:
            settings["memory_limit"] = config.memory_limit
        logger.debug("DuckDB %s with %s", duckdb.__version__, settings)
        con = duckdb.connect(":memory:", config=settings)
        try:
            yield con
        finally:
            con.close()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
