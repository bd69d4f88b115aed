"""The ``hybridrank`` command: one entry point with subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import __version__
from hybridrank import columns as C
from hybridrank.errors import ConfigError, HybridRankError

logger = logging.getLogger("hybridrank")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _world_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from hybridrank.world import WorldConfig

    config = WorldConfig.from_yaml(args.config) if args.config else WorldConfig()
    sim = config.simulation
    overrides = {
        "n_sessions": args.sessions,
        "zipf_exponent": args.zipf,
        "seed": args.seed,
        "click_model": args.click_model,
    }
    sim = replace(sim, **{k: v for k, v in overrides.items() if v is not None})
    return config.replace(simulation=sim)


def _add_world_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="world YAML (default: the embedded NFCorpus click world)"
    )
    p.add_argument(
        "--data",
        type=Path,
        help="collection directory (default: $HYBRIDRANK_DATA, ../shared/datasets, else download)",
    )
    p.add_argument("--sessions", type=_positive_int, help="number of simulated sessions")
    p.add_argument("--zipf", type=float, help="Zipf exponent of query popularity")
    p.add_argument("--seed", type=int, help="simulation seed")
    p.add_argument(
        "--click-model", choices=["pbm", "cascade"], help="click model of simulated users"
    )


def cmd_world_build(args: argparse.Namespace) -> int:
    from hybridrank.world import build_world

    config = _world_config(args)
    start = time.perf_counter()
    world = build_world(config, data=args.data)
    out = world.save(args.out)
    summary = world.summary()
    print(f"click world written to {out} in {time.perf_counter() - start:.1f}s")
    print(
        f"  {summary['queries']} queries ({summary['queries_with_candidates']} with candidates, "
        f"{summary['queries_with_relevant_candidate']} with a relevant candidate), "
        f"{summary['candidates']} candidates"
    )
    print(
        f"  {summary['sessions']} sessions, {summary['impressions']} impressions, {summary['clicks']} clicks"
    )
    print("  CTR by rank: " + " ".join(f"{v:.3f}" for v in summary["ctr_by_rank"]))
    table = pd.DataFrame(summary["buckets"]).T
    print(table.to_markdown())
    return 0


def cmd_world_examination(args: argparse.Namespace) -> int:
    from hybridrank.data import ctr_by_rank, examination_from_ctr, read_clara2, read_yandex_sample

    root = args.clicklogs
    logs = {
        "yandex": (read_yandex_sample, root / "yandex-wscd-sample" / "trainSample"),
        "clara2": (read_clara2, root / "clara2" / "CLARA2SearchLog_beta"),
    }
    curves = {}
    rows = []
    for name, (reader, path) in logs.items():
        log = reader(path)
        ctr = ctr_by_rank(log, max_rank=args.max_rank)
        curves[name] = examination_from_ctr(ctr)
        rows.append({"log": name, "measure": "ctr", **{f"r{i + 1}": v for i, v in enumerate(ctr)}})
        rows.append(
            {
                "log": name,
                "measure": "ctr/ctr1",
                **{f"r{i + 1}": v for i, v in enumerate(curves[name])},
            }
        )
    mean = np.minimum.accumulate(np.mean(np.vstack(list(curves.values())), axis=0))
    rows.append(
        {"log": "mean", "measure": "examination", **{f"r{i + 1}": v for i, v in enumerate(mean)}}
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    print()
    print("simulation:")
    print("  examination: [" + ", ".join(f"{v:.3f}" for v in mean) + "]")
    return 0


def _evaluate_and_write(
    candidates: pd.DataFrame,
    systems: Sequence[str],
    *,
    out: Path,
    metrics: Sequence[str],
    baseline: str | None,
    title: str,
    label: str = C.Y_EXPERT,
) -> None:
    from hybridrank.evaluate import evaluate_table

    order = ("low", "mid", "high")
    present = set(candidates[C.BUCKET].astype(str)) if C.BUCKET in candidates else set()
    bucket_order = [b for b in order if b in present] + sorted(present - set(order))
    report = evaluate_table(
        candidates,
        systems,
        label=label,
        metrics=metrics,
        bucket=C.BUCKET if C.BUCKET in candidates else None,
        bucket_order=bucket_order,
        baseline=baseline,
        title=title,
    )
    print(report.to_text())
    paths = report.write(out)
    print()
    for kind, path in paths.items():
        print(f"  {kind:>16}: {path}")


def cmd_evaluate(args: argparse.Namespace) -> int:

    from hybridrank.data import read_table

    path: Path = args.candidates
    table = read_table(path)
    _evaluate_and_write(
        table,
        args.systems,
        out=args.out,
        metrics=args.metrics,
        baseline=args.baseline,
        title=f"{path}: {', '.join(args.systems)} against {args.label}",
        label=args.label,
    )
    return 0


#: The demo's LLM-neural model: a bi-encoder, short inputs, one epoch (2 CPU cores).
DEMO_NEURAL = {
    "architecture": "bi-encoder",
    "max_seq_length": 96,
    "batch_size": 32,
    "epochs": 1,
    "learning_rate": 5.0e-5,
    "subsample_queries": 150,
    "early_stopping_patience": 1,
}


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: the whole experiment on the embedded defaults, one seed."""
    from dataclasses import replace

    from hybridrank.ensemble import ExperimentConfig, run_experiment

    start = time.perf_counter()
    config = ExperimentConfig(
        world=_world_config(args),
        seeds=(args.seed if args.seed is not None else 0,),
        sessions=(),
        cache=str(args.out / "annotations.sqlite"),
        neural=DEMO_NEURAL if args.neural else None,
    )
    config = replace(config, metrics=tuple(args.metrics))
    print(
        f"hybridrank {__version__} demo: NFCorpus click world, embedded semantic judge (MiniLM, not an LLM), "
        f"click-GBDT, LLM-GBDT{', LLM-neural (quick bi-encoder)' if args.neural else ''}, data scheduling, "
        "FAMOL, the frequency-gated stacker and the meta-ranker",
        flush=True,
    )
    result = run_experiment(
        config, args.out, data=args.data, echo=lambda m: print("  " + m, flush=True)
    )
    print()
    _print_experiment(result)
    print(f"\ndone in {time.perf_counter() - start:.0f}s; outputs under {args.out}")
    return 0


