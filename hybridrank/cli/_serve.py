"""``hybridrank importance``, ``rank`` and ``bundle``: inspect, serve and assemble trained models."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridrank._atomic import check_output_dir, check_output_file, write_parquet, write_text
from hybridrank.cli._common import at_least_one, positive_int
from hybridrank.errors import ConfigError, DataFormatError, HybridRankError, MissingInputError

if TYPE_CHECKING:
    from hybridrank.serve import RawFeature


def cmd_importance(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from hybridrank.gbdt import GBDTBundle, feature_importance

    bundle = GBDTBundle.load(args.run_dir)
    out = args.out or (bundle.path / "importance")
    # Its own earlier tables may be replaced, a folder of other files may not.
    check_output_dir(out, markers=("importance.csv", "importance.md"))
    table_path = args.data or (bundle.path / "train_table.parquet")
    from hybridrank.data import file_lines, read_table

    table = read_table(table_path)
    needed = [c for c in ("qid", args.label) if c not in table.columns]
    if needed:
        raise DataFormatError(
            f"no {' or '.join(map(repr, needed))} column: importance ranks each query's rows "
            f"(qid) and measures NDCG against a graded label (--label, default y_expert); "
            f"a `bucket` column adds per-bucket tables",
            path=table_path,
        )
    from hybridrank import columns as C

    bucket = C.BUCKET if C.BUCKET in table.columns else None
    with file_lines(table_path):
        bundle.schema.check(table, source=str(table_path))
        grades = pd.to_numeric(table[args.label], errors="coerce")
        bad = grades.isna() | np.isinf(grades)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(
                f"label {table[args.label].iloc[row]!r} is not a grade",
                row=row,
                column=args.label,
            )
        if (grades < 0).any():  # TREC's junk grades: not relevant, as `evaluate` counts them
            print(f"{int((grades < 0).sum())} negative {args.label} values counted as 0")
            table[args.label] = grades.clip(lower=0)
        imp = feature_importance(
            bundle.ranker,
            table,
            list(bundle.schema.names),
            label=args.label,
            bucket=bucket,
            n_repeats=args.repeats,
            seed=args.seed,
        )
    if bucket is None:
        print(f"{table_path} has no `bucket` column: overall importance only")
    print(imp.to_text(args.top))
    paths = imp.write(out, n=args.top)
    print()
    for kind, path in paths.items():
        print(f"  {kind:>12}: {path}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from hybridrank.data import file_lines, read_table
    from hybridrank.serve import HybridRanker

    check_output_file(args.out)
    for flag, given in (("--candidates", args.candidates), ("--queries", args.queries),
                        ("--docs", args.docs)):  # fmt: skip
        if given is not None and given.resolve() == args.out.resolve():
            raise ConfigError(f"--out {args.out} is the {flag} file: the ranking would replace it")
    if args.out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(
            f"--out {args.out}: name a .csv or .parquet file (the suffix picks the format)"
        )
    ranker = HybridRanker.load(args.model, device=args.device)
    candidates = read_table(args.candidates, required=("qid", "docid"))
    queries = read_table(args.queries, required=("qid", "text")) if args.queries else None
    if queries is not None:
        _refuse_repeated(queries, "qid", "query", args.queries)  # one text would silently win
    if args.docs is not None:
        # A title is read as at import: title, then body, one text.
        docs = _docs_table(args.docs)
        # The merge would give a repeated document's candidates twice.
        _refuse_repeated(docs, "docid", "document", args.docs)
        candidates = candidates.drop(columns=["text"], errors="ignore").merge(
            docs[["docid", "text"]], on="docid", how="left"
        )
    start = time.perf_counter()
    with file_lines(args.candidates):
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
    kind = "GBDT"
    if ranker.fused:
        n_llm = len(ranker.llm or ())
        kind = (
            f"fused (click GBDT + {n_llm} LLM model{'s' if n_llm > 1 else ''}"
            + "".join(f" + {a.name} x {a.weight:.3f}" for a in ranker.anchors)
            + ", gated by frequency)"
        )
    n_q = ranked["qid"].nunique()
    print(
        f"ranked {len(candidates):,} candidates of {n_q:,} queries with the {kind} bundle "
        f"{args.model} in {seconds:.2f}s -> {args.out}"
    )
    return 0


def _docs_table(path: Path) -> Any:
    """``--docs``: ``docid`` and ``text`` or ``title`` (or both, read as one text: title,
    then body, as at import)."""
    from hybridrank.data import join_titles, read_table

    docs = read_table(path, required=("docid",))
    if "text" not in docs.columns and "title" not in docs.columns:
        raise DataFormatError(
            f"missing columns ['text']; the file has {list(docs.columns)}", path=path
        )
    return join_titles(docs)


def _refuse_repeated(table: Any, column: str, what: str, path: Path) -> None:
    """An id listed twice in a request's side table is an error naming the file's line."""
    from hybridrank.data import file_lines

    twice = table[column].duplicated().to_numpy()
    if twice.any():
        with file_lines(path):
            raise DataFormatError(
                f"{what} {table[column].iloc[int(twice.argmax())]!r} is listed again; "
                f"{int(twice.sum())} repeated ids in all: give each {what} once",
                row=int(twice.argmax()),
                column=column,
            )


def cmd_bundle(args: argparse.Namespace) -> int:
    from hybridrank.ensemble import StackerConfig, format_params
    from hybridrank.serve import build_hybrid_bundle

    given = [flag for flag, v in (("--gate", args.gate), ("--study", args.study),
                                  ("--experiment", args.experiment)) if v is not None]  # fmt: skip
    if len(given) > 1:
        raise ConfigError(f"give the gate once: {' and '.join(given)} both set it")
    if args.experiment_run is not None and args.experiment is None:
        raise ConfigError("--experiment-run needs --experiment DIR")
    normalisation = args.normalisation
    tie_break = args.tie_break
    tuned_anchors: dict[str, float] = {}
    if args.experiment is not None:
        from hybridrank.pipelines import load_experiment_stacker

        stacker = load_experiment_stacker(args.experiment, args.experiment_run)
        gate, tuned_anchors = stacker.gate, dict(stacker.anchors)
        if normalisation is not None and normalisation != stacker.normalisation:
            raise ConfigError(
                f"--normalisation {normalisation}: the experiment's stacker was tuned with "
                f"{stacker.normalisation}; leave the flag out"
            )
        normalisation = stacker.normalisation
        if args.tie_break is not None and args.tie_break != stacker.tie_break:
            raise ConfigError(
                f"--tie-break {args.tie_break}: the experiment ranked ties by "
                f"{stacker.tie_break}; leave the flag out"
            )
        tie_break = stacker.tie_break
        _check_llm_expert(stacker.llm_model, args.llm)
        print(
            f"stacker of experiment run {stacker.run}: gate {gate.kind} "
            f"{format_params(gate.params())}, "
            f"anchors {tuned_anchors or 'none'}, LLM expert {stacker.llm_model}"
        )
    elif args.study is not None:
        from hybridrank.cli._study import load_stored_study
        from hybridrank.tuning import StudySpec, stacker_study_gate

        spec = StudySpec.from_yaml(args.study)
        if spec.kind != "stacker":
            raise ConfigError(f"{args.study}: a {spec.kind} study has no gate; use a stacker study")
        # Reading never creates a storage; a study not run yet is one clear error.
        study = load_stored_study(spec, Path(spec.out), args.storage)
        if not any(t.state.is_finished() and t.values for t in study.trials):
            raise MissingInputError(
                f"study {spec.study_name!r} has no completed trial yet; run `hybridrank study "
                f"run {args.study}` first"
            )
        tuned = StackerConfig.from_dict(spec.experiment.get("stacker"))
        gate, _, kept = stacker_study_gate(study, spec)
        # Serve the stacker the study tuned: its normalisation and tie order.
        study_tie_break = str(spec.experiment.get("tie_break", "text"))
        for flag, given, used in (("--normalisation", normalisation, tuned.normalisation),
                                  ("--tie-break", tie_break, study_tie_break)):  # fmt: skip
            if given is not None and given != used:
                raise ConfigError(
                    f"{flag} {given}: the study tuned its gate with {used}; leave the flag out"
                )
        normalisation, tie_break = tuned.normalisation, study_tie_break
        print(f"gate from study {spec.study_name} ({kept}): {format_params(gate.params())}")
    elif args.gate is not None:
        from hybridrank.ensemble import parse_gate

        gate = parse_gate(args.gate)
    else:
        raise ConfigError(
            "give the gate: --gate sigmoid:centre=C,slope=S, --study STACKER_STUDY.yaml or "
            "--experiment DIR"
        )
    anchors = _anchors(args.anchor or [], tuned_anchors, args.experiment)
    if args.experiment is not None:
        _check_training(args.experiment, args.click, args.llm, anchors, args.allow_other_training)
    docs = _docs_table(args.docs) if args.docs else None
    path = build_hybrid_bundle(
        args.click, args.llm, args.out, gate=gate, anchors=anchors,
        normalisation=normalisation or "zscore", tie_break=tie_break or "text", docs=docs,
        device=args.device,
    )  # fmt: skip
    print(f"hybrid bundle: {path}")
    return 0


#: The LLM runs each LLM expert of an experiment's stacker is served by (kinds, sorted).
_EXPERT_RUNS = {
    "llm_ensemble": ("gbdt", "neural"),
    "llm_gbdt": ("gbdt",),
    "llm_neural": ("neural",),
}


def _check_llm_expert(expert: str, runs: list[Path]) -> None:
    """The ``--llm`` runs must make the LLM expert the experiment's stacker mixed."""
    from hybridrank.serve import llm_run_kind

    kinds = tuple(sorted(llm_run_kind(r) for r in runs))
    want = _EXPERT_RUNS[expert]
    if kinds != want:
        described = {
            ("gbdt", "neural"): "an LLM-label GBDT run and a neural run (the two are averaged)",
            ("gbdt",): "one LLM-label GBDT run",
            ("neural",): "one neural run",
        }[want]
        raise ConfigError(
            f"the experiment's stacker mixed {expert} as its LLM expert: give {described} as "
            f"--llm (got {len(runs)}: {', '.join(kinds)}); otherwise the bundle serves "
            "another stacker"
        )


