"""Study inputs: the table an Optuna study works on, built once from a dataset and reused."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import write_text
from hybridrank._config import read_json
from hybridrank.data import MANIFEST, Dataset
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.pipelines._experiment import ExperimentConfig, run_experiment
from hybridrank.pipelines._train_gbdt import resolve_features
from hybridrank.tuning import StudyResult, StudySpec, run_study

logger = logging.getLogger(__name__)

INPUTS = "study_inputs.parquet"
#: What the inputs were built from: the dataset and the spec's experiment block.
INPUTS_RECORD = "study_inputs.json"


def _inputs_record(spec: StudySpec, dataset: Dataset | str | Path | None) -> dict[str, Any]:
    """What inputs built for ``spec`` from ``dataset`` (a dataset or its directory) record:
    its directory, its tables' SHA-256 as its manifest lists them, and the experiment block."""
    path: Any = getattr(dataset, "path", dataset)  # a Dataset's directory, or the directory
    experiment = json.loads(json.dumps(dict(spec.experiment), default=str))
    if isinstance(experiment.get("stacker"), dict):
        # Which finished trial is kept changes no trial's score: a study may be resumed with
        # another selection rule.
        for key in SELECTION_KEYS:
            experiment["stacker"].pop(key, None)
    return {
        "dataset": None if path is None else str(Path(path).resolve()),
        "tables": None if path is None else _table_checksums(Path(path)),
        "experiment": experiment,
    }


#: Keys of ``stacker:`` that choose among finished trials and are left out of the record.
SELECTION_KEYS = ("selection", "selection_se")


