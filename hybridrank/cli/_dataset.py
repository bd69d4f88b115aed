"""``hybridrank dataset``: import a user's own data as a dataset, and describe a dataset."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybridrank import columns as C
from hybridrank._atomic import check_output_dir
from hybridrank.cli._common import at_least_two, positive_int
from hybridrank.data import LOG_READERS, MANIFEST, QRELS_READERS, Dataset


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``dataset`` group (``import``, ``info``) to the top-level subparsers."""
    group = sub.add_parser(
        "dataset", help="import your own click log, texts, qrels or LETOR files; describe a dataset"
    )
    dsub = group.add_subparsers(dest="dataset_command", required=True)

    imp = dsub.add_parser(
        "import",
        help="click log / texts / qrels / LETOR files -> a dataset directory",
        description="Read your data and write it in the dataset layout every workflow reads "
        "(candidates, splits, impressions, queries, docs, qrels; dataset.yaml). Flags override "
        "the `dataset:` section of --config.",
    )
    imp.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    imp.add_argument("--config", type=Path, help="YAML with a `dataset:` section")
    imp.add_argument("--name", help="name of the dataset in reports")
    imp.add_argument("--log", help="click log file")
    imp.add_argument(
        "--log-format",
        choices=sorted(LOG_READERS),
        help="format of --log (impressions: the canonical layout as parquet/CSV/TSV)",
    )
    imp.add_argument(
        "--on-bad",
        choices=["error", "skip"],
        help="bad log records: stop at the first (default) or leave them out, counted",
    )
    imp.add_argument(
        "--collection",
        help="TREC-layout directory: docs.tsv|docs.jsonl, queries.tsv, qrels; or BEIR's layout "
        "(corpus.jsonl, queries.jsonl, qrels/test.tsv)",
    )
    imp.add_argument(
        "--queries",
        help="query texts: QID<TAB>TEXT, .jsonl (qid, text[, description, narrative]) or a TREC "
        "topics file (<top> blocks with <title>, <desc>, <narr>)",
    )
    imp.add_argument(
        "--query-descriptions",
        help="query descriptions, QID<TAB>TEXT (e.g. NFCorpus dev.vid-desc.queries); read by LLM "
        "judges with `annotate --prompt described`",
    )
    imp.add_argument("--query-narratives", help="query narratives, QID<TAB>TEXT")
    imp.add_argument("--docs", help="document texts, DOCID<TAB>TEXT or .jsonl")
    imp.add_argument("--qrels", help="expert grades")
    imp.add_argument(
        "--qrels-format", choices=sorted(QRELS_READERS), help="format of --qrels (default trec)"
    )
    imp.add_argument("--letor", nargs="+", help="SVMlight/LETOR files (no log, no texts)")
    imp.add_argument(
        "--bm25-top-k",
        type=positive_int,
        help="add each query's BM25 top-K over the collection to the candidates (needs texts)",
    )
    imp.add_argument(
        "--stopwords", help="stop-word list (one word a line) for BM25 and text features"
    )
    imp.add_argument(
        "--unknown-ids",
        choices=["error", "drop"],
        help="qrels and log rows naming queries/documents without text: an error (default) "
        "or dropped and counted",
    )
    imp.add_argument("--folds", type=at_least_two, help="query folds (default 5)")
    imp.add_argument(
        "--tuning-queries",
        type=positive_int,
        help="labelled tuning/calibration queries (default 60; at most a fifth of the eligible)",
    )
    imp.add_argument("--seed", type=positive_int, help="seed of the folds and the tuning set")
    imp.set_defaults(func=cmd_import)

    info = dsub.add_parser("info", help="what a dataset holds: source, counts, features, splits")
    info.add_argument("dataset", type=Path, help="a dataset directory")
    info.set_defaults(func=cmd_info)


