"""Click features of a synthetic 10-million-impression log: hybridrank against one DuckDB SQL query.

Both sides start from the same parquet file and produce the same aggregates:
per (query, document) impressions, clicks, examination-weighted impressions,
summed position, first/last-click and skip-above counts, dwell and satisfied
clicks; per document the same sums and the number of queries; per query
sessions, abandoned sessions and clicks. Each side runs in its own process so
that wall time and peak resident memory are its own. The pair aggregates are
cross-checked for equality before the timings are printed.

Usage: python bench/click_features.py [--sessions 1000000] [--keep DIR]
Ends with: RESULT click_features_time_ratio <hybridrank / duckdb> target <= 1.5 : met|missed

With --dask (default --sessions 5000000, a 50-million-impression log): the log
is synthesised in chunks straight into parquet files (a few row groups each;
the whole frame is never in memory), and its click features are computed out
of core by ``compute_click_features_parquet(..., dask=True)`` in a child
process. That process runs Dask's threaded scheduler, so its peak resident
memory (``os.wait4``) is the whole job's: no worker processes to add up. Then
the same is run on a 200,000-session log, once with Dask and once in memory
with pandas, and every pair, document and query feature is compared.

Usage: python bench/click_features.py --dask [--sessions 5000000] [--keep DIR]
Ends with: RESULT click_features_dask_peak_rss_gib <GiB> target < 8 : met|missed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_dask(path: Path, out: Path) -> None:
    """Click features of the parquet log at ``path`` with Dask's threaded scheduler, in this process."""
    from hybridrank.features import ClickFeatureConfig, compute_click_features_parquet

    start = time.perf_counter()
    feats = compute_click_features_parquet(
        path, ClickFeatureConfig(examination=tuple(EXAM)), dask=True, scheduler="threads"
    )
    seconds = time.perf_counter() - start
    feats.pairs.to_parquet(out, index=False)
    n = (len(feats.pairs), len(feats.docs), len(feats.queries))
    print(json.dumps({"seconds": seconds, "rows": n}))


def check_dask_equals_pandas(path: Path) -> str:
    """Every click feature of the log at ``path``: Dask against the in-memory pandas path."""
    from hybridrank import columns as C
    from hybridrank.features import ClickFeatureConfig, compute_click_features_parquet

    cfg = ClickFeatureConfig(examination=tuple(EXAM))
    # Small partitions, so the sample is split like the big log is.
    lazy = compute_click_features_parquet(
        path, cfg, dask=True, partition_rows=200_000, scheduler="threads"
    )
    eager = compute_click_features_parquet(path, cfg, dask=False)
    checked = []
    for level in ("pairs", "docs", "queries"):
        a, b = getattr(eager, level), getattr(lazy, level)
        key = [k for k in (C.QID, C.DOCID) if k in a.columns]
        a = a.sort_values(key).reset_index(drop=True)
        b = b.sort_values(key).reset_index(drop=True)[list(a.columns)]
        counts = [c for c in a.columns if c not in key and np.array_equal(a[c], a[c].round())]
        # Counts must match exactly; float sums may differ in the last bits (order of addition).
        pd.testing.assert_frame_equal(a[key + counts], b[key + counts], check_exact=True)
        pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=0)
        checked.append(f"{len(a):,} {level}")
    return ", ".join(checked)