def _check_training(
    experiment: Path,
    click: Path,
    llm: list[Path],
    anchors: list[tuple[str, Path | RawFeature, float]],
    allow: bool,
) -> None:
    """Every member must be trained as the experiment trained its model in that role;
    ``--allow-other-training`` turns the refusal into a warning."""
    from hybridrank.pipelines import training_differences

    members = [("--click", click, "click"), *(("--llm", r, "llm") for r in llm),
               *((f"--anchor {n}", r, n) for n, r, _ in anchors if isinstance(r, Path))]  # fmt: skip
    found = []
    for flag, run, role in members:
        try:
            lines = training_differences(experiment, run, role)
        except HybridRankError as exc:  # no config.yaml to compare, or one that does not parse
            if not allow:
                raise
            lines = [f"not checked: {exc}"]
        found += [f"  {flag} {run}: {line}" for line in lines]
    if not found:
        print("every member was trained as the experiment trained its model")
        return
    listed = "\n".join(found)
    if allow:
        print(
            f"warning: serving the experiment's stacker on models trained differently:\n{listed}",
            file=sys.stderr,
        )
        return
    raise ConfigError(
        "the experiment's stacker was tuned on models trained otherwise:\n"
        f"{listed}\n"
        f"train them with `hybridrank train gbdt --like-experiment {experiment}` (and "
        "`train neural --config studies/neural-experiment.yaml`), or pass "
        "--allow-other-training to serve them anyway"
    )


