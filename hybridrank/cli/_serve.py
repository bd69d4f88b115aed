"""``hybridrank importance``, ``rank`` and ``bundle``: inspect, serve and assemble trained models."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hybridrank._atomic import write_parquet, write_text
from hybridrank.cli._common import at_least_one
from hybridrank.errors import ConfigError


def cmd_importance(args: argparse.Namespace) -> int:
    from hybridrank.gbdt import GBDTBundle, feature_importance

    bundle = GBDTBundle.load(args.run_dir)
    table_path = args.data or (bundle.path / "train_table.parquet")
    from hybridrank.data import read_table

    table = read_table(table_path)
    bundle.schema.check(table, source=str(table_path))
    imp = feature_importance(
        bundle.ranker, table, list(bundle.schema.names), n_repeats=args.repeats, seed=args.seed
    )
    print(imp.to_text(args.top))
    paths = imp.write(args.out or (bundle.path / "importance"), n=args.top)
    print()
    for kind, path in paths.items():
        print(f"  {kind:>12}: {path}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from hybridrank.data import read_table
    from hybridrank.serve import HybridRanker

    ranker = HybridRanker.load(args.model, device=args.device)
    candidates = read_table(args.candidates, required=("qid", "docid"))
    queries = read_table(args.queries, required=("qid", "text")) if args.queries else None
    if args.docs is not None:
        docs = read_table(args.docs, required=("docid", "text"))
        candidates = candidates.drop(columns=["text"], errors="ignore").merge(
            docs[["docid", "text"]], on="docid", how="left"
        )
    start = time.perf_counter()
    ranked = ranker.rank_table(
        candidates,
        queries=queries,
        on_missing=args.on_missing,
        click_features_from=args.click_features_from,
        source=str(args.candidates),
    )
    seconds = time.perf_counter() - start
    if args.top_k:
        ranked = ranked.loc[ranked["rank"] <= args.top_k]
    ranked = ranked.sort_values(["qid", "rank"], kind="stable")
    if args.out.suffix.lower() == ".csv":
        write_text(args.out, ranked.to_csv(index=False))
    else:
        write_parquet(ranked, args.out)
    kind = "fused (click GBDT + LLM model, gated by frequency)" if ranker.fused else "GBDT"
    n_q = ranked["qid"].nunique()
    print(
        f"ranked {len(candidates):,} candidates of {n_q:,} queries with the {kind} bundle "
        f"{args.model} in {seconds:.2f}s -> {args.out}"
    )
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from hybridrank.data import read_table
    from hybridrank.ensemble import StackerConfig
    from hybridrank.serve import build_hybrid_bundle

    if args.study is not None:
        import optuna

        from hybridrank.ensemble import gate_from_params
        from hybridrank.tuning import StudySpec

        spec = StudySpec.from_yaml(args.study)
        if spec.kind != "stacker":
            raise ConfigError(f"{args.study}: a {spec.kind} study has no gate; use a stacker study")
        study = optuna.load_study(
            study_name=spec.study_name, storage=spec.open_storage(args.storage)
        )
        gate = gate_from_params(
            study.best_params, StackerConfig.from_dict(spec.experiment.get("stacker"))
        )
        print(
            f"gate from study {spec.study_name} (best trial #{study.best_trial.number}): {gate.params()}"
        )
    elif args.gate is not None:
        from hybridrank.ensemble import parse_gate

        gate = parse_gate(args.gate)
    else:
        raise ConfigError(
            "give the gate: --gate sigmoid:centre=C,slope=S or --study STACKER_STUDY.yaml"
        )
    docs = read_table(args.docs, required=("docid", "text")) if args.docs else None
    path = build_hybrid_bundle(
        args.click, args.llm, args.out, gate=gate, normalisation=args.normalisation,
        docs=docs, device=args.device,
    )  # fmt: skip
    print(f"hybrid bundle: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser(
        "importance", help="feature importance of a trained bundle, overall and per bucket"
    )
    imp.add_argument("run_dir", type=Path, help="run directory written by `hybridrank train gbdt`")
    imp.add_argument(
        "--data", type=Path, help="table to explain on (default: the run's train_table.parquet)"
    )
    imp.add_argument("--top", type=int, default=15, help="features shown")
    imp.add_argument(
        "--repeats", type=int, default=3, help="shuffles per feature for permutation importance"
    )
    imp.add_argument("--seed", type=int, default=0)
    imp.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/importance)")
    imp.set_defaults(func=cmd_importance)

    rk = sub.add_parser(
        "rank", help="score candidate tables with a GBDT run or a hybrid bundle (batch)"
    )
    rk.add_argument("--model", type=Path, required=True, help="GBDT run directory or hybrid bundle")
    rk.add_argument(
        "--candidates", type=Path, required=True,
        help="parquet/CSV: qid, docid and the model's non-click features (click features come "
        "from the bundle's store unless given)",
    )  # fmt: skip
    rk.add_argument("--queries", type=Path, help="qid, text (query texts for a neural model)")
    rk.add_argument("--docs", type=Path, help="docid, text (document texts for a neural model)")
    rk.add_argument("--top-k", type=at_least_one, help="keep the k best of each query")
    rk.add_argument(
        "--on-missing",
        choices=["error", "keep"],
        default="error",
        help="NaN in an input feature: an error naming column and row (default), or keep it as "
        "missing (the GBDT's missing-value branch)",
    )
    rk.add_argument(
        "--click-features-from",
        choices=["store", "input"],
        default="store",
        help="click features from the bundle's store (default; an input column of that name is "
        "an error) or from the input's columns (a fresher log)",
    )
    rk.add_argument("--device", help="device of a neural model (cpu, cuda)")
    rk.add_argument("--out", type=Path, required=True, help="ranked table (.parquet or .csv)")
    rk.set_defaults(func=cmd_rank)

    bd = sub.add_parser(
        "bundle", help="assemble a hybrid bundle: click GBDT + LLM model + frequency gate"
    )
    bd.add_argument(
        "--click", type=Path, required=True, help="`hybridrank train gbdt` run directory"
    )
    bd.add_argument(
        "--llm", type=Path, required=True, help="`hybridrank train neural` run, or a GBDT run"
    )
    bd.add_argument("--gate", help="sigmoid:centre=C,slope=S or bucket:edges=2/20,weights=.2/.5/.9")
    bd.add_argument("--study", type=Path, help="a stacker study YAML: its best gate")
    bd.add_argument("--storage", help="the study's storage (default: the spec's)")
    bd.add_argument("--normalisation", default="zscore", choices=["zscore", "rank"])
    bd.add_argument("--docs", type=Path, help="docid, text: store bi-encoder document embeddings")
    bd.add_argument("--device", help="device for those embeddings")
    bd.add_argument("--out", type=Path, required=True, help="new bundle directory")
    bd.set_defaults(func=cmd_bundle)