def main_dask(args: argparse.Namespace) -> None:
    n_sessions = args.sessions or 5_000_000
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hr-bench-dask-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log_dir = tmp / "impressions"
    start = time.perf_counter()
    made = subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            "synth-chunked",
            "--sessions",
            str(n_sessions),
            "--log",
            str(log_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    n_rows = int(made.stdout.strip().splitlines()[-1])
    on_disk = sum(f.stat().st_size for f in log_dir.glob("*.parquet")) / 2**30
    print(
        f"synthetic log: {n_rows:,} impressions, {n_sessions:,} sessions, "
        f"{len(list(log_dir.glob('*.parquet')))} files, {on_disk:.2f} GiB on disk "
        f"({log_dir}; written in chunks in {time.perf_counter() - start:.0f}s)"
    )
    result = measure("dask", log_dir, tmp / "dask_pairs.parquet")
    print(
        f"dask (threaded scheduler, one process): {result['seconds']:.1f}s, "
        f"peak RSS {result['peak_rss_gib']:.2f} GiB, rows (pairs, docs, queries) {tuple(result['rows'])}"
    )

    sample = tmp / "sample"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            "synth-chunked",
            "--sessions",
            "200000",
            "--log",
            str(sample),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"sample check (200,000 sessions): Dask == pandas on {check_dask_equals_pandas(sample)}")

    rss = result["peak_rss_gib"]
    verdict = "met" if rss < 8 else "missed"
    print(f"RESULT click_features_dask_peak_rss_gib {rss:.2f} target < 8 : {verdict}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_side(side: str, path: Path, out: Path) -> None:
    """One side, in this (child) process: read, aggregate, write the pair table."""
    start = time.perf_counter()
    if side == "hybridrank":
        from hybridrank.features import ClickFeatureConfig, compute_click_features

        log = pd.read_parquet(path)
        feats = compute_click_features(log, ClickFeatureConfig(examination=tuple(EXAM)))
        pairs = feats.pairs[["qid", "docid", "qd_impressions", "qd_clicks", "qd_first_click_rate"]]
        n = (len(feats.pairs), len(feats.docs), len(feats.queries))
    else:
        import duckdb

        con = duckdb.connect()
        sql = SQL.format(path=path, exam=json.dumps(EXAM), n_exam=len(EXAM))
        result = con.execute(sql).df()
        pairs = result[["qid", "docid", "imp", "clicks", "first_clicks"]]
        n = (len(result), int(result["docid"].nunique()), int(result["qid"].nunique()))
    seconds = time.perf_counter() - start
    pairs.to_parquet(out, index=False)
    print(json.dumps({"seconds": seconds, "rows": n}))


def measure(side: str, path: Path, out: Path) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--side", side, "--log", str(path), "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed with status {status}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_gib"] = usage.ru_maxrss / 2**20  # kB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sessions", type=int, help="10 impressions each (default 1000000; 5000000 with --dask)"
    )
    parser.add_argument(
        "--dask", action="store_true", help="out-of-core Dask run on a 50M-impression log"
    )
    parser.add_argument(
        "--side",
        choices=["hybridrank", "duckdb", "synth", "synth-chunked", "dask"],
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
    if args.side == "dask":
        run_dask(args.log, args.out)
        return
    if args.side:
        run_side(args.side, args.log, args.out)
        return
    if args.dask:
        main_dask(args)
        return
    args.sessions = args.sessions or 1_000_000

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hr-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / "impressions.parquet"
    # Synthesised in a child process: a child forked from a parent holding the
    # log would count the parent's pages in its own peak RSS.
    made = subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            "synth",
            "--sessions",
            str(args.sessions),
            "--log",
            str(log_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    n_rows = int(made.stdout.strip().splitlines()[-1])
    print(f"synthetic log: {n_rows:,} impressions, {args.sessions:,} sessions ({log_path})")
    results = {
        side: measure(side, log_path, tmp / f"{side}.parquet") for side in ("hybridrank", "duckdb")
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

    print(f"\n{'side':<12}{'seconds':>9}{'peak RSS GiB':>14}  rows (pairs, docs, queries)")
    for side, r in results.items():
        print(f"{side:<12}{r['seconds']:>9.2f}{r['peak_rss_gib']:>14.2f}  {tuple(r['rows'])}")
    ratio = results["hybridrank"]["seconds"] / results["duckdb"]["seconds"]
    mem_ratio = results["hybridrank"]["peak_rss_gib"] / results["duckdb"]["peak_rss_gib"]
    print(f"\ntime ratio hybridrank / duckdb = {ratio:.2f}; peak memory ratio = {mem_ratio:.2f}")
    verdict = "met" if ratio <= 1.5 else "missed"
    print(f"RESULT click_features_time_ratio {ratio:.2f} target <= 1.5 : {verdict}")
    if not args.keep:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
