"""``hybridrank study``: Optuna tuning studies on a dataset: run (or resume) and report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridrank._config import in_file
from hybridrank.cli._common import add_dataset_option, at_least_one
from hybridrank.errors import ConfigError, MissingInputError

if TYPE_CHECKING:
    from hybridrank.tuning import StudySpec


def _read_spec(path: Path) -> StudySpec:
    """A study spec with its ``experiment:`` block checked now, errors naming the file."""
    from hybridrank.pipelines import ExperimentConfig
    from hybridrank.tuning import StudySpec

    spec = StudySpec.from_yaml(path)

    def check() -> None:
        try:
            ExperimentConfig.from_dict(spec.experiment)
        except ConfigError as exc:
            raise ConfigError(f"study.{exc}" if str(exc).startswith("experiment") else
                              f"study.experiment: {exc}") from None  # fmt: skip

    in_file(path, check)
    return spec


def cmd_study_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hybridrank.pipelines import run_study_on_data
    from hybridrank.tuning import study_report

    spec = _read_spec(args.spec)
    if args.out:
        spec = replace(spec, out=str(args.out))
    if args.dataset:
        spec = replace(spec, dataset=str(args.dataset))
    print(f"study {spec.study_name} ({spec.kind}) searches: {spec.describe_space()}", flush=True)
    result = run_study_on_data(spec, storage=args.storage, n_trials=args.n_trials, data=args.data)
    n = len(result.study.trials)
    print(f"study {result.study.study_name}: {result.n_new} new trials, {n} in the storage")
    text, _ = study_report(result.study, Path(spec.out) / "report")
    print(text)
    _print_kept_gate(result.study, spec)
    return 0


def _print_kept_gate(study: Any, spec: Any) -> None:
    """For a stacker study: the trial whose gate ``bundle --study`` serves, and why."""
    from optuna.trial import TrialState

    from hybridrank.ensemble import format_params
    from hybridrank.tuning import stacker_study_gate

    if spec.kind != "stacker" or not any(t.state == TrialState.COMPLETE for t in study.trials):
        return
    gate, _, line = stacker_study_gate(study, spec)
    print(f"gate kept (bundle --study serves it): {line}: {format_params(gate.params())}")


def cmd_study_report(args: argparse.Namespace) -> int:
    from hybridrank.tuning import StudySpec, study_report

    spec = StudySpec.from_yaml(args.spec)
    out = Path(args.out or spec.out)
    study = load_stored_study(spec, out, args.storage)
    text, paths = study_report(study, out / "report")
    print(text)
    _print_kept_gate(study, spec)
    for kind, path in paths.items():
        print(f"  {kind:>11}: {path}")
    return 0


def load_stored_study(spec: StudySpec, out: Path, storage_url: str | None) -> Any:
    from dataclasses import replace

    import optuna

    if (storage_url or spec.storage) is None and not (out / "study.db").exists():
        # Reading must not create: opening the default SQLite file would leave an empty one.
        raise MissingInputError(
            f"{out / 'study.db'}: no such study storage; run `hybridrank study run` first "
            "(or give --storage)"
        )
    storage = replace(spec, out=str(out)).open_storage(storage_url)
    name = spec.study_name
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise MissingInputError(
            f"no study {name!r} in that storage; run `hybridrank study run` first"
        ) from None


def cmd_study_best(args: argparse.Namespace) -> int:
    from hybridrank.pipelines import (
        FEW_TUNING_QUERIES,
        GBDTTrainConfig,
        recorded_dataset,
        train_config_for_trial,
        tuning_queries_scored,
        write_train_config,
    )
    from hybridrank.tuning import pick_trial, trials_table

    spec = _read_spec(args.spec)
    if spec.kind == "stacker":
        raise ConfigError(
            f"study best writes a `train gbdt` config, which a gbdt or famol study's trials "
            f"describe; {args.spec} is a stacker study: `study report` shows its top trial "
            "and the one its stacker.selection keeps, and `bundle --study` serves that gate"
        )
    if spec.kind == "famol" and args.pick != "best":
        raise ConfigError(
            f"--pick {args.pick!r}: a famol study has one objective and no serving costs; "
            "study best writes its best trial"
        )
    out = Path(args.out or spec.out)
    ran_on = recorded_dataset(out)  # what the study ran on, `study run --dataset X` included
    if ran_on is not None and (
        spec.dataset is None or Path(spec.dataset).resolve() != Path(ran_on)
    ):
        from dataclasses import replace

        if spec.dataset is not None:
            print(f"the study ran on {ran_on} (study run --dataset), not the spec's {spec.dataset}")
        spec = replace(spec, dataset=ran_on)
    study = load_stored_study(spec, out, args.storage)
    scored_on = tuning_queries_scored(out)
    if scored_on is not None and scored_on < FEW_TUNING_QUERIES:
        print(
            f"warning: the trials were scored on {scored_on} labelled tuning queries (fewer "
            f"than {FEW_TUNING_QUERIES}): their NDCG@10 differences, and so this pick, are "
            "mostly noise; label more tuning queries (--tuning-queries of `dataset import` or "
            "`world build`) or check the picked config against a default one with `train gbdt`"
        )
    base = GBDTTrainConfig.from_yaml(args.base) if args.base else None
    if spec.kind == "famol":
        best_famol = study.best_trial
        config = train_config_for_trial(spec, dict(best_famol.params), base)
        summary = (
            f"best trial #{best_famol.number} of famol study {spec.study_name}: NDCG@10 "
            f"{best_famol.value:.4f} on the tuning queries; alpha centre "
            f"{config.famol.centre:.3f}, slope {config.famol.slope:.3f}"
        )
        command = f"hybridrank train gbdt --config {args.config_out} --out runs/gbdt-famol"
        path = write_train_config(config, args.config_out, header=f"{summary}\n{command}")
        print(summary)
        print(f"train config: {path}  ({command})")
        return 0
    table = trials_table(study)
    trial = pick_trial(table, args.pick)
    best = table.iloc[int(table["ndcg"].to_numpy().argmax())]
    config = train_config_for_trial(spec, {str(k): v for k, v in trial.items()}, base)
    summary = (
        f"trial #{int(trial['trial'])} of study {spec.study_name} (pick {args.pick!r}): "
        f"validation NDCG@10 {trial['ndcg']:.4f}, p50 {trial['p50_ms']:.3f} ms, "
        f"size {int(trial['size'])} leaves in {int(trial['n_trees'])} trees; best trial "
        f"#{int(best['trial'])}: NDCG@10 {best['ndcg']:.4f}, p50 {best['p50_ms']:.3f} ms, "
        f"size {int(best['size'])}"
    )
    path = write_train_config(
        config,
        args.config_out,
        header=f"{summary}\nhybridrank train gbdt --config {args.config_out} --out runs/gbdt-picked",
    )
    print(summary)
    print(f"train config: {path}  (hybridrank train gbdt --config {path} --out runs/gbdt-picked)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("study", help="Optuna tuning studies: run (or resume) and report")
    stsub = st.add_subparsers(dest="study_command", required=True)
    sr = stsub.add_parser("run", help="create or resume a study and run it to n_trials")
    sr.add_argument("spec", type=Path, help="study YAML, e.g. studies/stacker_study.yaml")
    sr.add_argument(
        "--storage",
        help="sqlite:///x.db | postgresql://... | journal:PATH (default: RUN_DIR/study.db)",
    )
    sr.add_argument(
        "--n-trials", type=at_least_one, help="trials the study should have in the end"
    )
    sr.add_argument("--out", type=Path, help="run directory (default: the spec's out)")
    sr.add_argument("--data", type=Path, help="collection directory")
    add_dataset_option(sr, help="run the study on this dataset (overrides the spec's dataset:)")
    sr.set_defaults(func=cmd_study_run)
    srep = stsub.add_parser(
        "report", help="best trial, parameter importances, history and importance plots"
    )
    srep.add_argument("spec", type=Path)
    srep.add_argument("--storage")
    srep.add_argument("--out", type=Path)
    srep.set_defaults(func=cmd_study_report)
    sb = stsub.add_parser(
        "best",
        help="pick a trial of a gbdt study by a rule (a famol study: its best) and write it "
        "as a `train gbdt` config",
    )
    sb.add_argument("spec", type=Path)
    sb.add_argument(
        "--pick", default="best",
        help='constraints, then fastest|smallest|best, e.g. "ndcg>=0.64, fastest" or '
        '"ndcg>=best-0.005, smallest" (default: best)',
    )  # fmt: skip
    sb.add_argument(
        "--config-out", type=Path, default=Path("picked_gbdt.yaml"),
        help="train config to write (default picked_gbdt.yaml)",
    )  # fmt: skip
    sb.add_argument("--base", type=Path, help="train config whose other sections to keep")
    sb.add_argument("--storage")
    sb.add_argument("--out", type=Path, help="the study's run directory (default: the spec's)")
    sb.set_defaults(func=cmd_study_best)

