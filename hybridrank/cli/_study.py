"""``hybridrank study``: Optuna tuning studies on a dataset: run (or resume) and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridrank.cli._common import add_dataset_option
from hybridrank.errors import MissingInputError


def cmd_study_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hybridrank.pipelines import run_study_on_data
    from hybridrank.tuning import StudySpec, study_report

    spec = StudySpec.from_yaml(args.spec)
    if args.out:
        spec = replace(spec, out=str(args.out))
    if args.dataset:
        spec = replace(spec, dataset=str(args.dataset))
    result = run_study_on_data(spec, storage=args.storage, n_trials=args.n_trials, data=args.data)
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
        raise MissingInputError(
            f"no study {spec.study_name!r} in that storage; run `hybridrank study run` first"
        ) from None
    text, paths = study_report(study, out / "report")
    print(text)
    for kind, path in paths.items():
        print(f"  {kind:>11}: {path}")
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
    sr.add_argument("--n-trials", type=int, help="trials the study should have in the end")
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

