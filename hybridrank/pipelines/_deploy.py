"""Deploying what an experiment measured: its stacker's tuned gate, anchor weights and LLM
expert, and train configs that train each expert as the experiment did.

``hybridrank experiment`` records, per run (``seed<S>_sessions<N>``), the gate and
anchor weights its stacker tuned and which LLM expert it mixed. A hybrid bundle
built from production models with those settings serves the stacker the
experiment measured (``hybridrank bundle --experiment DIR --experiment-run RUN``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hybridrank import columns as C
from hybridrank._atomic import recover_directory
from hybridrank._config import in_file, read_json, read_yaml_mapping
from hybridrank.ensemble import (
    NORMALISERS,
    TIE_BREAKS,
    FAMOLConfig,
    Gate,
    check_anchors,
    gate_from_dict,
)
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
from hybridrank.pipelines._experiment import EXPERIMENT_MARKERS, ExperimentConfig
from hybridrank.pipelines._train_gbdt import GBDTTrainConfig

#: The LLM experts an experiment's stacker may have mixed.
LLM_MODELS = frozenset({"llm_ensemble", "llm_gbdt", "llm_neural"})


@dataclass(frozen=True)
class ExperimentStacker:
    """The tuned stacker of one experiment run.

    Attributes:
        run: The run's name (``seed0_sessions5000``).
        gate: The tuned gate.
        anchors: Anchor expert name -> tuned weight (the experiment's names:
            ``famol``, ``gold_gbdt``).
        llm_model: The LLM expert it mixed (``llm_ensemble``, ``llm_gbdt``, ``llm_neural``).
        normalisation: Per-query normalisation of the fusion.
        tie_break: How the experiment ordered exact score ties (``text`` or ``none``).
    """

    run: str
    gate: Gate
    anchors: Mapping[str, float] = field(default_factory=dict)
    llm_model: str = "llm_gbdt"
    normalisation: str = "zscore"
    tie_break: str = "text"


def load_experiment_stacker(out_dir: str | Path, run: str | None = None) -> ExperimentStacker:
    """An experiment directory's tuned stacker of ``run`` (optional when it has one run).

    Raises:
        MissingInputError: No ``info.json`` or ``config.yaml`` in ``out_dir``.
        ConfigError: ``run`` is not one of the experiment's runs, or none was given
            and it has several (the message lists them).
        DataFormatError: The run recorded no stacker, or a malformed one (each
            naming the file and the field).
    """
    d = _experiment_dir(out_dir)
    info_path = d / "info.json"
    info = read_json(info_path, "experiment info")
    runs = info.get("runs") if isinstance(info, Mapping) else None
    if not isinstance(runs, Mapping) or not runs:
        raise DataFormatError("no runs recorded", path=info_path, column="runs")
    if run is None:
        if len(runs) > 1:
            raise ConfigError(f"{d}: the experiment has {len(runs)} runs; name one: {sorted(runs)}")
        run = next(iter(runs))
    if run not in runs:
        raise ConfigError(f"{d}: no run {run!r}; the experiment's runs: {sorted(runs)}")
    record: Any = runs[run]
    where = f"runs.{run}"
    if not isinstance(record, Mapping) or "gate" not in record:
        raise DataFormatError(
            "this run has no tuned stacker (the dataset had no labelled tuning queries, "
            "or the stacker was skipped)",
            path=info_path,
            column=where,
        )
    try:
        gate = gate_from_dict(
            {"kind": record.get("gate_kind", "sigmoid"), "params": record["gate"]}, source="gate"
        )
    except ConfigError as exc:
        raise DataFormatError(str(exc), path=info_path, column=f"{where}.gate") from None
    if "anchors" in record:
        anchors = record["anchors"] or {}
    elif record.get("anchor"):  # written before several anchors: one name and its weight
        anchors = {record["anchor"]: record.get("anchor_weight")}
    else:
        anchors = {}
    if not isinstance(anchors, Mapping):
        raise DataFormatError(
            f"anchors must map names to weights, got {anchors!r}",
            path=info_path,
            column=f"{where}.anchors",
        )
    try:
        check_anchors(list(anchors.items()), source="anchors")
    except ConfigError as exc:
        raise DataFormatError(str(exc), path=info_path, column=f"{where}.anchors") from None
    llm_model = record.get("llm_model", "llm_gbdt")
    if llm_model not in LLM_MODELS:
        raise DataFormatError(
            f"llm_model must be one of {sorted(LLM_MODELS)}, got {llm_model!r}",
            path=info_path,
            column=f"{where}.llm_model",
        )
    return ExperimentStacker(
        run=run,
        gate=gate,
        anchors={str(k): float(v) for k, v in anchors.items()},
        llm_model=str(llm_model),
        **_ranking_settings(d / "config.yaml"),
    )


def _ranking_settings(path: Path) -> dict[str, str]:
    """``normalisation`` (of ``experiment.stacker``) and ``tie_break`` of an experiment's
    saved config."""
    experiment = read_yaml_mapping(path, section="experiment")
    stacker = experiment.get("stacker")
    found = {
        "normalisation": (
            stacker.get("normalisation", "zscore") if isinstance(stacker, Mapping) else "zscore"
        ),
        "tie_break": experiment.get("tie_break", "text"),
    }
    for key, allowed, column in (
        ("normalisation", NORMALISERS, "experiment.stacker.normalisation"),
        ("tie_break", TIE_BREAKS, "experiment.tie_break"),
    ):
        if found[key] not in allowed:
            raise DataFormatError(
                f"must be one of {sorted(allowed)}, got {found[key]!r}", path=path, column=column
            )
    return {k: str(v) for k, v in found.items()}


def _experiment_dir(out_dir: str | Path) -> Path:
    """``out_dir``, with a rerun killed between its two renames completed first."""
    d = Path(out_dir)
    recover_directory(d, EXPERIMENT_MARKERS[0])
    return d


def _experiment_config(out_dir: str | Path) -> ExperimentConfig:
    """An experiment directory's saved config (errors name its ``config.yaml``)."""
    path = _experiment_dir(out_dir) / "config.yaml"
    raw = read_yaml_mapping(path, section="experiment")
    return in_file(path, lambda: ExperimentConfig.from_dict(raw))


