"""Evaluation without expert grades: rankers trained on earlier sessions, judged on later clicks.

The dataset's log is split by time (the latest sessions held out; a seeded
split where sessions carry no usable timestamps). Click features, click
labels and the click model come from the earlier sessions only; each ranker
is scored on the held-out sessions with the position-debiased click metric
(IPS-weighted DCG@k, propensities from the PBM examination curve fitted on
the earlier sessions), and the click models' held-out log-likelihood and
perplexity are reported beside it. Every number here is click-based, and
named so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import write_text
from hybridrank.data import Dataset
from hybridrank.ensemble import out_of_fold
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import ips_click_report
from hybridrank.features import ClickFeatureConfig
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker
from hybridrank.labels import (
    CLICK_MODELS,
    ClickLabelConfig,
    evaluate_click_model,
    make_click_model,
)
from hybridrank.pipelines._click_split import split_windows
from hybridrank.pipelines._tables import TableOptions, add_raw_baselines, build_table
from hybridrank.pipelines._train_gbdt import resolve_features

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class ClickEvalConfig:
    """``hybridrank evaluate clicks``.

    Attributes:
        holdout: Share of sessions held out (the latest ones by time).
        by_time: Hold out the latest sessions (default); False draws them at
            random with ``seed`` (also the fallback when the log has no
            timestamps).
        seed: Seed of a random split.
        k: Cut-off of the click metric.
        click_models: Click models whose held-out fit is reported; the first
            one with an examination curve (``pbm`` by default) weights the metric.
        features: GBDT feature groups or columns.
        labels: Click labels of click-GBDT.
        click_features: Click feature options.
        gbdt: LambdaMART of click-GBDT.
    """

    holdout: float = 0.2
    by_time: bool = True
    seed: int = 0
    k: int = 10
    click_models: tuple[str, ...] = ("pbm", "dbn", "cascade")
    features: tuple[str, ...] = ("click", "dataset")
    labels: ClickLabelConfig = field(default_factory=ClickLabelConfig)
    click_features: ClickFeatureConfig = field(default_factory=ClickFeatureConfig)
    gbdt: LambdaMARTConfig = field(
        default_factory=lambda: LambdaMARTConfig(n_estimators=300, early_stopping_rounds=30, n_jobs=1)
    )

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout must be in (0, 1), got {self.holdout}")
        unknown = [m for m in self.click_models if m not in CLICK_MODELS]
        if unknown or not self.click_models:
            raise ConfigError(
                f"click_models: unknown {unknown}; choose from {sorted(CLICK_MODELS)}"
            )


def reach_positions(examination: np.ndarray, log: pd.DataFrame) -> np.ndarray:
    """An examination curve long enough for every position of ``log``: deeper positions
    than the fitted curve take its last value."""
    deepest = int(log[C.POSITION].max()) if len(log) else examination.size
    if examination.size >= deepest:
        return examination
    return np.r_[examination, np.full(deepest - examination.size, examination[-1])]


def split_log(log: pd.DataFrame, config: ClickEvalConfig) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(earlier, held-out, how): the log split by session, the latest sessions held out."""
    return split_windows(log, config.holdout, by_time=config.by_time, seed=config.seed)


