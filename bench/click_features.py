"""Click features of a synthetic 10-million-impression log: hybridrank against one DuckDB SQL query.

Both sides start from the same parquet file and produce the same aggregates:
per (query, document) impressions, clicks, examination-weighted impressions,
summed position, first/last-click and skip-above counts, dwell and satisfied
clicks; per document the same sums and the number of queries; per query
sessions, abandoned sessions and clicks (hybridrank also the click entropy and
every rate). hybridrank runs ``compute_click_features_parquet(path, dask=False)``:
its single-machine engine, DuckDB, on one SQL definition of the sums. Each side
runs in its own process, so that wall time (from after the imports, which
are reported apart) and peak resident memory (``os.wait4``, imports included)
are its own; the sides alternate, ``--repeat`` times each (the
best time and the highest peak memory of each side are kept), and the pair
aggregates are cross-checked for equality before the table is printed. A
third row, outside the verdict, times the in-memory entry
(``pd.read_parquet`` then ``compute_click_features``).

Usage: python bench/click_features.py [--sessions 1000000] [--repeat 2] [--keep DIR]
Ends with: RESULT click_features_time_ratio <hybridrank / duckdb> target <= 1.2 : met|missed
("met" needs the time ratio <= 1.2 and hybridrank's peak RSS no higher than DuckDB's.)

With --dask (default --sessions 5000000, a 50-million-impression log): the log
is synthesised in chunks straight into parquet files (the whole frame is never
in memory) and its click features are computed out of core on one machine by
``compute_click_features_parquet(..., dask=False)`` with DuckDB's memory limit
``--memory-limit``, in a child process whose peak resident memory is the whole
job's. Then, on a 200,000-session log, the cluster engine (Dask, small
partitions) and the pandas reference are compared with it on every pair,
document and query feature: counts exactly, rates to 1e-12.

Usage: python bench/click_features.py --dask [--sessions 5000000] [--memory-limit 2GB] [--keep DIR]
Ends with: RESULT click_features_peak_rss_gib <GiB> target < 4 : met|missed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EXAM = [1.0, 0.690, 0.433, 0.355, 0.249, 0.165, 0.152, 0.104, 0.104, 0.098]

SQL = """
WITH rows AS (
  SELECT session_id, qid, docid, position, click,
         CASE WHEN click = 1 THEN coalesce(dwell_s, 0) ELSE 0 END AS dwell,
         CASE WHEN click = 1 AND coalesce(dwell_s, 0) >= 30 THEN 1 ELSE 0 END AS sat,
         {exam}[least(greatest(position, 1), {n_exam})] AS exam,
         min(CASE WHEN click = 1 THEN position END) OVER (PARTITION BY session_id) AS first_pos,
         max(CASE WHEN click = 1 THEN position END) OVER (PARTITION BY session_id) AS last_pos
  FROM read_parquet('{path}')
),
pairs AS (
  SELECT qid, docid, count(*) AS imp, sum(click) AS clicks, sum(exam) AS exam, sum(position) AS pos,
         sum(CASE WHEN click = 1 AND position = first_pos THEN 1 ELSE 0 END) AS first_clicks,
         sum(CASE WHEN click = 1 AND position = last_pos THEN 1 ELSE 0 END) AS last_clicks,
         sum(CASE WHEN click = 0 AND position < last_pos THEN 1 ELSE 0 END) AS skip_above,
         sum(dwell) AS dwell, sum(sat) AS sat
  FROM rows GROUP BY qid, docid
),
docs AS (
  SELECT docid, sum(imp) AS d_imp, sum(clicks) AS d_clicks, sum(exam) AS d_exam, sum(sat) AS d_sat,
         count(*) AS d_queries
  FROM pairs GROUP BY docid
),
sessions AS (SELECT session_id, any_value(qid) AS qid, sum(click) AS s_clicks FROM rows GROUP BY session_id),
queries AS (
  SELECT qid, count(*) AS q_sessions, sum(CASE WHEN s_clicks = 0 THEN 1 ELSE 0 END) AS q_abandoned,
         sum(s_clicks) AS q_clicks
  FROM sessions GROUP BY qid
)
SELECT p.*, d.d_imp, d.d_clicks, d.d_exam, d.d_sat, d.d_queries, q.q_sessions, q.q_abandoned, q.q_clicks
FROM pairs p JOIN docs d USING (docid) JOIN queries q USING (qid)
"""


def synthesize(n_sessions: int, path: Path, seed: int = 0) -> int:
    """Zipf traffic over 200,000 queries, 10 results a session, clicks decaying with rank."""
    from hybridrank import columns as C

    rng = np.random.default_rng(seed)
    n_queries = 200_000
    p = np.arange(1, n_queries + 1, dtype=np.float64) ** -1.0
    q = rng.choice(n_queries, size=n_sessions, p=p / p.sum())
    qq = np.repeat(q, 10)
    pos = np.tile(np.arange(1, 11, dtype=np.int16), n_sessions)
    doc = (qq * 7 + rng.integers(0, 15, qq.size)) % 1_000_000
    click = (rng.random(qq.size) < 0.3 / pos).astype(np.int8)
    frame = pd.DataFrame(
        {
            C.SESSION_ID: np.repeat(np.arange(n_sessions, dtype=np.int64), 10),
            C.TS: np.repeat(np.arange(n_sessions, dtype=np.float64), 10),
            C.QID: np.char.add("q", qq.astype(str)),
            C.DOCID: np.char.add("d", doc.astype(str)),
            C.POSITION: pos,
            C.CLICK: click,
            C.DWELL_S: np.where(click == 1, rng.lognormal(3, 1, qq.size), np.nan),
        }
    )
    frame.to_parquet(path, index=False, row_group_size=1_000_000)
    return len(frame)


def synthesize_chunked(
    n_sessions: int, directory: Path, seed: int = 0, sessions_per_file: int = 1_000_000
) -> int:
    """The same traffic as :func:`synthesize`, written file by file and row group by row group.

    Each chunk of 100,000 sessions (1,000,000 impressions) is drawn from its
    own seeded generator and appended as one row group, so memory holds one
    chunk at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hybridrank import columns as C

    directory.mkdir(parents=True, exist_ok=True)
    n_queries = 200_000
    p = np.arange(1, n_queries + 1, dtype=np.float64) ** -1.0
    p /= p.sum()
    chunk = 100_000
    writer = None
    n_rows = 0
    for c, start in enumerate(range(0, n_sessions, chunk)):
        n = min(chunk, n_sessions - start)
        rng = np.random.default_rng([seed, c])
        q = rng.choice(n_queries, size=n, p=p)
        qq = np.repeat(q, 10)
        pos = np.tile(np.arange(1, 11, dtype=np.int16), n)
        doc = (qq * 7 + rng.integers(0, 15, qq.size)) % 1_000_000
        click = (rng.random(qq.size) < 0.3 / pos).astype(np.int8)
        frame = pd.DataFrame(
            {
                C.SESSION_ID: np.repeat(np.arange(start, start + n, dtype=np.int64), 10),
                C.TS: np.repeat(np.arange(start, start + n, dtype=np.float64), 10),
                C.QID: np.char.add("q", qq.astype(str)),
                C.DOCID: np.char.add("d", doc.astype(str)),
                C.POSITION: pos,
                C.CLICK: click,
                C.DWELL_S: np.where(click == 1, rng.lognormal(3, 1, qq.size), np.nan),
            }
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if start % sessions_per_file == 0:
            if writer is not None:
                writer.close()
            name = directory / f"part-{start // sessions_per_file:04d}.parquet"
            writer = pq.ParquetWriter(name, table.schema)
        assert writer is not None
        writer.write_table(table)
        n_rows += len(frame)
    if writer is not None:
        writer.close()
    return n_rows


def run_out_of_core(path: Path, out: Path, memory_limit: str) -> None:
    """Click features of the parquet log at ``path`` on one machine, out of core, in this process."""
    from hybridrank.features import ClickFeatureConfig, compute_click_features_parquet

    start = time.perf_counter()
    cfg = ClickFeatureConfig(examination=tuple(EXAM), memory_limit=memory_limit)
    feats = compute_click_features_parquet(path, cfg, dask=False)
    seconds = time.perf_counter() - start
    feats.pairs.to_parquet(out, index=False)
    n = (len(feats.pairs), len(feats.docs), len(feats.queries))
    print(json.dumps({"seconds": seconds, "rows": n}))


def check_engines_agree(path: Path) -> str:
    """Every click feature of the log at ``path``: Dask and pandas against the single-machine engine."""
    from hybridrank import columns as C
    from hybridrank.features import ClickFeatureConfig, compute_click_features_parquet

    cfg = ClickFeatureConfig(examination=tuple(EXAM))
    single = compute_click_features_parquet(path, cfg, dask=False)
    others = {
        # Small partitions, so the sample is split like the big log is.
        "Dask": compute_click_features_parquet(
            path, cfg, dask=True, partition_rows=200_000, scheduler="threads"
        ),
        "pandas": compute_click_features_parquet(
            path, ClickFeatureConfig(examination=tuple(EXAM), engine="pandas"), dask=False
        ),
    }
    checked = []
    for level in ("pairs", "docs", "queries"):
        a = getattr(single, level)
        key = [k for k in (C.QID, C.DOCID) if k in a.columns]
        a = a.sort_values(key).reset_index(drop=True)
        counts = [
            c
            for c in a.columns
            if c.endswith(("_impressions", "_clicks", "_sessions", "_n_queries"))
        ]
        for other in others.values():
            b = getattr(other, level).sort_values(key).reset_index(drop=True)[list(a.columns)]
            # Counts must match exactly; float sums may differ in the last bits (order of addition).
            pd.testing.assert_frame_equal(a[key + counts], b[key + counts], check_exact=True)
            pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=0)
        checked.append(f"{len(a):,} {level} x {len(a.columns) - len(key)} features")
    return f"{' and '.join(others)} == DuckDB on " + ", ".join(checked)