#: ``train gbdt`` labels with a model in the experiment, and which one.
EXPERIMENT_MODELS = {
    "click": "click_gbdt",
    "ctr": "click_gbdt",
    "llm": "llm_gbdt",
    "famol": "famol",
    "expert": "gold_gbdt",
}


def train_config_like_experiment(
    out_dir: str | Path, label: str, base: GBDTTrainConfig | None = None
) -> GBDTTrainConfig:
    """A ``train gbdt`` config that trains ``label``'s model as the experiment in ``out_dir``
    trained its own: its features, click labels, click features and split, its tie
    order, and the LambdaMART settings of that model (``gbdt:`` for click-GBDT and LLM-GBDT,
    ``famol:`` for FAMOL, ``gold:`` for the gold expert on ``label: expert``).

    The stacker's tuned weights were tuned on models trained this way, so a bundle
    serving them (``hybridrank bundle --experiment``) should be built from such runs.
    Everything else (dataset, metrics, dask, ``judge_fill``) comes from ``base``.

    Raises:
        MissingInputError: No ``config.yaml`` in ``out_dir``.
        ConfigError: A label with no model in the experiment, a gold expert the
            experiment did not run, or a bad experiment config (naming the file).
    """
    if label not in EXPERIMENT_MODELS:
        raise ConfigError(
            f"label {label!r} has no counterpart in the experiment; like-experiment labels: "
            f"{sorted(EXPERIMENT_MODELS)}"
        )
    experiment = _experiment_config(out_dir)
    base = base or GBDTTrainConfig()
    famol = base.famol
    if label == "famol":
        gbdt = experiment.famol.gbdt
        famol = replace(experiment.famol, gbdt=FAMOLConfig().gbdt)  # its model is gbdt: here
    elif label == "expert":
        if experiment.gold is None:
            raise ConfigError(f"{Path(out_dir) / 'config.yaml'}: the experiment ran no gold expert (gold: null)")
        gbdt = experiment.gold
    else:
        gbdt = experiment.gbdt
    return replace(
        base,
        label=label,
        features=experiment.features,
        labels=experiment.labels,
        click_features=experiment.click_features,
        click_split=experiment.click_split,
        gbdt=gbdt,
        famol=famol,
        tie_break=experiment.tie_break,
    )


#: Config leaves that say where or how fast a model runs, not what it scores. (A neural
#: model's inference ``backend`` is compared: an int8 ONNX encoder scores otherwise.)
_RUNTIME_LEAVES = frozenset(
    {"device", "n_jobs", "threads", "memory_limit", "temp_directory", "num_threads"}
)
_RUNTIME_PATHS = frozenset({"click_features.engine"})