def _anchors(
    specs: list[list[str]], tuned: dict[str, float], experiment: Path | None
) -> list[tuple[str, Path | RawFeature, float]]:
    """``--anchor NAME RUN [WEIGHT]`` values; a weight left out is the experiment's tuned one.
    A raw-feature anchor (``raw_dwell``, ...) needs no run: ``--anchor raw_dwell [WEIGHT]``,
    served from the click run's store (or the request's columns); ``--experiment`` adds
    the experiment's own with their tuned weights."""
    from hybridrank.pipelines import RAW_BASELINES
    from hybridrank.serve import RawFeature

    anchors: list[tuple[str, Path | RawFeature, float]] = []

    def weight_of(name: str, given: str | None) -> float:
        if given is not None:
            try:
                return float(given)
            except ValueError:
                raise ConfigError(f"--anchor {name}: weight {given!r} is not a number") from None
        if name in tuned:
            return tuned[name]
        if experiment is None:
            raise ConfigError(f"--anchor {name}: give its weight, or --experiment DIR to read it")
        raise ConfigError(
            f"--anchor {name}: the experiment's stacker has no anchor of that name "
            f"(it has {sorted(tuned) or 'none'}); give its weight"
        )

    for spec in specs:
        name = spec[0]
        if name in RAW_BASELINES:
            if len(spec) > 2:
                raise ConfigError(
                    f"--anchor {name} takes [WEIGHT] only: a raw feature, not a run (got "
                    f"{' '.join(spec)!r})"
                )
            column, sign = RAW_BASELINES[name]
            given = spec[1] if len(spec) == 2 else None
            anchors.append((name, RawFeature(column, sign), weight_of(name, given)))
            continue
        if len(spec) not in (2, 3):
            raise ConfigError(f"--anchor takes NAME RUN [WEIGHT], got {' '.join(spec)!r}")
        anchors.append((name, Path(spec[1]), weight_of(name, spec[2] if len(spec) == 3 else None)))
    given_names = {a[0] for a in anchors}
    for name, weight in tuned.items():
        if name in RAW_BASELINES and name not in given_names:
            column, sign = RAW_BASELINES[name]
            anchors.append((name, RawFeature(column, sign), weight))
    missing = sorted(set(tuned) - {a[0] for a in anchors})
    if missing:
        listed = ", ".join(f"{m} ({tuned[m]:.3f})" for m in missing)
        raise ConfigError(
            f"the experiment's stacker also mixes {listed}; "
            "give each as --anchor NAME RUN (a `hybridrank train gbdt` run: famol is "
            "--label famol, gold_gbdt --label expert), or the bundle would serve another stacker"
        )
    return anchors


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser(
        "importance", help="feature importance of a trained bundle, overall and per bucket"
    )
    imp.add_argument("run_dir", type=Path, help="run directory written by `hybridrank train gbdt`")
    imp.add_argument(
        "--data", type=Path, help="table to explain on (default: the run's train_table.parquet)"
    )
    imp.add_argument(
        "--label", default="y_expert", help="graded label column NDCG is measured against"
    )
    imp.add_argument("--top", type=at_least_one, default=15, help="features shown")
    imp.add_argument(
        "--repeats",
        type=at_least_one,
        default=3,
        help="shuffles per feature for permutation importance",
    )
    imp.add_argument("--seed", type=positive_int, default=0)
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
        "bundle",
        help="assemble a hybrid bundle: click GBDT + LLM model(s) + frequency gate (+ anchors)",
    )
    bd.add_argument(
        "--click", type=Path, required=True, help="`hybridrank train gbdt` run directory"
    )
    bd.add_argument(
        "--llm", type=Path, required=True, action="append",
        help="`hybridrank train neural` run, or a GBDT run; repeat it to serve the mean of "
        "several models' normalised scores (the experiment's llm_ensemble)",
    )  # fmt: skip
    bd.add_argument(
        "--anchor", nargs="+", action="append", metavar="ARG",
        help="NAME RUN [WEIGHT]: an anchor expert (a `train gbdt` run, e.g. --label famol) "
        "mixed in with WEIGHT; without WEIGHT, the weight the --experiment's stacker tuned "
        "for NAME; a raw-feature anchor takes no run (raw_dwell [WEIGHT]: the mean dwell of "
        "a pair's clicks, from the click run's store; --experiment adds its own); repeat it "
        "for several anchors",
    )  # fmt: skip
    bd.add_argument("--gate", help="sigmoid:centre=C,slope=S or bucket:edges=2/20,weights=.2/.5/.9")
    bd.add_argument("--study", type=Path,
                    help="a stacker study YAML: the gate its stacker.selection keeps")  # fmt: skip
    bd.add_argument("--storage", help="the study's storage (default: the spec's)")
    bd.add_argument(
        "--experiment", type=Path,
        help="an experiment's output directory: the gate, anchor weights and normalisation its "
        "stacker tuned",
    )  # fmt: skip
    bd.add_argument(
        "--experiment-run",
        help="which of its runs (seed0_sessions5000); needed when it has several",
    )
    bd.add_argument(
        "--normalisation", default=None, choices=["zscore", "rank"],
        help="default: the experiment's, else zscore",
    )  # fmt: skip
    bd.add_argument(
        "--tie-break", choices=["text", "none"], default=None,
        help="order of documents with exactly the same score: text (semantic similarity and "
        "BM25 percentiles; the default) or none (request order); default the experiment's",
    )  # fmt: skip
    bd.add_argument(
        "--allow-other-training", action="store_true",
        help="with --experiment: build the bundle even when a member was trained otherwise "
        "than the experiment's model (a warning lists the differences)",
    )  # fmt: skip
    bd.add_argument("--docs", type=Path, help="docid, text: store bi-encoder document embeddings")
    bd.add_argument("--device", help="device for those embeddings")
    bd.add_argument("--out", type=Path, required=True, help="new bundle directory")
    bd.set_defaults(func=cmd_bundle)