def cmd_train_gbdt(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hybridrank.gbdt import GBDTTrainConfig, train_gbdt

    config = GBDTTrainConfig.from_yaml(args.config) if args.config else GBDTTrainConfig()
    if args.world:
        config = replace(config, world_dir=str(args.world))
    config = replace(
        config,
        dask=config.dask.overridden(scheduler=args.dask_scheduler, n_workers=args.dask_workers),
    )
    start = time.perf_counter()
    run = train_gbdt(config, args.out, data=args.data)
    print(run.report.to_text())
    print(
        f"\nmodel trained on {len(run.features)} features, best round {run.ranker.best_iteration_}, "
        f"in {time.perf_counter() - start:.1f}s"
    )
    print(
        f"bundle: {run.path}  (model/, schema.json, config.yaml, metrics.json, report/, curves.png)"
    )
    return 0


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
    ranked = ranker.rank_table(candidates, queries=queries)
    seconds = time.perf_counter() - start
    if args.top_k:
        ranked = ranked.loc[ranked["rank"] <= args.top_k]
    ranked = ranked.sort_values(["qid", "rank"], kind="stable")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".csv":
        ranked.to_csv(args.out, index=False)
    else:
        ranked.to_parquet(args.out, index=False)
    kind = "fused (click GBDT + LLM model, gated by frequency)" if ranker.fused else "GBDT"
    n_q = ranked["qid"].nunique()
    print(
        f"ranked {len(candidates):,} candidates of {n_q:,} queries with the {kind} bundle "
        f"{args.model} in {seconds:.2f}s -> {args.out}"
    )
    return 0


def _parse_gate(text: str) -> Any:
    """``sigmoid:centre=1.5,slope=2`` or ``bucket:weights=0.2/0.5/0.9``."""
    from hybridrank.ensemble import make_gate

    kind, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--gate: {item!r} is not key=value")
        try:
            params[key] = [float(v) for v in value.split("/")] if "/" in value else float(value)
        except ValueError:
            raise ConfigError(f"--gate: {key}={value!r} is not a number") from None
    return make_gate(kind, params)


def cmd_bundle(args: argparse.Namespace) -> int:
    from hybridrank.data import read_table
    from hybridrank.ensemble import StackerConfig
    from hybridrank.serve import build_hybrid_bundle

    if args.study is not None:
        import optuna

        from hybridrank.ensemble._stacker import _gate_from_params
        from hybridrank.tuning import StudySpec

        spec = StudySpec.from_yaml(args.study)
        if spec.kind != "stacker":
            raise ConfigError(f"{args.study}: a {spec.kind} study has no gate; use a stacker study")
        study = optuna.load_study(
            study_name=spec.study_name, storage=spec.open_storage(args.storage)
        )
        gate = _gate_from_params(
            study.best_params, StackerConfig.from_dict(spec.experiment.get("stacker"))
        )
        print(
            f"gate from study {spec.study_name} (best trial #{study.best_trial.number}): {gate.params()}"
        )
    elif args.gate is not None:
        gate = _parse_gate(args.gate)
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


def cmd_clickmodel_fit(args: argparse.Namespace) -> int:
    from hybridrank.data import DEFAULT_EXAMINATION, read_clara2, read_yandex_sample
    from hybridrank.labels import evaluate_click_model, make_click_model, split_sessions

    root = args.clicklogs
    logs = {
        "yandex": read_yandex_sample(root / "yandex-wscd-sample" / "trainSample"),
        "clara2": read_clara2(root / "clara2" / "CLARA2SearchLog_beta"),
    }
    rows, curves = [], {}
    for log_name, log in logs.items():
        train, test = split_sessions(log, test_size=args.holdout, seed=args.seed)
        for model_name in args.models:
            model = make_click_model(model_name).fit(train)
            quality = evaluate_click_model(model, test)
            rows.append(
                {
                    "log": log_name,
                    "model": model_name,
                    "sessions (train/test)": f"{train['session_id'].nunique()}/{test['session_id'].nunique()}",
                    "log-likelihood": quality["log_likelihood"],
                    "perplexity": quality["perplexity"],
                }
            )
            curves[(log_name, model_name)] = np.asarray(model.examination_)
    print("Fit quality on held-out sessions (higher log-likelihood, lower perplexity is better)")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))
    if ("clara2", "pbm") in curves:
        fitted = curves[("clara2", "pbm")][:10]
        table = pd.DataFrame(
            {
                "rank": np.arange(1, fitted.size + 1),
                "pbm on clara2": fitted,
                "simulator default": np.asarray(DEFAULT_EXAMINATION[: fitted.size]),
            }
        )
        print("\nPBM examination fitted on CLARA2 against the simulator's default curve")
        print(table.to_markdown(index=False, floatfmt=("d", ".3f", ".3f")))
    return 0