#: The ``train gbdt`` label that trains each experiment model (``ctr`` only where the
#: experiment's own click labels are raw click-through rates, see ``_labels_for``).
MODEL_LABELS = {model: label for label, model in EXPERIMENT_MODELS.items() if label != "ctr"}


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, Mapping):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(values) if isinstance(values, tuple) else values}


def _config_differences(run: Mapping[str, Any], experiment: Mapping[str, Any]) -> list[str]:
    """``field: run X, experiment Y`` for every leaf the two configs set differently,
    runtime settings (devices, thread counts) left out."""
    a, b = _flatten(run), _flatten(experiment)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key.rsplit(".", 1)[-1] in _RUNTIME_LEAVES or key in _RUNTIME_PATHS:
            continue
        if a.get(key) != b.get(key):
            lines.append(f"{key}: run {a.get(key)!r}, experiment {b.get(key)!r}")
    return lines


def _run_config(run_dir: Path) -> Path:
    """A run's ``config.yaml``: in the run directory, or beside a neural run's ``model/``."""
    for candidate in (run_dir / "config.yaml", run_dir.parent / "config.yaml"):
        if candidate.is_file():
            return candidate
    raise MissingInputError(
        f"{run_dir}: no config.yaml, so how it was trained cannot be compared with the "
        "experiment (a `hybridrank train gbdt` or `train neural` run writes one)"
    )


def _labels_for(model: str, out_dir: str | Path) -> tuple[str, ...]:
    """The ``train gbdt`` labels that train the experiment's ``model``: click-GBDT's is
    ``click``, or also ``ctr`` when the experiment's click labels are raw click-through
    rates (``labels.source: ctr``), which is what ``label: ctr`` trains on."""
    label = MODEL_LABELS[model]
    if label != "click":
        return (label,)
    experiment = _experiment_config(out_dir)
    return ("click", "ctr") if experiment.labels.source == "ctr" else ("click",)


def training_differences(out_dir: str | Path, run_dir: str | Path, role: str) -> list[str]:
    """How a production run was trained differently from the experiment's model in its role.

    The experiment's stacker tuned its gate and anchor weights on scores of models
    trained one way; a bundle serving those weights on models trained another way
    serves a stacker nobody measured. ``role`` is the member's place in the bundle:
    ``click`` (the click-GBDT), ``llm`` (an LLM-label GBDT or the transformer) or the
    experiment's anchor name (``famol``, ``gold_gbdt``, ...). A GBDT run is compared
    with :func:`train_config_like_experiment` of its label, a neural run with the
    experiment's ``neural:`` block (its inference backend too); devices and thread
    counts are not compared.

    Returns:
        One line per difference (``field: run X, experiment Y``), empty when the run
        was trained as the experiment trained its model.

    Raises:
        MissingInputError: The run has no ``config.yaml``, or the experiment none.
        ConfigError: A bad run or experiment config (naming the file).
    """
    from hybridrank.neural import NeuralConfig
    from hybridrank.pipelines._train_neural import NeuralTrainConfig

    run = Path(run_dir)
    path = _run_config(run)
    raw = read_yaml_mapping(path)
    if "neural" in raw:  # a `train neural` run
        experiment = _experiment_config(out_dir)
        if role != "llm":
            return [f"role: a neural run serves only as an LLM model, not as {role}"]
        if experiment.neural is None:
            return ["neural: the experiment trained no transformer (neural: null)"]
        neural_run = in_file(path, lambda: NeuralTrainConfig.from_dict(raw))
        return _config_differences(
            {"label": neural_run.label, "neural": neural_run.neural.to_dict()},
            {"label": C.Y_LLM, "neural": NeuralConfig.from_dict(experiment.neural).to_dict()},
        )
    gbdt_run = in_file(path, lambda: GBDTTrainConfig.from_dict(raw))
    model = {"click": "click_gbdt", "llm": "llm_gbdt"}.get(role, role)
    if model not in MODEL_LABELS:
        return [
            f"role: the experiment's {role} has no `train gbdt` counterpart, so this run "
            "cannot be checked against it"
        ]
    wanted = _labels_for(model, out_dir)
    if gbdt_run.label not in wanted:
        return [f"label: run {gbdt_run.label!r}, experiment {' or '.join(map(repr, wanted))}"]
    if gbdt_run.label == "ctr":  # what it trained on, whatever its saved labels.source says
        gbdt_run = replace(gbdt_run, labels=replace(gbdt_run.labels, source="ctr"))
    expected = train_config_like_experiment(out_dir, gbdt_run.label, base=gbdt_run)
    return _config_differences(gbdt_run.to_dict(), expected.to_dict())
