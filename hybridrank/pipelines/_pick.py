"""``study best --pick``: a trial of a gbdt study as a ``train gbdt`` config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from hybridrank._atomic import write_text
from hybridrank._config import yaml_load
from hybridrank.ensemble import FAMOLConfig
from hybridrank.errors import ConfigError
from hybridrank.pipelines._experiment import ExperimentConfig
from hybridrank.pipelines._train_gbdt import GBDTTrainConfig
from hybridrank.tuning import StudySpec, lambdamart_params


def train_config_for_trial(
    spec: StudySpec, trial: Mapping[str, Any], base: GBDTTrainConfig | None = None
) -> GBDTTrainConfig:
    """The ``train gbdt`` config that trains the model a gbdt (or famol) study's trial describes.

    A famol study's trial gives alpha's ``centre`` and ``slope``: the config
    trains ``label: famol`` with the experiment's ``famol:`` block, whose
    LambdaMART becomes the run's ``gbdt:``.

    The trial's parameters are LambdaMART fields (an older study's LightGBM
    names map onto them: ``min_data_in_leaf`` -> ``min_child_samples``,
    ``feature_fraction`` -> ``colsample``, ``lambda_l2`` -> ``reg_lambda``);
    its early-stopped round count becomes ``n_estimators`` with early stopping
    off, so the model keeps the size the study timed. The engine, label
    (click), features, dataset and world come from the study; everything else
    from ``base`` (default: the defaults).
    """
    if spec.kind not in ("gbdt", "famol"):
        raise ConfigError(f"study best needs a gbdt or famol study; this one is {spec.kind!r}")
    base = base or GBDTTrainConfig()
    exp = ExperimentConfig.from_dict(spec.experiment)
    # What the study trained on, whichever kind it is.
    study_data = replace(
        base,
        dataset=spec.dataset or base.dataset,
        world=exp.world if spec.dataset is None else base.world,
        labels=exp.labels,
        click_features=exp.click_features,
        features=tuple(exp.features),
    )
    if spec.kind == "famol":
        # FAMOL as the study trained it: the experiment's famol block (its LambdaMART is
        # the run's gbdt:), alpha's centre and slope from the trial.
        famol = replace(exp.famol, centre=float(trial["centre"]), slope=float(trial["slope"]))
        return replace(
            study_data,
            label="famol",
            gbdt=replace(famol.gbdt, seed=spec.seed),
            famol=replace(famol, gbdt=FAMOLConfig().gbdt),
        )
    gbdt = replace(
        base.gbdt, engine=exp.gbdt.engine, seed=spec.seed, **lambdamart_params(trial)
    )
    return replace(study_data, label="click", gbdt=gbdt)


def write_train_config(
    config: GBDTTrainConfig, path: str | Path, *, header: str = ""
) -> Path:
    """Write ``config`` as the YAML ``train gbdt --config`` reads (checked by reading it back)."""
    data = config.to_dict()
    if data.get("dataset") is not None:
        data.pop("world", None)  # read from the dataset, not built: a world block would mislead
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(
        data, sort_keys=False
    )
    GBDTTrainConfig.from_dict(yaml_load(text))  # what train gbdt will read
    out = Path(path)
    write_text(out, text)
    return out


__all__ = ["train_config_for_trial", "write_train_config"]