def _backend_params(args: argparse.Namespace) -> dict[str, object]:
    """Backend keyword arguments from the flags the user set (unset flags keep defaults)."""
    flags = {
        "base_url": args.base_url,
        "model": args.model,
        "api_key_env": args.api_key_env,
        "concurrency": args.concurrency,
        "requests_per_minute": args.rpm,
        "timeout_s": args.timeout,
        "model_path": args.model_path,
        "device": args.device,
        "price_in_per_1k": args.price_in,
        "price_out_per_1k": args.price_out,
    }
    return {k: v for k, v in flags.items() if v is not None}


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.action == "report":
        return _annotate_report(args)
    from hybridrank.labels.llm import (
        AnnotateConfig,
        AnswerCache,
        annotate_candidates,
        make_annotator,
    )
    from hybridrank.world import ClickWorld, load_collection

    if args.world is None:
        raise FileNotFoundError(
            "annotate needs --world DIR (a world from `hybridrank world build`)"
        )
    world = ClickWorld.load(args.world)
    collection, _ = load_collection(world.config.data, args.data)
    candidates = world.candidates
    if args.candidates is not None:
        from hybridrank.data import read_table

        candidates = read_table(args.candidates, required=(C.QID, C.DOCID))
    config = AnnotateConfig(
        backend=args.backend,
        budget=args.budget,
        batch_size=args.batch_size,
        retry_failed=args.retry_failed,
        seed_queries=args.seed_queries,
    )
    cache_path = args.cache or (args.world / "annotations.sqlite")
    annotator = make_annotator(args.backend, **_backend_params(args))
    kind = "LLM" if annotator.is_llm else "semantic judge (not an LLM)"
    print(
        f"annotating {len(candidates)} pairs with {args.backend} [{kind}] model {annotator.model}, "
        f"prompt {annotator.prompt_version}; cache {cache_path}",
        flush=True,
    )
    with annotator, AnswerCache(cache_path) as cache:
        result = annotate_candidates(
            candidates, collection.queries, collection.docs, annotator, cache, config
        )
    out: Path = args.out or (args.world / "llm_labels.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    result.candidates.to_parquet(out, index=False)
    result.labels.to_parquet(out.with_name(out.stem + "_answers.parquet"), index=False)
    print(result.stats.summary())
    if result.grader is not None:
        print(f"grades: {result.grader.describe()}")
    print(f"labels: {out} (column y_llm; failed or unannotated pairs are NaN)")
    return 0


def _annotate_report(args: argparse.Namespace) -> int:
    from hybridrank.labels.llm import CALIBRATION, LLM_SCORE, agreement_report

    path = args.labels or (args.world / "llm_labels.parquet" if args.world else None)
    if path is None:
        raise FileNotFoundError("annotate report needs --labels FILE or --world DIR")
    from hybridrank.data import read_table

    table = read_table(path)
    n_calib = 0
    if CALIBRATION in table.columns:
        n_calib = int(table.loc[table[CALIBRATION], C.QID].nunique())
        table = table.loc[~table[CALIBRATION].to_numpy()]
    report = agreement_report(
        table,
        score=LLM_SCORE if LLM_SCORE in table.columns and table[LLM_SCORE].notna().any() else None,
        title=f"Annotator agreement with expert grades ({path}); "
        f"{n_calib} calibration queries left out",
    )
    print(report.to_text())
    paths = report.write(args.out or Path(path).with_name("agreement"))
    print()
    for kind, p in paths.items():
        print(f"  {kind:>9}: {p}")
    return 0


def _print_experiment(result: Any) -> None:
    print(result.main.to_text())
    metric = result.main.metrics[0]
    print(
        f"\n{metric} by session count (seed {next(iter(result.per_seed))}; columns: sessions / bucket)"
    )
    print(result.sweep.to_markdown(floatfmt=".3f"))
    runs = result.info["runs"]
    gates = {k: v["gate"] for k, v in runs.items()}
    print(f"\ntuned gates (click weight g = sigmoid(slope * (log1p(freq) - centre))): {gates}")
    print(
        f"reports: {result.path / 'report'}  (main.md/.csv/.json, main_*.png, sessions_sweep.png)"
    )


def cmd_experiment(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hybridrank.ensemble import ExperimentConfig, run_experiment

    config = ExperimentConfig.from_yaml(args.config) if args.config else ExperimentConfig()
    if args.seeds:
        config = replace(config, seeds=tuple(args.seeds))
    if args.sessions is not None:
        config = replace(config, sessions=tuple(args.sessions))
    start = time.perf_counter()
    result = run_experiment(config, args.out, data=args.data, echo=lambda m: print(m, flush=True))
    _print_experiment(result)
    print(f"done in {time.perf_counter() - start:.0f}s")
    return 0


def cmd_study_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hybridrank.tuning import StudySpec, run_study, study_report

    spec = StudySpec.from_yaml(args.spec)
    if args.out:
        spec = replace(spec, out=str(args.out))
    result = run_study(spec, storage=args.storage, n_trials=args.n_trials, data=args.data)
    n = len(result.study.trials)
    print(f"study {result.study.study_name}: {result.n_new} new trials, {n} in the storage")
    text, _ = study_report(result.study, Path(spec.out) / "report")
    print(text)
    return 0


def cmd_study_report(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import optuna

    from hybridrank.tuning import StudySpec, study_report

    spec = StudySpec.from_yaml(args.spec)
    out = Path(args.out or spec.out)
    storage = replace(spec, out=str(out)).open_storage(args.storage)
    try:
        study = optuna.load_study(study_name=spec.study_name, storage=storage)
    except KeyError:
        raise FileNotFoundError(
            f"no study {spec.study_name!r} in that storage; run `hybridrank study run` first"
        ) from None
    text, paths = study_report(study, out / "report")
    print(text)
    for kind, path in paths.items():
        print(f"  {kind:>11}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridrank",
        description="Learning to rank from user clicks and LLM relevance labels, fused by query frequency.",
    )
    parser.add_argument("--version", action="version", version=f"hybridrank {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    world = sub.add_parser("world", help="build and inspect the click world")
    wsub = world.add_subparsers(dest="world_command", required=True)
    build = wsub.add_parser(
        "build", help="collection + BM25 + simulated traffic -> a run directory"
    )
    _add_world_options(build)
    build.add_argument("--out", type=Path, default=Path("runs/world"), help="output directory")
    build.set_defaults(func=cmd_world_build)
    exam = wsub.add_parser(
        "examination",
        help="CTR by rank of the real click logs and the examination curve derived from it",
    )
    exam.add_argument(
        "--clicklogs",
        type=Path,
        default=Path("../shared/datasets/clicklogs"),
        help="directory holding yandex-wscd-sample/ and clara2/",
    )
    exam.add_argument("--max-rank", type=int, default=10)
    exam.set_defaults(func=cmd_world_examination)

    ev = sub.add_parser("evaluate", help="score columns of a candidate table -> per-bucket report")
    ev.add_argument(
        "--candidates", type=Path, required=True, help="candidate table (.parquet or .csv)"
    )
    ev.add_argument("--systems", nargs="+", default=[C.BM25], help="score columns to evaluate")
    ev.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr", "err@10"])
    ev.add_argument("--label", default=C.Y_EXPERT, help="graded relevance column")
    ev.add_argument("--baseline", help="system to test the others against (paired randomisation)")
    ev.add_argument("--out", type=Path, default=Path("runs/report"))
    ev.set_defaults(func=cmd_evaluate)

    train = sub.add_parser("train", help="train production models")
    tsub = train.add_subparsers(dest="train_command", required=True)
    tg = tsub.add_parser("gbdt", help="LambdaMART on click labels -> a run directory (bundle)")
    tg.add_argument(
        "--config", type=Path, help="train YAML (default: studies/gbdt.yaml's defaults)"
    )
    tg.add_argument("--world", type=Path, help="a world directory from `hybridrank world build`")
    tg.add_argument("--data", type=Path, help="collection directory for building the world")
    tg.add_argument("--out", type=Path, default=Path("runs/gbdt"))
    tg.add_argument(
        "--dask-scheduler",
        metavar="tcp://HOST:PORT",
        help="train the folds and the model on this Dask scheduler's workers (overrides dask:)",
    )
    tg.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="train on a local Dask cluster of N worker processes on 127.0.0.1 (overrides dask:)",
    )
    tg.set_defaults(func=cmd_train_gbdt)
    from hybridrank.neural import add_train_neural_parser

    add_train_neural_parser(tsub)

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
    rk.add_argument("--top-k", type=int, help="keep the k best of each query")
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

    an = sub.add_parser(
        "annotate",
        help="label candidate pairs with an LLM or the embedded semantic judge; `annotate report`",
    )
    an.add_argument("action", nargs="?", choices=["run", "report"], default="run")
    an.add_argument("--world", type=Path, help="world directory (its candidates are annotated)")
    an.add_argument(
        "--candidates",
        type=Path,
        help="annotate this candidate table (parquet) instead of the world's",
    )
    an.add_argument(
        "--data", type=Path, help="collection directory, if not where the world found it"
    )
    an.add_argument(
        "--backend", default="embedding", help="embedding (default) | openai | transformers"
    )
    an.add_argument("--budget", type=_positive_int, help="at most this many new pairs this run")
    an.add_argument("--batch-size", type=int, default=256)
    an.add_argument(
        "--retry-failed", action="store_true", help="ask again where the stored answer failed"
    )
    an.add_argument(
        "--seed-queries",
        type=_positive_int,
        default=0,
        help="calibrate the semantic judge on the expert grades of N queries (left out of evaluation)",
    )
    an.add_argument(
        "--cache", type=Path, help="SQLite answer cache (default WORLD/annotations.sqlite)"
    )
    an.add_argument("--out", type=Path, help="labels parquet (default WORLD/llm_labels.parquet)")
    an.add_argument(
        "--labels", type=Path, help="report: the labels parquet to compare with expert grades"
    )
    an.add_argument("--base-url", help="openai: e.g. http://127.0.0.1:8000/v1")
    an.add_argument("--model", help="openai: model name")
    an.add_argument("--api-key-env", help="openai: environment variable holding the API key")
    an.add_argument("--concurrency", type=int, help="openai: requests in flight")
    an.add_argument("--rpm", type=int, help="openai: requests per minute at most")
    an.add_argument("--timeout", type=float, help="openai: seconds per request")
    an.add_argument(
        "--price-in", type=float, help="openai: price per 1k prompt tokens, for the cost estimate"
    )
    an.add_argument("--price-out", type=float, help="openai: price per 1k completion tokens")
    an.add_argument("--model-path", type=Path, help="transformers / embedding: local model path")
    an.add_argument("--device", choices=["cpu", "cuda", "auto"])
    an.set_defaults(func=cmd_annotate)

    ex = sub.add_parser(
        "experiment", help="the clicks-vs-LLM-labels experiment (studies/paper.yaml)"
    )
    ex.add_argument(
        "--config", type=Path, help="experiment YAML (default: studies/paper.yaml's defaults)"
    )
    ex.add_argument("--data", type=Path, help="collection directory")
    ex.add_argument("--seeds", type=int, nargs="+", help="simulation seeds (overrides the config)")
    ex.add_argument("--sessions", type=_positive_int, nargs="*", help="session counts of the sweep")
    ex.add_argument("--out", type=Path, default=Path("runs/experiment"))
    ex.set_defaults(func=cmd_experiment)

    st = sub.add_parser("study", help="Optuna tuning studies: run (or resume) and report")
    stsub = st.add_subparsers(dest="study_command", required=True)
    sr = stsub.add_parser("run", help="create or resume a study and run it to n_trials")
    sr.add_argument("spec", type=Path, help="study YAML, e.g. studies/stacker_study.yaml")
    sr.add_argument(
        "--storage",
        help="sqlite:///x.db | postgresql://... | journal:PATH (default: RUN_DIR/study.db)",
    )
    sr.add_argument("--n-trials", type=int, help="trials the study should have in the end")
    sr.add_argument("--out", type=Path, help="run directory (default: the spec's out)")
    sr.add_argument("--data", type=Path, help="collection directory")
    sr.set_defaults(func=cmd_study_run)
    srep = stsub.add_parser(
        "report", help="best trial, parameter importances, history and importance plots"
    )
    srep.add_argument("spec", type=Path)
    srep.add_argument("--storage")
    srep.add_argument("--out", type=Path)
    srep.set_defaults(func=cmd_study_report)

    cm = sub.add_parser("clickmodel", help="click models on real logs")
    cmsub = cm.add_subparsers(dest="clickmodel_command", required=True)
    cmf = cmsub.add_parser("fit", help="fit PBM, DBN and cascade on the Yandex and CLARA2 logs")
    cmf.add_argument(
        "--clicklogs",
        type=Path,
        default=Path("../shared/datasets/clicklogs"),
        help="directory holding yandex-wscd-sample/ and clara2/",
    )
    cmf.add_argument("--models", nargs="+", default=["pbm", "cascade", "dbn"])
    cmf.add_argument("--holdout", type=float, default=0.2, help="share of sessions held out")
    cmf.add_argument("--seed", type=int, default=0)
    cmf.set_defaults(func=cmd_clickmodel_fit)

    demo = sub.add_parser("demo", help="the end-to-end demo on the embedded default world")
    _add_world_options(demo)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--metrics", nargs="+", default=["ndcg@10", "mrr"])
    demo.add_argument(
        "--neural",
        action="store_true",
        help="add the LLM-neural model (a quick bi-encoder; slow on CPU, see README)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # bm25s sets its own logger to DEBUG; keep it at ours.
    logging.getLogger("bm25s").setLevel(level)
    if any(cmd in (argv or sys.argv[1:]) for cmd in ("experiment", "demo", "study")):
        # Optuna logs every trial at INFO (and resets its logger on first use).
        import optuna

        optuna.logging.set_verbosity(level)
    try:
        return int(args.func(args))
    except (HybridRankError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hybridrank: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
