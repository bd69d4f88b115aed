"""``train gbdt``: a production LambdaMART on a dataset: labels, features, cross-validation, bundle."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank._atomic import check_output_dir, staged_directory
from hybridrank._config import config_from_dict, in_file, read_yaml_mapping, unknown_keys_error
from hybridrank.data import Dataset
from hybridrank.distributed import DaskConfig, dask_client, dask_trainer
from hybridrank.ensemble import TIE_BREAKS, FAMOLConfig, FAMOLRanker, break_ties, out_of_fold
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import Report, check_metrics, evaluate_table
from hybridrank.features import (
    CLICK_FEATURES,
    DOC_FEATURES,
    PAIR_FEATURES,
    QUERY_FEATURES,
    TEXT_FEATURES,
    ClickFeatureConfig,
    FeatureSchema,
)
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker, write_manifest
from hybridrank.labels import ClickLabelConfig
from hybridrank.pipelines._annotate import llm_label_hint
from hybridrank.pipelines._best_feature import (
    BEST_FEATURE,
    best_feature_baseline,
    warn_below_best_feature,
)
from hybridrank.pipelines._budget import BUDGET_FILLS, fill_judge_score
from hybridrank.pipelines._click_split import ClickSplitConfig, training_view
from hybridrank.pipelines._dense import dense_similarity
from hybridrank.pipelines._tables import (
    DENSE,
    SEMANTIC,
    TableOptions,
    build_table,
    evaluation_rows,
    text_scores,
)
from hybridrank.pipelines._unbiased import (
    HARVESTED,
    UNBIASED_SYSTEM,
    UnbiasedConfig,
    fit_unbiased,
    impression_rows,
    pbm_examination,
    position_bias_table,
    unbiased_features,
    write_position_bias,
)
from hybridrank.pipelines._world import WorldConfig, build_world
from hybridrank.serve import ClickFeatureStore

logger = logging.getLogger(__name__)

#: Files that mark a `train gbdt` run directory (the first is written last).
RUN_MARKERS = ("manifest.json", "config.yaml")

#: Named groups usable in ``features:``; anything else is a column name. ``dataset`` is the
#: feature columns a dataset declares in its manifest (LETOR features, for example).
#: ``click`` is the three click groups together: the pair's own (``click_pair``), the
#: document's over every query (``click_doc``) and the query's (``click_query``).
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "click": CLICK_FEATURES,
    "click_pair": PAIR_FEATURES,
    "click_doc": DOC_FEATURES,
    "click_query": QUERY_FEATURES,
    "text": TEXT_FEATURES,
    "semantic": (SEMANTIC,),
    "dense": (DENSE,),
}
#: Label columns a run can train on. ``y_expert`` is the oracle on click data: evaluation
#: grades used for training; on a dataset without a log (LETOR) the grades are the labels.
#: ``clicks`` trains on the impression log's own clicks (unbiased LambdaMART), not a column.
#: ``famol`` trains FAMOL on ``y_click`` and ``y_llm`` at once, weighted by query frequency.
LABELS = {
    "click": C.Y_CLICK,
    "ctr": C.Y_CLICK,
    "clicks": C.CLICK,
    "expert": C.Y_EXPERT,
    "llm": C.Y_LLM,
    "famol": C.Y_CLICK,
}
#: Labels whose click label can come from a click split's label window.
_CLICK_SPLIT_LABELS = ("click", "ctr", "famol")
#: What to run when a column a label needs is not in the candidate table.
_MISSING_COLUMN_HINTS = {
    C.Y_CLICK: "the dataset has no impressions (click log)",
    C.Y_EXPERT: "the dataset has no qrels (expert grades)",
    C.FREQ: "the dataset's splits give no query frequency; rebuild it with `hybridrank "
    "dataset import` or `hybridrank world build`",
}


def _missing_column_hint(column: str, dataset: Dataset) -> str:
    """What to do about a label column the candidate table lacks."""
    return llm_label_hint(dataset) if column == C.Y_LLM else _MISSING_COLUMN_HINTS[column]


#: The ``famol:`` keys of a train config. FAMOL's LambdaMART is the run's own ``gbdt:``.
FAMOL_KEYS = tuple(f.name for f in fields(FAMOLConfig) if f.name != "gbdt")


@dataclass(frozen=True)
class GBDTTrainConfig:
    """A ``hybridrank train gbdt`` run (the YAML form: ``studies/gbdt.yaml``).

    Attributes:
        dataset: A dataset directory (``dataset import`` or ``world build``);
            None builds the click world ``world``.
        world: The click world to build when no dataset is given.
        label: ``click`` (click-model labels), ``ctr`` (raw click-through
            rate), ``clicks`` (unbiased LambdaMART on the raw clicks of the
            impression log, one group per session, position bias learned by
            the engine; see ``unbiased``), ``expert`` (the dataset's grades: the oracle run on click
            data, named as such in every report; the plain labels of a LETOR
            dataset), ``llm`` (the dataset's LLM labels, from ``annotate``) or
            ``famol`` (FAMOL: one LambdaMART on the click and the LLM labels at
            once, a query's click loss weighted by alpha(its frequency) and its
            LLM loss by 1 - alpha; rows without an LLM label use their click
            label; needs a click log and ``annotate``; see ``famol``). The
            saved model is a plain LambdaMART either way.
        labels: How click labels are derived.
        features: Feature groups (``click``, ``text``, ``semantic``,
            ``dataset``: the dataset's declared feature columns) or column
            names. A group the dataset cannot provide (``click`` without a
            log) is skipped with a log line; a missing column is an error.
        click_features: Options of the click features.
        click_split: With a click label (``click``, ``ctr``, ``famol``): which sessions
            give the training rows' click features and which the labels
            (``mode: none`` by default; the saved feature store always holds
            the whole log's features).
        gbdt: The LambdaMART model.
        unbiased: Options of ``label: clicks`` (positions kept, click features).
        famol: Options of ``label: famol``: alpha's ``centre`` and ``slope``,
            ``sigma`` and ``mode`` (see :class:`~hybridrank.ensemble.FAMOLConfig`).
            Its LambdaMART is the run's ``gbdt:`` block; a ``famol.gbdt`` is an error.
        judge_fill: ``dense`` (default): where the judge's raw score (the
            ``semantic`` feature) is missing because a budget left the pair
            unlabelled (``annotate --budget``), it is estimated from the
            packaged MiniLM's 64-token cosine by quantile mapping over the
            pairs that have both, as the experiment's budget curve does
            (:func:`~hybridrank.pipelines._budget.fill_judge_score`); LLM labels
            stay missing. ``none``: the score stays missing (the model's
            missing-value branch). Only matters with the ``semantic`` features.
        tie_break: ``text`` (default): exact score ties inside a query are
            ranked by the text order (the mean of the semantic-similarity and
            BM25 within-query percentiles), in the report and when the run is
            served (``HybridRanker``, ``hybridrank rank``), as the experiment
            ranks them; the scores themselves are the model's. ``none``: ties
            keep the input order.
        metrics: Metrics of the report.
        dask: Train the cross-validation folds and the final model on a Dask
            cluster (a scheduler address, or a local cluster of ``n_workers``);
            off by default. ``--dask-scheduler`` / ``--dask-workers`` override it.
    """

    dataset: str | None = None
    world: WorldConfig = field(default_factory=WorldConfig)
    label: str = "click"
    labels: ClickLabelConfig = field(default_factory=ClickLabelConfig)
    features: tuple[str, ...] = ("click", "dataset")
    click_features: ClickFeatureConfig = field(default_factory=ClickFeatureConfig)
    click_split: ClickSplitConfig = field(default_factory=ClickSplitConfig)
    gbdt: LambdaMARTConfig = field(default_factory=LambdaMARTConfig)
    unbiased: UnbiasedConfig = field(default_factory=UnbiasedConfig)
    famol: FAMOLConfig = field(default_factory=FAMOLConfig)
    judge_fill: str = "dense"
    tie_break: str = "text"
    metrics: tuple[str, ...] = ("ndcg@10", "mrr", "err@10")
    dask: DaskConfig = field(default_factory=DaskConfig)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ConfigError(f"label must be one of {sorted(LABELS)}, got {self.label!r}")
        check_metrics(self.metrics, key="metrics")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(
                f"tie_break must be one of {list(TIE_BREAKS)}, got {self.tie_break!r}"
            )
        if self.judge_fill not in BUDGET_FILLS:
            raise ConfigError(
                f"judge_fill must be one of {list(BUDGET_FILLS)}, got {self.judge_fill!r}"
            )
        if self.label == "clicks" and self.dask.enabled:
            raise ConfigError(
                "label clicks (unbiased LambdaMART) trains in one process; turn dask off"
            )
        if self.label == "famol" and self.dask.enabled:
            raise ConfigError(
                "label famol (a custom objective) trains in one process; turn dask off"
            )
        if self.famol.gbdt != FAMOLConfig().gbdt:
            # Not saved and never read: one gbdt: block serves every label.
            raise ConfigError(
                "famol.gbdt: train gbdt builds FAMOL's LambdaMART from the run's gbdt: block; "
                "set those options there"
            )

    @property
    def famol_model(self) -> FAMOLConfig:
        """FAMOL as ``label: famol`` trains it: ``famol:`` with the run's ``gbdt:``."""
        return replace(self.famol, gbdt=self.gbdt)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GBDTTrainConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise unknown_keys_error(
                "train config", unknown, [f.name for f in fields(cls)], noun="sections"
            )
        simple: dict[str, Any] = {
            k: values[k]
            for k in ("dataset", "label", "features", "metrics", "judge_fill", "tie_break")
            if k in values
        }
        base = config_from_dict(_Simple, simple, "train")
        return cls(
            dataset=base.dataset,
            world=WorldConfig.from_dict(values.get("world")),
            label=base.label,
            labels=ClickLabelConfig.from_dict(values.get("labels")),
            features=base.features,
            click_features=ClickFeatureConfig.from_dict(values.get("click_features")),
            click_split=ClickSplitConfig.from_dict(values.get("click_split")),
            gbdt=LambdaMARTConfig.from_dict(values.get("gbdt")),
            unbiased=UnbiasedConfig.from_dict(values.get("unbiased")),
            famol=_famol_from_dict(values.get("famol")),
            judge_fill=base.judge_fill,
            tie_break=base.tie_break,
            metrics=base.metrics,
            dask=DaskConfig.from_dict(values.get("dask")),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> GBDTTrainConfig:
        p = Path(path)
        raw = read_yaml_mapping(p)
        return in_file(p, lambda: cls.from_dict(raw))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "world": self.world.to_dict(),
            "label": self.label,
            "labels": self.labels.to_dict(),
            "features": list(self.features),
            "click_features": self.click_features.to_dict(),
            "click_split": self.click_split.to_dict(),
            "gbdt": self.gbdt.to_dict(),
            "unbiased": self.unbiased.to_dict(),
            "famol": {k: v for k, v in self.famol.to_dict().items() if k in FAMOL_KEYS},
            "judge_fill": self.judge_fill,
            "tie_break": self.tie_break,
            "metrics": list(self.metrics),
            "dask": self.dask.to_dict(),
        }


def _famol_from_dict(values: Any) -> FAMOLConfig:
    """The ``famol:`` section: FAMOLConfig's own keys, its LambdaMART left to ``gbdt:``."""
    if values is None:
        return FAMOLConfig()
    if not isinstance(values, Mapping):
        raise ConfigError(f"famol: expected a mapping of keys, got {type(values).__name__}")
    if "gbdt" in values:
        raise ConfigError(
            "famol.gbdt: train gbdt trains FAMOL with the run's own gbdt: block (engine, "
            "device, label_gain, early stopping, ...); move these keys there"
        )
    unknown = sorted(set(values) - set(FAMOL_KEYS))
    if unknown:
        raise unknown_keys_error("famol", unknown, FAMOL_KEYS)
    return config_from_dict(FAMOLConfig, values, "famol")


@dataclass(frozen=True)
class _Simple:
    dataset: str | None = None
    label: str = "click"
    features: tuple[str, ...] = ("click", "dataset")
    metrics: tuple[str, ...] = ("ndcg@10", "mrr", "err@10")
    judge_fill: str = "dense"
    tie_break: str = "text"


def resolve_features(
    spec: Sequence[str], table: pd.DataFrame, dataset_features: Sequence[str] = ()
) -> list[str]:
    """Expand feature groups; a group the table lacks entirely is skipped, a missing column is an error."""
    groups = {**FEATURE_GROUPS, "dataset": tuple(dataset_features)}
    names: list[str] = []
    missing: list[str] = []
    for item in spec:
        if item in groups:
            members = groups[item]
            present = [n for n in members if n in table.columns]
            if not present:
                logger.warning(
                    "feature group %r: the dataset provides none of %s; skipped%s",
                    item,
                    list(members),
                    " (the judge's score: run `hybridrank annotate` first)"
                    if item == "semantic"
                    else "",
                )
            elif len(present) < len(members) and item != "dataset":
                missing += [n for n in members if n not in table.columns]
            names += [n for n in present if n not in names]
        elif item in table.columns:
            if item not in names:
                names.append(item)
        else:
            missing.append(item)
    if missing:
        import difflib

        known = [*groups, *table.columns]
        hints = [
            f"{m!r} -> {close[0]!r}"
            for m in missing
            if (close := difflib.get_close_matches(str(m), known, n=1))
        ]
        raise DataFormatError(
            f"features: not in the candidate table: {missing}"
            + (f"; did you mean {', '.join(hints)}?" if hints else "")
            + f" (groups: {sorted(groups)})"
        )
    if not names:
        raise DataFormatError(
            f"no features: the dataset provides none of {list(spec)}; name feature columns "
            "or groups it has (its manifest lists its feature columns)"
        )
    return names


def load_dataset(config: GBDTTrainConfig, data: str | Path | None = None) -> Dataset:
    """The configured dataset, or the click world built in memory."""
    if config.dataset:
        return Dataset.read(config.dataset)
    return build_world(config.world, data=data)


def training_table(dataset: Dataset, config: GBDTTrainConfig) -> tuple[pd.DataFrame, Any]:
    """Candidates with click features (from the log) and labels, as ``train gbdt`` uses them."""
    labels = config.labels
    if config.label == "ctr":
        labels = replace(labels, source="ctr")
    split = config.click_split if config.label in _CLICK_SPLIT_LABELS else ClickSplitConfig()
    options = TableOptions(click_features=config.click_features, labels=labels, click_split=split)
    table, feats = build_table(dataset, options)
    if "dense" in config.features and dataset.has_texts:
        table[DENSE] = dense_similarity(table, dataset)
    missing = int(table[SEMANTIC].isna().sum()) if SEMANTIC in table.columns else 0
    if missing and config.judge_fill == "dense" and "semantic" in config.features:
        if not dataset.has_texts:
            logger.warning(
                "%d pairs have no judge score (a labelling budget) and the dataset has no texts "
                "to estimate it from: they stay missing", missing,
            )  # fmt: skip
        else:
            proxy = table[DENSE] if DENSE in table.columns else dense_similarity(table, dataset)
            table = fill_judge_score(table, np.asarray(proxy, dtype=np.float64))
            left = int(table[SEMANTIC].isna().sum())
            logger.info(
                "judge score estimated from the MiniLM cosine on %d pairs a budget left "
                "unlabelled (judge_fill: dense)", missing - left,
            )  # fmt: skip
    return table, feats


@dataclass(frozen=True)
class GBDTRun:
    """The result of :func:`train_gbdt`.

    Attributes:
        ranker: The production model, trained on every labelled row.
        report: Per-bucket metrics of the out-of-fold predictions (None when
            the dataset has no expert grades to evaluate against).
        table: The training table with the run's out-of-fold scores.
        features: Feature names in model order.
        name: The score column (``gbdt_click``, ``gbdt_oracle``, ``gbdt_unbiased``, ...).
        path: The run directory.
        position_bias: ``label: clicks`` only: the learned position biases
            beside the PBM examination curve (one row per position).
    """

    ranker: LambdaMARTRanker
    report: Report | None
    table: pd.DataFrame
    features: list[str]
    name: str
    path: Path
    position_bias: pd.DataFrame | None = None


def _system_name(config: GBDTTrainConfig, dataset: Dataset) -> str:
    if config.label == "expert":
        return "gbdt_oracle" if dataset.impressions is not None else "gbdt_grades"
    if config.label == "clicks":
        return UNBIASED_SYSTEM
    return f"gbdt_{config.label}"


def train_gbdt(
    config: GBDTTrainConfig,
    out_dir: str | Path,
    *,
    data: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: bool = True,
) -> GBDTRun:
    """Train, cross-validate and bundle a LambdaMART model on a dataset.

    The run directory is built beside ``out_dir`` and swapped in when it is
    complete: a crash leaves the previous run as it was.
    """
    check_output_dir(out_dir, markers=RUN_MARKERS, require_all=True)  # before the work, not after it
    start = time.perf_counter()
    dataset = dataset if dataset is not None else load_dataset(config, data)
    table, click_features = training_table(dataset, config)
    if config.label == "clicks":
        ranker, features, name, bias = _train_on_clicks(dataset, table, config, progress)
    elif config.label == "famol":
        ranker, features, name = _train_famol(dataset, table, config, progress)
        bias = None
    else:
        ranker, features, name = _train_on_labels(dataset, table, config, progress)
        bias = None

    report: Report | None = None
    if C.Y_EXPERT in table.columns:
        what = (
            "ORACLE (trained on expert grades)"
            if name == "gbdt_oracle"
            else "unbiased LambdaMART on raw clicks"
            if config.label == "clicks"
            else "FAMOL: click and LLM labels weighted by query frequency"
            if config.label == "famol"
            else f"{config.label} labels"
        )
        baseline = C.BM25 if C.BM25 in table.columns else None
        evaluated = table.loc[evaluation_rows(table)]
        text = text_scores(evaluated) if config.tie_break == "text" else None
        if text is not None:
            # As served: exact ties inside a query ranked by the text order (HybridRanker).
            evaluated = evaluated.assign(**{name: break_ties(
                evaluated[name].to_numpy(), text, qid=evaluated[C.QID].to_numpy()
            )})  # fmt: skip
        best = best_feature_baseline(evaluated, features, secondary=text)
        if best is not None:
            evaluated = evaluated.assign(**{BEST_FEATURE: best.scores})
            # Without BM25 (a LETOR file), the significance marks compare with the best feature.
            baseline = baseline or BEST_FEATURE
        versus = {C.BM25: " vs BM25", BEST_FEATURE: " vs its best single feature", None: ""}
        report = evaluate_table(
            evaluated,
            list(
                dict.fromkeys(
                    s for s in (baseline, BEST_FEATURE if best else None, name) if s is not None
                )
            ),
            metrics=config.metrics,
            bucket_order=dataset.bucket_names,
            baseline=baseline,
            title=f"LambdaMART ({config.gbdt.engine}, {what}){versus[baseline]}, "
            f"{dataset.split_info.n_folds}-fold cross-validated by query; expert grades"
            f"{'; tuning queries left out' if len(evaluated) < len(table) else ''}"
            f"{'; exact ties ranked by the text order' if text is not None else ''}"
            + (
                f"; {BEST_FEATURE}: the model's single input feature that ranks the other "
                f"folds best by NDCG@10, {best.describe()}"
                if best is not None
                else ""
            ),
        )
        if best is not None:
            report.meta[BEST_FEATURE] = [asdict(c) for c in best.choices]
            warn_below_best_feature(report, name, best)
    else:
        logger.warning("the dataset has no expert grades: no per-bucket report")

    out = Path(out_dir)
    with staged_directory(out, markers=RUN_MARKERS, require_all=True) as tmp:
        ranker.save(tmp / "model")
        FeatureSchema.from_frame(table, features).save(tmp / "schema.json")
        if click_features is not None:
            # The training log's aggregates: serving looks a request's click features up here.
            ClickFeatureStore(click_features).save(tmp / "click_features")
        (tmp / "config.yaml").write_text(
            "# The config this run used; `hybridrank train gbdt --config` reads it back.\n"
            + yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
        if bias is not None:
            write_position_bias(bias, tmp, _bias_title(config))
        if report is not None:
            report.write(tmp / "report")
            summary = report.summary
            (tmp / "metrics.json").write_text(summary.to_json(orient="records", indent=2) + "\n")
        plot_training_curves(ranker, tmp / "curves.png")
        keep = [
            C.QID, C.DOCID, C.BUCKET, C.FOLD, C.FREQ, C.BM25, C.Y_EXPERT, C.Y_CLICK, C.Y_LLM,
            name, *features,
        ]  # fmt: skip
        table[[c for c in dict.fromkeys(keep) if c in table.columns]].to_parquet(
            tmp / "train_table.parquet", index=False
        )
        write_manifest(tmp)
    logger.info("trained %s in %.1fs", name, time.perf_counter() - start)
    return GBDTRun(
        ranker=ranker,
        report=report,
        table=table,
        features=features,
        name=name,
        path=out,
        position_bias=bias,
    )


def _train_on_labels(
    dataset: Dataset, table: pd.DataFrame, config: GBDTTrainConfig, progress: bool
) -> tuple[LambdaMARTRanker, list[str], str]:
    """Out-of-fold scores into ``table[name]`` and the production model, on a label column."""
    label = LABELS[config.label]
    if label not in table.columns:
        raise DataFormatError(
            f"label column {label!r} is not in the candidate table (label: {config.label}): "
            f"{_missing_column_hint(label, dataset)}",
            path=dataset.path,
        )
    features = resolve_features(config.features, table, dataset.features)
    _warn_without_judge_score(config, table, features)
    name = _system_name(config, dataset)
    labelled = ~table[label].isna().to_numpy()
    if (
        config.label in ("click", "ctr")
        and not config.click_split.enabled
        and not set(features) & set(CLICK_FEATURES)
        and labelled.mean() < 0.9
    ):
        logger.warning(
            "label %s without click features: only the %.0f%% of candidates the log showed have "
            "a label, so the model never sees a never-shown one and ranks them anywhere; "
            "click_split: {mode: session, unshown: zero} labels them 0 (on the NFCorpus world "
            "NDCG@10 0.364 -> 0.587)",
            config.label, 100 * labelled.mean(),
        )  # fmt: skip
    with ExitStack() as stack:
        # A lost worker raises WorkerLostError here, before anything is written.
        client = stack.enter_context(dask_client(config.dask)) if config.dask.enabled else None
        trainer = None if client is None else dask_trainer(config.gbdt.engine, client)

        def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
            train = training_view(train)
            ranker = LambdaMARTRanker(config.gbdt).fit(
                train[features], train[label], qid=train[C.QID].to_numpy(), trainer=trainer
            )
            return ranker.predict(test[features])

        table[name] = out_of_fold(
            table, name, fit_predict, train_mask=labelled, progress=progress
        ).scores
        rows = training_view(table.loc[labelled])
        ranker = LambdaMARTRanker(config.gbdt).fit(
            rows[features],
            rows[label],
            qid=rows[C.QID].to_numpy(),
            trainer=trainer,
        )
    return ranker, features, name


def _warn_without_judge_score(
    config: GBDTTrainConfig, table: pd.DataFrame, features: list[str]
) -> None:
    """An LLM-label model that cannot see the judge's score learns little from its labels."""
    if (
        config.label in ("llm", "famol")
        and SEMANTIC in table.columns
        and table[SEMANTIC].notna().any()
        and SEMANTIC not in features
    ):
        logger.warning(
            "label %s without the judge's score as a feature: the LLM labels are grades of "
            "%s, which the model cannot see; add the semantic group (--features click dataset "
            "semantic, or --like-experiment DIR). On the default world LLM-GBDT scores "
            "NDCG@10 0.597 without it and 0.632 with it",
            config.label, SEMANTIC,
        )  # fmt: skip


def _train_famol(
    dataset: Dataset, table: pd.DataFrame, config: GBDTTrainConfig, progress: bool
) -> tuple[LambdaMARTRanker, list[str], str]:
    """FAMOL's out-of-fold scores into ``table[name]``, and the production model's LambdaMART.

    As in the experiment: a row without an LLM label uses its click label in the
    LLM loss; rows with neither label are scored but not trained on.
    """
    missing = [c for c in (C.Y_CLICK, C.Y_LLM, C.FREQ) if c not in table.columns]
    if missing:
        raise DataFormatError(
            f"label famol trains on {C.Y_CLICK}, {C.Y_LLM} and {C.FREQ}; not in the candidate "
            f"table: {missing}: " + "; ".join(_missing_column_hint(c, dataset) for c in missing),
            path=dataset.path,
        )
    features = resolve_features(config.features, table, dataset.features)
    _warn_without_judge_score(config, table, features)
    name = _system_name(config, dataset)
    labelled = (table[C.Y_CLICK].notna() | table[C.Y_LLM].notna()).to_numpy()
    model = config.famol_model

    def fit(rows: pd.DataFrame) -> FAMOLRanker:
        rows = training_view(rows)
        return FAMOLRanker(model).fit(
            rows[features],
            rows[C.Y_CLICK],
            rows[C.Y_LLM].fillna(rows[C.Y_CLICK]),
            qid=rows[C.QID].to_numpy(),
            freq=rows[C.FREQ],
        )

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        return fit(train).predict(test[features])

    table[name] = out_of_fold(
        table, name, fit_predict, train_mask=labelled, progress=progress
    ).scores
    # The bundle holds FAMOL's LambdaMART: serving, `bundle` and `importance` need nothing else.
    return fit(table.loc[labelled]).ranker_, features, name


def _train_on_clicks(
    dataset: Dataset, table: pd.DataFrame, config: GBDTTrainConfig, progress: bool
) -> tuple[LambdaMARTRanker, list[str], str, pd.DataFrame]:
    """Unbiased LambdaMART: out of fold by query on the impression rows, then on all of them."""
    if dataset.impressions is None:
        raise DataFormatError(
            "label clicks trains on the impression log; the dataset has none", path=dataset.path
        )
    features = unbiased_features(
        resolve_features(config.features, table, dataset.features), config.unbiased
    )
    name = _system_name(config, dataset)
    rows = impression_rows(dataset, table, features, config.unbiased)

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        # The fold's training queries, as they were shown: every session of those queries.
        shown = rows[rows[C.QID].isin(set(train[C.QID]))]
        return fit_unbiased(shown, features, config.gbdt, config.unbiased).predict(test[features])

    table[name] = out_of_fold(table, name, fit_predict, progress=progress).scores
    ranker = fit_unbiased(rows, features, config.gbdt, config.unbiased)
    if ranker.position_bias_ is None and config.unbiased.propensity == "engine":
        logger.warning("%s reported no position biases", config.gbdt.engine)
    column = HARVESTED if config.unbiased.propensity == "harvest" else config.gbdt.engine
    bias = position_bias_table(
        {column: ranker.position_bias_},
        pbm_examination(dataset.impressions, config.unbiased.max_position),
    )
    logger.info("learned position biases:\n%s", bias.to_string(float_format="%.3f"))
    return ranker, features, name, bias


def _bias_title(config: GBDTTrainConfig) -> str:
    if config.unbiased.propensity == "harvest":
        how = f"harvested from the log's interventions ({config.gbdt.engine} trained on it)"
    elif config.unbiased.propensity == "none":
        how = "not corrected for (propensity: none)"
    else:
        how = f"learned by unbiased LambdaMART ({config.gbdt.engine})"
    return f"Position bias {how} beside the examination curve of a PBM fitted by EM on the same log"


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