def _table_checksums(root: Path) -> dict[str, str] | None:
    """Each table's SHA-256 as the dataset's manifest lists them (the manifest is read,
    not the tables: ``Dataset.read`` checks those sums whenever the dataset is read)."""
    import yaml

    try:
        manifest = yaml.safe_load((root / MANIFEST).read_text())
        tables = manifest["tables"]
        return {str(name): str(entry["sha256"]) for name, entry in tables.items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None  # no dataset there (yet): the directory check speaks


def _check_inputs_record(
    out: Path, spec: StudySpec, dataset: Dataset | str | Path | None
) -> None:
    """Reused inputs must come from the same dataset and experiment block as this run asks,
    or trials scored on different data would mix in one study."""
    recorded_path = out / INPUTS_RECORD
    if not recorded_path.exists():  # inputs built before the record was kept
        return
    recorded = read_json(recorded_path, "study inputs record")
    if not isinstance(recorded, dict) or not {"dataset", "experiment"} <= set(recorded):
        raise DataFormatError(
            "not a study inputs record (needs 'dataset' and 'experiment')", path=recorded_path
        )
    wanted = _inputs_record(spec, dataset)
    for key, what in (("dataset", "dataset"), ("experiment", "experiment: block")):
        if recorded[key] != wanted[key]:
            same = (
                f"rerun with --dataset {recorded[key]} to resume it, "
                if key == "dataset" and recorded[key] is not None
                else ""
            )
            raise ConfigError(
                f"{out}: this study's inputs were built from {what} {recorded[key]!r}, "
                f"this run asks for {wanted[key]!r}; {same}give the study another `out:` "
                "(and study name), or remove the directory to start over"
            )
    # The same directory may hold other data since: a rebuilt world, new LLM labels.
    before, now = recorded.get("tables"), wanted["tables"]
    if isinstance(before, dict) and now is not None and before != now:
        changed = sorted(n for n in set(before) | set(now) if before.get(n) != now.get(n))
        raise ConfigError(
            f"{out}: the dataset {recorded['dataset']} changed since this study's inputs were "
            f"built (tables {changed} differ from its manifest then): its trials were scored "
            "on the old data and would mix with new ones; give the study another `out:` (and "
            "study name), or remove the directory to start over"
        )


def recorded_dataset(out: str | Path) -> str | None:
    """The dataset a study's inputs in ``out`` were built from (None: a simulated world,
    or inputs built before the record was kept)."""
    path = Path(out) / INPUTS_RECORD
    if not path.exists():
        return None
    recorded = read_json(path, "study inputs record")
    value = recorded.get("dataset") if isinstance(recorded, dict) else None
    return None if value is None else str(value)


def study_refusal(kind: str, dataset: Dataset) -> str | None:
    """Why ``dataset`` cannot feed a ``kind`` study (None: it can), from its tables alone,
    before any model trains: every study scores trials on the labelled tuning queries' expert
    grades; a gbdt study trains on click labels, a famol or stacker study on click labels and
    LLM labels (or texts the experiment's judge labels)."""
    missing = []
    if dataset.impressions is None or len(dataset.impressions) == 0:
        missing.append("a click log (impressions) for the click labels")
    if kind in ("famol", "stacker") and not (dataset.has("llm_labels") or dataset.has_texts):
        missing.append("LLM labels, or query and document texts to label")
    if C.Y_EXPERT not in dataset.candidates.columns or not dataset.tuning_qids:
        missing.append("labelled tuning queries (expert grades) to score the trials on")
    if not missing:
        return None
    return f"a {kind} study needs " + " and ".join(missing) + "; the dataset has none of that"


def study_inputs(
    spec: StudySpec,
    *,
    dataset: Dataset | None = None,
    data: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The table a study works on, built once per run directory and reused on resume.

    Holds the dataset's (or the first seed's world's) candidates with click
    features and labels, the LLM labels, the tuning flag and (for the stacker)
    the out-of-fold scores of click-GBDT and the LLM model.
    """
    out = Path(spec.out)
    path = out / INPUTS
    # Reused inputs are checked against the dataset's directory; it is read only to build.
    source = dataset if dataset is not None else spec.dataset
    if path.exists():
        _check_inputs_record(out, spec, source)
        return _read_inputs(path)
    if isinstance(dataset, Dataset) and (why := study_refusal(spec.kind, dataset)):
        raise DataFormatError(why, path=dataset.path)
    out.mkdir(parents=True, exist_ok=True)
    # Several workers may start together: one builds, the others wait for it.
    with _locked(out / ".study_inputs.lock"):
        if path.exists():
            _check_inputs_record(out, spec, source)
            return _read_inputs(path)
        exp = ExperimentConfig.from_dict(spec.experiment)
        # The stacker's cross-fit is a report: a study's inputs need none of it.
        exp = replace(exp, seeds=exp.seeds[:1], sessions=(), tuning_crossfit=0)
        if dataset is None and spec.dataset:
            dataset = Dataset.read(spec.dataset)
        result = run_experiment(
            exp, out / "inputs", dataset=dataset, data=data, progress=progress
        )
        scores = pd.read_parquet(result.path / "scores.parquet")
        run = result.info["runs"][next(iter(result.info["runs"]))]
        llm_model = run["llm_model"]
        if llm_model in scores.columns:
            scores["llm_model"] = scores[llm_model]
        elif spec.kind != "gbdt":
            reasons = "; ".join(f"{name}: {why}" for name, why in run["skipped"].items())
            raise DataFormatError(
                f"the dataset supports no {spec.kind} study ({reasons})",
                path=dataset.path if dataset is not None else None,
            )
        write_text(out / INPUTS_RECORD, json.dumps(_inputs_record(spec, dataset), indent=2) + "\n")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        scores.to_parquet(tmp, index=False)
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none
    return scores


#: Fewest labelled tuning queries (with a relevant candidate) below which `study best` warns
#: that its trials' scores, and so its pick, are mostly noise.
FEW_TUNING_QUERIES = 20


def tuning_queries_scored(out: str | Path) -> int | None:
    """How many labelled tuning queries with a relevant candidate a study in ``out`` scored its
    trials on (None: its inputs are not there, or hold no expert grades)."""
    path = Path(out) / INPUTS
    if not path.exists():
        return None
    inputs = _read_inputs(path)
    if "tuning" not in inputs.columns or C.Y_EXPERT not in inputs.columns:
        return None
    tuning = inputs.loc[inputs["tuning"].to_numpy(dtype=bool)]
    return int((tuning.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0).sum())


def study_features(spec: StudySpec, inputs: pd.DataFrame, dataset: Dataset | None) -> list[str]:
    """The GBDT feature columns of the study's experiment config, as the experiment resolves them."""
    exp = ExperimentConfig.from_dict(spec.experiment)
    return resolve_features(exp.features, inputs, dataset.features if dataset else ())


def run_study_on_data(
    spec: StudySpec,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    data: str | Path | None = None,
    progress: bool = True,
) -> StudyResult:
    """Build (or reuse) the study's inputs from its dataset and run the study."""
    dataset = Dataset.read(spec.dataset) if spec.dataset else None
    # Refused before the study's storage is made or any model trains (built inputs are reused).
    built = (Path(spec.out) / INPUTS).exists()
    if dataset is not None and not built and (why := study_refusal(spec.kind, dataset)):
        raise DataFormatError(why, path=dataset.path)

    def inputs() -> tuple[pd.DataFrame, list[str]]:
        table = study_inputs(spec, dataset=dataset, data=data, progress=progress)
        # The stacker tunes a gate over two score columns: it needs no feature columns.
        features = [] if spec.kind == "stacker" else study_features(spec, table, dataset)
        return table, features

    return run_study(spec, inputs, storage=storage, n_trials=n_trials, progress=progress)


def _read_inputs(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DataFormatError(
            f"study inputs unreadable ({type(exc).__name__}: {exc}); delete the file to rebuild "
            "them (the study's trials are in its storage and are kept)",
            path=path,
        ) from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``), held for the block."""
    import fcntl

    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = [
    "FEW_TUNING_QUERIES", "run_study_on_data", "study_features", "study_inputs", "study_refusal",
    "tuning_queries_scored",
]  # fmt: skip
