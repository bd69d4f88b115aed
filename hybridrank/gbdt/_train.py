"""Training a production LambdaMART on the click world: labels, features, cross-validation, bundle."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from hybridrank import columns as C
from hybridrank._config import config_from_dict, read_yaml_mapping
from hybridrank.distributed._cluster import DaskConfig, dask_client
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import Report, evaluate_table
from hybridrank.features import (
    CLICK_FEATURES,
    TEXT_FEATURES,
    ClickFeatureConfig,
    ClickFeatures,
    FeatureSchema,
    compute_click_features,
    join_click_features,
)
from hybridrank.gbdt._bundle import write_manifest
from hybridrank.gbdt._lambdamart import LambdaMARTConfig, LambdaMARTRanker
from hybridrank.labels import ClickLabelConfig, click_labels
from hybridrank.world import ClickWorld, WorldConfig, build_world

logger = logging.getLogger(__name__)

#: Named groups usable in ``features:``; anything else is a column name.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {"click": CLICK_FEATURES, "text": TEXT_FEATURES}
#: Label columns a run can train on. ``y_expert`` is the oracle: evaluation grades used for training.
LABELS = {"click": C.Y_CLICK, "ctr": C.Y_CLICK, "expert": C.Y_EXPERT, "llm": C.Y_LLM}


@dataclass(frozen=True)
class GBDTTrainConfig:
    """A ``hybridrank train gbdt`` run (the YAML form: ``studies/gbdt.yaml``).

    Attributes:
        world: The click world to build (ignored when ``world_dir`` is set).
        world_dir: A world built before by ``hybridrank world build``.
        label: ``click`` (click-model labels), ``expert`` (the oracle run:
            trains on the evaluation grades; named as such in every report)
            or ``llm`` (a ``y_llm`` column the candidates must hold).
        labels: How click labels are derived.
        features: Feature groups (``click``, ``text``) or column names.
        click_features: Options of the click features.
        gbdt: The LambdaMART model.
        metrics: Metrics of the report.
        dask: Train the cross-validation folds and the final model on a Dask
            cluster (a scheduler address, or a local cluster of ``n_workers``);
            off by default. ``--dask-scheduler`` / ``--dask-workers`` override it.
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    world_dir: str | None = None
    label: str = "click"
    labels: ClickLabelConfig = field(default_factory=ClickLabelConfig)
    features: tuple[str, ...] = ("click", "text")
    click_features: ClickFeatureConfig = field(default_factory=ClickFeatureConfig)
    gbdt: LambdaMARTConfig = field(default_factory=LambdaMARTConfig)
    metrics: tuple[str, ...] = ("ndcg@10", "mrr", "err@10")
    dask: DaskConfig = field(default_factory=DaskConfig)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ConfigError(f"label must be one of {sorted(LABELS)}, got {self.label!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GBDTTrainConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"train config: unknown sections {unknown}")
        simple: dict[str, Any] = {
            k: values[k] for k in ("world_dir", "label", "features", "metrics") if k in values
        }
        base = config_from_dict(_Simple, simple, "train")
        return cls(
            world=WorldConfig.from_dict(values.get("world")),
            world_dir=base.world_dir,
            label=base.label,
            labels=ClickLabelConfig.from_dict(values.get("labels")),
            features=base.features,
            click_features=ClickFeatureConfig.from_dict(values.get("click_features")),
            gbdt=LambdaMARTConfig.from_dict(values.get("gbdt")),
            metrics=base.metrics,
            dask=DaskConfig.from_dict(values.get("dask")),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> GBDTTrainConfig:
        p = Path(path)
        raw = read_yaml_mapping(p)
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "world": self.world.to_dict(),
            "world_dir": self.world_dir,
            "label": self.label,
            "labels": self.labels.to_dict(),
            "features": list(self.features),
            "click_features": self.click_features.to_dict(),
            "gbdt": self.gbdt.to_dict(),
            "metrics": list(self.metrics),
            "dask": self.dask.to_dict(),
        }


@dataclass(frozen=True)
class _Simple:
    world_dir: str | None = None
    label: str = "click"
    features: tuple[str, ...] = ("click", "text")
    metrics: tuple[str, ...] = ("ndcg@10", "mrr", "err@10")


def resolve_features(spec: Sequence[str], table: pd.DataFrame) -> list[str]:
    """Expand feature groups and check every column exists."""
    names: list[str] = []
    for item in spec:
        for name in FEATURE_GROUPS.get(item, (item,)):
            if name not in names:
                names.append(name)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise DataFormatError(f"features not in the candidate table: {missing}")
    return names


def build_training_table(world: ClickWorld, config: GBDTTrainConfig) -> pd.DataFrame:
    """Candidates with click features (from the log) and click labels (from a click model)."""
    return _training_table(world, config)[0]


def _training_table(
    world: ClickWorld, config: GBDTTrainConfig
) -> tuple[pd.DataFrame, ClickFeatures]:
    feats = compute_click_features(world.log, config.click_features)
    table = join_click_features(world.candidates, feats)
    labels = click_labels(
        table,
        world.log,
        ClickLabelConfig(**{**config.labels.__dict__, "source": "ctr"})
        if config.label == "ctr"
        else config.labels,
    )
    table[C.Y_CLICK] = labels.grade
    table["click_estimate"] = labels.estimate
    return table, feats


def cross_validated_scores(
    table: pd.DataFrame,
    features: Sequence[str],
    label: str,
    config: LambdaMARTConfig,
    *,
    fold_column: str = C.FOLD,
    desc: str = "folds",
    client: Any | None = None,
) -> np.ndarray:
    """Out-of-fold scores: each fold scored by a model trained on the other folds.

    Training rows without a label (NaN, for example never-shown candidates for
    click labels) are left out of training, never treated as 0; every row of
    the held-out fold is scored. With a Dask ``client`` each fold trains on
    the cluster (scoring stays here).
    """
    scores = np.full(len(table), np.nan)
    folds = table[fold_column].to_numpy()
    y = table[label].to_numpy(dtype=np.float64)
    X = table[list(features)]
    for f in tqdm(np.unique(folds), desc=desc, leave=False):
        train = (folds != f) & ~np.isnan(y)
        test = folds == f
        ranker = LambdaMARTRanker(config).fit(
            X[train], y[train], qid=table[C.QID].to_numpy()[train], client=client
        )
        scores[test] = ranker.predict(X[test])
    return scores


@dataclass(frozen=True)
class GBDTRun:
    """The result of :func:`train_gbdt`.

    Attributes:
        ranker: The production model, trained on every labelled row.
        report: Per-bucket metrics of the out-of-fold predictions.
        table: The training table with ``gbdt`` (out-of-fold) scores.
        features: Feature names in model order.
        path: The run directory.
    """

    ranker: LambdaMARTRanker
    report: Report
    table: pd.DataFrame
    features: list[str]
    path: Path


def train_gbdt(
    config: GBDTTrainConfig, out_dir: str | Path, *, data: str | Path | None = None
) -> GBDTRun:
    """Train, cross-validate and bundle a LambdaMART model on the click world."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = (
        ClickWorld.load(config.world_dir)
        if config.world_dir
        else build_world(config.world, data=data)
    )
    table, click_features = _training_table(world, config)
    label = LABELS[config.label]
    if label not in table.columns:
        raise DataFormatError(
            f"label column {label!r} is not in the candidate table (label: {config.label})"
        )
    features = resolve_features(config.features, table)
    name = "gbdt_oracle" if config.label == "expert" else f"gbdt_{config.label}"
    labelled = ~table[label].isna().to_numpy()
    with ExitStack() as stack:
        # A lost worker raises WorkerLostError here, before anything is written.
        client = stack.enter_context(dask_client(config.dask)) if config.dask.enabled else None
        table[name] = cross_validated_scores(
            table, features, label, config.gbdt, desc=f"{name} folds", client=client
        )
        ranker = LambdaMARTRanker(config.gbdt).fit(
            table.loc[labelled, features],
            table.loc[labelled, label],
            qid=table.loc[labelled, C.QID].to_numpy(),
            client=client,
        )

    what = (
        "ORACLE (trained on expert grades)"
        if config.label == "expert"
        else f"{config.label} labels"
    )
    report = evaluate_table(
        table,
        [C.BM25, name],
        metrics=config.metrics,
        bucket_order=list(world.config.buckets.names),
        baseline=C.BM25,
        title=f"LambdaMART ({config.gbdt.engine}, {what}) vs BM25, {world.config.folds.n_folds}-fold "
        "cross-validated by query; expert grades",
    )
    ranker.save(out / "model")
    FeatureSchema.from_frame(table, features).save(out / "schema.json")
    # The training log's aggregates: serving looks a request's click features up here.
    from hybridrank.serve import ClickFeatureStore

    ClickFeatureStore(click_features).save(out / "click_features")
    (out / "config.yaml").write_text(
        "# The config this run used; `hybridrank train gbdt --config` reads it back.\n"
        + yaml.safe_dump(config.to_dict(), sort_keys=False)
    )
    report.write(out / "report")
    summary = report.summary
    (out / "metrics.json").write_text(summary.to_json(orient="records", indent=2) + "\n")
    plot_training_curves(ranker, out / "curves.png")
    keep = [
        C.QID,
        C.DOCID,
        C.BUCKET,
        C.FOLD,
        C.FREQ,
        C.BM25,
        C.Y_EXPERT,
        C.Y_CLICK,
        name,
        *features,
    ]
    table[list(dict.fromkeys(keep))].to_parquet(out / "train_table.parquet", index=False)
    write_manifest(out)
    logger.info("trained %s in %.1fs", name, time.perf_counter() - start)
    return GBDTRun(ranker=ranker, report=report, table=table, features=features, path=out)


def plot_training_curves(ranker: LambdaMARTRanker, path: Path) -> None:
    """Training and validation NDCG@k by boosting round, the best round marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for split, metrics in ranker.evals_result_.items():
        for metric, values in metrics.items():
            ax.plot(np.arange(1, len(values) + 1), values, label=f"{split} {metric}")
    ax.axvline(
        ranker.best_iteration_,
        color="grey",
        linestyle="--",
        label=f"best round {ranker.best_iteration_}",
    )
    ax.set_xlabel("boosting round")
    ax.set_ylabel("NDCG")
    ax.set_title("LambdaMART training curves")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