def main_large(args: argparse.Namespace) -> None:
    n_sessions = args.sessions or 5_000_000
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hr-bench-large-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log_dir = tmp / "impressions"
    start = time.perf_counter()
    n_rows = synth_child("synth-chunked", n_sessions, log_dir)
    files = list(log_dir.glob("*.parquet"))
    on_disk = sum(f.stat().st_size for f in files) / 2**30
    print(
        f"synthetic log: {n_rows:,} impressions, {n_sessions:,} sessions, {len(files)} files, "
        f"{on_disk:.2f} GiB on disk ({log_dir}; written in chunks in "
        f"{time.perf_counter() - start:.0f}s)"
    )
    result = measure(
        "out-of-core", log_dir, tmp / "pairs.parquet", ["--memory-limit", args.memory_limit]
    )
    print(
        f"single machine, out of core (DuckDB, memory_limit {args.memory_limit}): "
        f"{result['seconds']:.1f}s, peak RSS {result['peak_rss_gib']:.2f} GiB, "
        f"rows (pairs, docs, queries) {tuple(result['rows'])}"
    )

    sample = tmp / "sample"
    synth_child("synth-chunked", 200_000, sample)
    print(f"sample check (200,000 sessions): {check_engines_agree(sample)}")

    rss = result["peak_rss_gib"]
    verdict = "met" if rss < 4 else "missed"
    print(f"RESULT click_features_peak_rss_gib {rss:.2f} target < 4 : {verdict}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


def run_side(side: str, path: Path, out: Path) -> None:
    """One side, in this (child) process: read, aggregate, write the pair table.

    Timed from after the imports (about a second for hybridrank, whose package
    imports scikit-learn for its text features; a third of that for DuckDB and
    pandas): the computation is what is compared. The import time is reported.
    """
    start = time.perf_counter()
    if side in ("hybridrank", "hybridrank-frame"):
        from hybridrank.features import (
            ClickFeatureConfig,
            compute_click_features,
            compute_click_features_parquet,
        )

        imported = time.perf_counter()
        cfg = ClickFeatureConfig(examination=tuple(EXAM))
        if side == "hybridrank":
            feats = compute_click_features_parquet(path, cfg, dask=False)
        else:
            feats = compute_click_features(pd.read_parquet(path), cfg)
        pairs = feats.pairs[["qid", "docid", "qd_impressions", "qd_clicks", "qd_first_click_rate"]]
        n = (len(feats.pairs), len(feats.docs), len(feats.queries))
    else:
        import duckdb

        imported = time.perf_counter()
        con = duckdb.connect()
        sql = SQL.format(path=path, exam=json.dumps(EXAM), n_exam=len(EXAM))
        result = con.execute(sql).df()
        pairs = result[["qid", "docid", "imp", "clicks", "first_clicks"]]
        n = (len(result), int(result["docid"].nunique()), int(result["qid"].nunique()))
    seconds = time.perf_counter() - imported
    pairs.to_parquet(out, index=False)
    print(json.dumps({"seconds": seconds, "import_seconds": imported - start, "rows": n}))


def measure(side: str, path: Path, out: Path, extra: list[str] | None = None) -> dict[str, Any]:
    """Run one side in a child process: its wall time (as it reports it) and peak RSS."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--side", side, "--log", str(path), "--out", str(out)]
        + (extra or []),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed with status {status}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gib"] = usage.ru_maxrss / 2**20  # kB on Linux
    return result


def synth_child(kind: str, n_sessions: int, path: Path) -> int:
    """Synthesise a log in a child process: a child forked from a parent holding the
    log would count the parent's pages in its own peak RSS."""
    made = subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            kind,
            "--sessions",
            str(n_sessions),
            "--log",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(made.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sessions", type=int, help="10 impressions each (default 1000000; 5000000 with --dask)"
    )
    parser.add_argument(
        "--dask",
        action="store_true",
        help="50M impressions out of core on one machine, checked against Dask on a sample",
    )
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each side")
    parser.add_argument(
        "--memory-limit", default="2GB", help="DuckDB memory limit of the out-of-core run"
    )
    parser.add_argument(
        "--side",
        choices=[
            "hybridrank",
            "hybridrank-frame",
            "duckdb",
            "synth",
            "synth-chunked",
            "out-of-core",
        ],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="keep the synthetic log and outputs here")
    args = parser.parse_args()
    if args.side == "synth":
        print(synthesize(args.sessions, args.log))
        return
    if args.side == "synth-chunked":
        print(synthesize_chunked(args.sessions, args.log))
        return
    if args.side == "out-of-core":
        run_out_of_core(args.log, args.out, args.memory_limit)
        return
    if args.side:
        run_side(args.side, args.log, args.out)
        return
    if args.dask:
        main_large(args)
        return
    args.sessions = args.sessions or 1_000_000

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hr-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "impressions.parquet"
    n_rows = synth_child("synth", args.sessions, log_path)
    print(f"synthetic log: {n_rows:,} impressions, {args.sessions:,} sessions ({log_path})")
    runs: dict[str, list[dict[str, Any]]] = {"hybridrank": [], "duckdb": []}
    for i in range(max(1, args.repeat)):
        # Alternate which side goes first, so that neither always meets a cold page cache.
        for side in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            runs[side].append(measure(side, log_path, tmp / f"{side}.parquet"))
    frame = measure("hybridrank-frame", log_path, tmp / "hybridrank-frame.parquet")
    results = {
        side: {
            "seconds": min(r["seconds"] for r in rs),
            "peak_rss_gib": max(r["peak_rss_gib"] for r in rs),
            "rows": rs[0]["rows"],
            "import_seconds": min(r["import_seconds"] for r in rs),
        }
        for side, rs in runs.items()
    }

    ours = pd.read_parquet(tmp / "hybridrank.parquet")
    theirs = pd.read_parquet(tmp / "duckdb.parquet")
    merged = ours.merge(theirs, on=["qid", "docid"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), (
        "the two sides found different (query, document) pairs"
    )
    assert np.array_equal(merged["qd_impressions"], merged["imp"]), "impressions differ"
    assert np.array_equal(merged["qd_clicks"], merged["clicks"]), "clicks differ"
    assert np.allclose(merged["qd_first_click_rate"] * merged["imp"], merged["first_clicks"]), (
        "first clicks differ"
    )
    print(f"cross-check: {len(merged):,} pairs, impressions, clicks and first clicks identical")

    n_runs = max(1, args.repeat)
    print(
        f"\n{'side':<34}{'seconds':>9}{'peak RSS GiB':>14}  rows (pairs, docs, queries)"
        f"   [best time, highest RSS of {n_runs} runs]"
    )
    for side, r in results.items():
        label = (
            "hybridrank (parquet, DuckDB)"
            if side == "hybridrank"
            else "duckdb (hand-written query)"
        )
        print(f"{label:<34}{r['seconds']:>9.2f}{r['peak_rss_gib']:>14.2f}  {tuple(r['rows'])}")
    print(
        f"{'(hybridrank in memory; no verdict)':<34}{frame['seconds']:>9.2f}"
        f"{frame['peak_rss_gib']:>14.2f}  {tuple(frame['rows'])}"
        "   [pd.read_parquet + compute_click_features]"
    )
    print(
        "(imports, untimed above: hybridrank "
        f"{results['hybridrank']['import_seconds']:.2f}s, duckdb {results['duckdb']['import_seconds']:.2f}s)"
    )
    ratio = results["hybridrank"]["seconds"] / results["duckdb"]["seconds"]
    ours_rss, theirs_rss = results["hybridrank"]["peak_rss_gib"], results["duckdb"]["peak_rss_gib"]
    rss_ok = ours_rss <= theirs_rss
    print(
        f"\ntime ratio hybridrank / duckdb = {ratio:.2f} (target <= 1.2); "
        f"peak RSS {ours_rss:.2f} GiB vs {theirs_rss:.2f} GiB, ratio {ours_rss / theirs_rss:.2f} "
        f"(target <= 1.00): {'met' if rss_ok else 'missed'}"
    )
    verdict = "met" if ratio <= 1.2 and rss_ok else "missed"
    print(f"RESULT click_features_time_ratio {ratio:.2f} target <= 1.2 : {verdict}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
