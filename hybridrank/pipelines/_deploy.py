"""What an experiment's stacker needs to be served: its gate, anchor weights and LLM expert.

``hybridrank experiment`` records, per run (``seed<S>_sessions<N>``), the gate and
anchor weights its stacker tuned and which LLM expert it mixed. A hybrid bundle
built from production models with those settings serves the stacker the
experiment measured (``hybridrank bundle --experiment DIR --experiment-run RUN``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hybridrank._config import read_json
from hybridrank.ensemble import NORMALISERS, Gate, make_gate
from hybridrank.errors import ConfigError, DataFormatError


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
    """

    run: str
    gate: Gate
    anchors: Mapping[str, float] = field(default_factory=dict)
    llm_model: str = "llm_gbdt"
    normalisation: str = "zscore"


def load_experiment_stacker(out_dir: str | Path, run: str | None = None) -> ExperimentStacker:
    """An experiment directory's tuned stacker of ``run`` (optional when it has one run).

    Raises:
        MissingInputError: No ``info.json`` in ``out_dir``.
        ConfigError: ``run`` is not one of the experiment's runs, or none was given
            and it has several (the message lists them).
        DataFormatError: The run recorded no stacker, or a malformed one.
    """
    d = Path(out_dir)
    info_path = d / "info.json"
    info = read_json(info_path, "experiment info")
    runs = info.get("runs") if isinstance(info, Mapping) else None
    if not isinstance(runs, Mapping) or not runs:
        raise DataFormatError("no runs recorded", path=info_path, column="runs")
    if run is None:
        if len(runs) > 1:
            raise ConfigError(
                f"{d}: the experiment has {len(runs)} runs; name one: {sorted(runs)}"
            )
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
        gate = make_gate(str(record.get("gate_kind", "sigmoid")), record["gate"])
    except (ConfigError, TypeError, KeyError) as exc:
        raise DataFormatError(f"bad gate: {exc}", path=info_path, column=f"{where}.gate") from None
    anchors = record.get("anchors") or {}
    if not isinstance(anchors, Mapping) or not all(
        isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in anchors.values()
    ):
        raise DataFormatError(
            f"anchors must map names to weights >= 0, got {anchors!r}",
            path=info_path,
            column=f"{where}.anchors",
        )
    normalisation = "zscore"
    config_path = d / "config.yaml"
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text()) or {}
        stacker = (config.get("experiment") or {}).get("stacker") or {}
        normalisation = str(stacker.get("normalisation", "zscore"))
        if normalisation not in NORMALISERS:
            raise DataFormatError(
                f"unknown normalisation {normalisation!r}",
                path=config_path,
                column="experiment.stacker.normalisation",
            )
    return ExperimentStacker(
        run=run,
        gate=gate,
        anchors={str(k): float(v) for k, v in anchors.items()},
        llm_model=str(record.get("llm_model", "llm_gbdt")),
        normalisation=normalisation,
    )