@dataclass(frozen=True)
class ClickEvaluation:
    """The result of :func:`evaluate_on_clicks`.

    Attributes:
        metric: Per system and bucket: IPS-DCG@k with its bootstrap interval.
        click_models: Held-out log-likelihood and perplexity per click model.
        examination: The examination curve that weighted the metric.
        info: Split sizes and how the split was made.
    """

    metric: pd.DataFrame
    click_models: pd.DataFrame
    examination: np.ndarray
    info: dict[str, Any]

    def to_text(self) -> str:
        k = self.info["k"]
        pivot = self.metric.pivot_table(
            index="system", columns=C.BUCKET, values=f"ips_dcg@{k}", sort=False
        )
        order = [b for b in self.info.get("buckets", []) if b in pivot.columns]
        pivot = pivot[order + [c for c in pivot.columns if c not in order]]
        table = (
            pivot.to_markdown(floatfmt=".4f")
            if not pivot.empty
            else "(no system scored: the held-out sessions hold no click; "
            "hold out more sessions, --holdout, or use a longer log)"
        )
        lines = [
            f"Click-based evaluation (no expert grades): IPS-weighted DCG@{k} on "
            f"{self.info['test_sessions']} held-out sessions ({self.info['split']}); "
            f"models trained on the {self.info['train_sessions']} "
            + ("earlier ones" if str(self.info["split"]).startswith("latest") else "other ones"),
            table,
            "",
            "Click models on the held-out sessions (higher log-likelihood, lower perplexity is better)",
            self.click_models.to_markdown(index=False, floatfmt=".4f"),
        ]
        return "\n".join(lines)

    def write(self, out: str | Path) -> dict[str, Path]:
        root = Path(out)
        root.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": root / "clicks.md",
            "metric csv": root / "clicks_metric.csv",
            "click models": root / "click_models.csv",
        }
        write_text(paths["markdown"], self.to_text() + "\n")
        write_text(paths["metric csv"], self.metric.to_csv(index=False))
        write_text(paths["click models"], self.click_models.to_csv(index=False))
        return paths


def evaluate_on_clicks(
    dataset: Dataset, config: ClickEvalConfig | None = None, *, progress: bool = True
) -> ClickEvaluation:
    """Train on the earlier sessions, evaluate every ranker on the held-out ones (see module doc).

    Raises:
        DataFormatError: The dataset has no impressions.
    """
    config = config or ClickEvalConfig()
    if dataset.impressions is None:
        raise DataFormatError(
            "the dataset has no click log (impressions): nothing to evaluate on", path=dataset.path
        )
    train_log, test_log, how = split_log(dataset.impressions, config)
    earlier = replace(dataset, impressions=train_log)
    table, _ = build_table(
        earlier, TableOptions(click_features=config.click_features, labels=config.labels)
    )
    systems = [C.BM25] if C.BM25 in table.columns else []
    systems += add_raw_baselines(table)
    features = resolve_features(config.features, table, dataset.features)
    labelled = ~table[C.Y_CLICK].isna().to_numpy()

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        model = LambdaMARTRanker(config.gbdt).fit(
            train[features], train[C.Y_CLICK], qid=train[C.QID].to_numpy()
        )
        return model.predict(test[features])

    table["click_gbdt"] = out_of_fold(
        table, "click_gbdt", fit_predict, train_mask=labelled, progress=progress
    ).scores
    systems.append("click_gbdt")

    quality = []
    examination: np.ndarray | None = None
    for name in config.click_models:
        model = make_click_model(name).fit(train_log)
        q = evaluate_click_model(model, test_log)
        quality.append(
            {"model": name, "log-likelihood": q["log_likelihood"], "perplexity": q["perplexity"]}
        )
        curve = getattr(model, "examination_", None)
        if examination is None and curve is not None:
            examination = np.asarray(curve, dtype=np.float64)
    if examination is None:
        raise ConfigError(
            f"click_models {list(config.click_models)}: none has an examination curve to weight "
            "the metric; include pbm or dbn"
        )
    examination = reach_positions(examination, test_log)
    bucket_of = dataset.splits.set_index(C.QID)[C.BUCKET].astype(str)
    metric = ips_click_report(
        test_log, table, systems, examination, bucket_of=bucket_of, k=config.k
    )
    info = {
        "split": how,
        "train_sessions": int(train_log[C.SESSION_ID].nunique()),
        "test_sessions": int(test_log[C.SESSION_ID].nunique()),
        "k": config.k,
        "features": features,
        "buckets": dataset.bucket_names,
    }
    return ClickEvaluation(
        metric=metric,
        click_models=pd.DataFrame(quality),
        examination=examination,
        info=info,
    )


__all__ = ["ClickEvalConfig", "ClickEvaluation", "evaluate_on_clicks", "split_log"]