def import_config(args: argparse.Namespace) -> Any:
    """The :class:`~hybridrank.pipelines.ImportConfig` of ``--config`` with the flags over it."""
    from hybridrank._config import read_yaml_mapping
    from hybridrank.errors import ConfigError
    from hybridrank.pipelines import FOLDS_SHAPE, ImportConfig, check_input_paths

    values: dict[str, Any] = (
        read_yaml_mapping(args.config, section="dataset") if args.config else {}
    )
    flags = {
        "name": args.name,
        "log": args.log,
        "log_format": args.log_format,
        "on_bad": args.on_bad,
        "collection": args.collection,
        "queries": args.queries,
        "query_descriptions": args.query_descriptions,
        "query_narratives": args.query_narratives,
        "docs": args.docs,
        "qrels": args.qrels,
        "qrels_format": args.qrels_format,
        "letor": args.letor,
        "bm25_top_k": args.bm25_top_k,
        "stopwords": args.stopwords,
        "unknown_ids": args.unknown_ids,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    folds = {
        "n_folds": args.folds,
        "tuning_queries": args.tuning_queries,
        "seed": args.seed,
    }
    if any(v is not None for v in folds.values()):
        base = values.get("folds")
        base = {} if base is None else base
        if not isinstance(base, Mapping):
            raise ConfigError(f"{args.config}: {FOLDS_SHAPE}, got {base!r}")
        values["folds"] = {**base, **{k: v for k, v in folds.items() if v is not None}}
    check_input_paths(values)  # a mistyped path first, not the options it leaves unmet
    try:
        return ImportConfig.from_dict(values)
    except ConfigError as exc:
        if args.config:
            raise ConfigError(f"{args.config} (with the command-line flags): {exc}") from None
        raise


def cmd_import(args: argparse.Namespace) -> int:
    """Import the data the flags and ``--config`` name, print its summary and write it."""
    from hybridrank.pipelines import import_dataset

    config = import_config(args)
    check_output_dir(args.out, markers=(MANIFEST,))  # before the work, not after it
    dataset = import_dataset(config)
    out = dataset.write(args.out)
    print(describe(Dataset.read(out)))
    print(f"\nwritten: {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print what a dataset holds."""
    print(describe(Dataset.read(args.dataset)))
    return 0


def describe(dataset: Dataset) -> str:
    """The text ``dataset info`` prints: source, counts, tables, features, splits, buckets."""
    src = dataset.source
    lines = [f"dataset: {dataset.path}" if dataset.path is not None else "dataset (in memory)"]
    lines.append(f"producer: {src.get('producer', 'unknown')}  name: {src.get('name', '-')}")
    inputs = src.get("inputs")
    if isinstance(inputs, Mapping):
        for kind, entry in inputs.items():
            for item in entry if isinstance(entry, list) else [entry]:
                if isinstance(item, Mapping):
                    path = item.get("path") or item.get("source_file")
                    fmt = f" ({item['format']})" if "format" in item else ""
                    lines.append(f"  input {kind}: {path}{fmt}")
    for title, key in (("dropped", "dropped"), ("read but unused", "unmatched")):
        entries = src.get(key)
        if isinstance(entries, Mapping) and entries:
            lines.append(f"{title}:")
            for what, entry in entries.items():
                count = entry.get("count") if isinstance(entry, Mapping) else entry
                why = entry.get("why", "") if isinstance(entry, Mapping) else ""
                lines.append(f"  {what}: {count}  ({why})")

    counts = dataset.summary()
    lines.append("counts:")
    for key in (
        "queries",
        "queries_with_candidates",
        "candidates",
        "sessions",
        "impressions",
        "clicks",
    ):
        if key in counts:
            lines.append(f"  {key}: {counts[key]}")
    labels = [n for n in ("qrels", "llm_labels") if dataset.has(n)]
    texts = [n for n in ("queries", "docs") if dataset.has(n)]
    if dataset.queries is not None:
        with_context = [
            f"{int(dataset.queries[c].notna().sum())} with a {c}"
            for c in C.QUERY_CONTEXT_COLUMNS
            if c in dataset.queries.columns
        ]
        if with_context:
            texts[0] = f"queries ({', '.join(with_context)})"
    lines.append(
        "tables: candidates, splits"
        + (", impressions" if dataset.has("impressions") else "")
        + (f"; labels: {', '.join(labels)}" if labels else "; labels: none")
        + (f"; texts: {', '.join(texts)}" if texts else "; texts: none")
    )
    lines.append(
        f"features ({len(dataset.features)}): "
        + (_shorten(dataset.features) if dataset.features else "none declared")
    )
    info = dataset.split_info
    lines.append(
        f"splits: {info.n_folds} folds by query (seed {info.fold_seed}); tuning queries "
        f"requested {info.tuning_requested}, chosen {len(dataset.tuning_qids)}"
    )
    lines.append("")
    lines.append(dataset.bucket_table().to_markdown())
    return "\n".join(lines)


def _shorten(names: tuple[str, ...], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[: limit - 2]) + f", ... , {names[-1]}"


__all__ = ["cmd_import", "cmd_info", "describe", "import_config", "register"]
