"""The clicks-vs-LLM-labels experiment: every system, several seeds, session counts, per bucket."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank._atomic import (
    check_output_dir,
    save_figure,
    staged_directory,
    write_parquet,
    write_text,
)
from hybridrank._config import (
    as_mapping,
    config_from_dict,
    in_file,
    read_yaml_mapping,
    unknown_keys_error,
)
from hybridrank.data import TUNING, Dataset
from hybridrank.ensemble import (
    TIE_BREAKS,
    DataSchedulingRanker,
    FAMOLConfig,
    FAMOLRanker,
    FrequencyGatedStacker,
    Gate,
    GateChoice,
    HeadGate,
    HeadTuning,
    OOFScores,
    SchedulingConfig,
    StackerConfig,
    break_ties,
    crossfit_shortfall,
    crossfit_stacker,
    format_params,
    gate_from_dict,
    make_gate,
    mean_of_normalised,
    oof_from_scores,
    out_of_fold,
    prepare,
)
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import Report, check_metrics, evaluate_table
from hybridrank.features import ClickFeatureConfig
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker
from hybridrank.labels import ClickLabelConfig
from hybridrank.labels.llm import LLM_SOFT, AnnotateConfig, AnswerCache, make_annotator
from hybridrank.neural import NeuralConfig
from hybridrank.pipelines._annotate import annotate_dataset, default_answer_cache
from hybridrank.pipelines._budget import (
    budget_curve_markdown,
    budget_curve_summary,
    budget_mask,
    budget_significance,
    fill_judge_score,
    mask_llm_labels,
    per_query_values,
    plot_budget_curve,
)
from hybridrank.pipelines._click_split import ClickSplitConfig, split_windows, training_view
from hybridrank.pipelines._click_tuning import (
    ClickTuningConfig,
    curve_table,
    examination_curve,
    head_min_frequency,
    plot_click_tuning,
    summary_table,
    tune_on_held_out,
)
from hybridrank.pipelines._crossfit_report import (
    CROSSFIT,
    crossfit_markdown,
    crossfit_report,
    crossfit_summary,
    plot_crossfit,
)
from hybridrank.pipelines._dense import dense_similarity
from hybridrank.pipelines._gold import GOLD, gold_scores
from hybridrank.pipelines._neural_cache import NEURAL_CACHE_DIR, SCORE, NeuralScoreCache
from hybridrank.pipelines._neural_cache import UNTRAINED as CACHED_UNTRAINED
from hybridrank.pipelines._ppi import ppi_markdown, ppi_report
from hybridrank.pipelines._tables import (
    DENSE,
    RAW_BASELINES,
    RULE,
    SEMANTIC,
    TableOptions,
    add_raw_baselines,
    attach_llm_labels,
    build_table,
    text_scores,
)
from hybridrank.pipelines._train_gbdt import resolve_features
from hybridrank.pipelines._tuning_sweep import (
    plot_tuning_sweep,
    tuning_sweep,
    tuning_sweep_markdown,
)
from hybridrank.pipelines._world import WorldConfig, build_world

logger = logging.getLogger(__name__)

#: Files that mark an experiment's output directory (the first is written last).
EXPERIMENT_MARKERS = ("info.json", "config.yaml")

SINGLE_SOURCE = ("click_gbdt", "llm_gbdt", "llm_neural", "llm_ensemble", "gold_gbdt")
#: The stacker's LLM expert (``ExperimentConfig.llm_expert``): ``ensemble`` is
#: ``llm_ensemble``, the per-query mean of LLM-GBDT's and the transformer's
#: z-scored scores (both learn from LLM labels only); the others name one model.
LLM_EXPERTS = ("ensemble", "llm_neural", "llm_gbdt")
ENSEMBLE = "llm_ensemble"
#: The LLM-neural model's start (the packaged MiniLM's cosine at the same length, untrained),
#: shown beside it: a trained transformer should rank above where it started.
UNTRAINED = "raw_minilm"
#: The experiment's LLM-neural model: the packaged MiniLM at 64 tokens, distilled,
#: listwise, from the judge's continuous grades through one learned offset per
#: training document (``document_steps``); the query encoder stays the start model
#: (``epochs: 0``). Fine-tuning the query encoder on a few hundred queries ended
#: below the start even with near-perfect labels, where the offsets gained
#: (README, "The query tower"). LLM labels only, so it stays a single-source
#: expert; ``clicks: true`` / ``expert: true`` mix in FAMOL's click loss and the
#: tuning queries' grades. No validation split: validation against the judge
#: rewards agreeing with the judge, which the click and expert losses
#: deliberately depart from.
DEFAULT_NEURAL: Mapping[str, Any] = MappingProxyType({
    "architecture": "query-tower", "loss": "listwise", "target": "soft",
    "clicks": False, "expert": False,
    "max_seq_length": 64, "queries_per_batch": 16, "max_docs_per_query": 100,
    "epochs": 0, "document_steps": 300, "learning_rate": 5.0e-5, "temperature": 0.05,
    "target_temperature": 0.1, "validation_fraction": 0.0, "seed": 0,
})  # fmt: skip
#: The query encoder's epochs in the default before document offsets (2026-12-04): what
#: ``neural: {document_steps: 0}`` trains, since no offsets and no epochs learn nothing.
PREVIOUS_NEURAL_EPOCHS = 2
#: The experiment stacker's anchor experts unless the config names others: FAMOL, the gold
#: expert and the mean dwell of a pair's clicks (a raw feature: skipped where a log records
#: no dwell). The dwell anchor lifted the stacker by 0.004-0.010 NDCG@10 on four of five
#: stored 3-seed runs and cost at most 0.001 on the others (README, "Raw features as anchors").
DEFAULT_ANCHORS = ("famol", "gold_gbdt", "raw_dwell")
#: The gold expert's LambdaMART: small trees, some L2, its rounds chosen by
#: cross-validation over the few labelled queries (``min_validation_queries``).
GOLD_GBDT = LambdaMARTConfig(
    n_estimators=300, num_leaves=7, min_child_samples=20, reg_lambda=1.0,
    early_stopping_rounds=30, n_jobs=1,
)  # fmt: skip
#: Systems the budget curve can retrain (the stacker needs click_gbdt and llm_gbdt).
BUDGET_SYSTEMS = ("click_gbdt", "llm_gbdt", "famol", "famol_label_mixing", "gated_stacker")
#: The systems whose out-of-fold scores the stacker can mix in as anchors.
ANCHOR_SYSTEMS = (
    "click_gbdt", "llm_gbdt", "llm_neural", ENSEMBLE, "gold_gbdt", "ds_llm_then_click",
    "ds_click_then_llm", "famol", "famol_label_mixing", *RAW_BASELINES,
)  # fmt: skip


@dataclass(frozen=True)
class ExperimentConfig:
    """``hybridrank experiment`` (the YAML form: ``studies/paper.yaml``).

    Attributes:
        world: The click world; its simulation seed and session count are
            replaced by ``seeds`` and ``sessions``.
        seeds: Simulation seeds; the main table pools their queries.
        sessions: Session counts of the sweep (run with the first seed).
        main_sessions: Session count of the main table; default the world's.
        tuning_queries: Queries (stratified by bucket) whose expert grades
            calibrate the semantic judge and tune the stacker's gate; they are
            left out of every evaluation.
        annotate: The LLM-label source (default: the embedded semantic judge).
        cache: SQLite answer cache; None: the one default cache every
            command shares (``$HYBRIDRANK_CACHE/annotations.sqlite``).
        labels: Click labels.
        click_features: Click feature options.
        click_split: Which sessions give the click features of training rows
            and which the click labels (``mode: none`` by default; ``time``
            keeps the label out of the features).
        features: Feature groups of the GBDT systems (groups a dataset
            cannot provide are skipped). ``dense`` adds the packaged
            MiniLM's cosine of every candidate at 64 tokens (column
            ``dense_cosine``, through the answer cache), which an LLM budget
            never masks.
        gbdt: LambdaMART for click-GBDT and LLM-GBDT.
        famol: FAMOL.
        scheduling: Data scheduling (both orders run).
        neural: LLM-neural model config (keys of NeuralConfig); default
            :data:`DEFAULT_NEURAL`, the query tower distilled from the judge's
            continuous grades into document offsets. None skips it.
        neural_cache: Keep the LLM-neural model's out-of-fold scores beside
            the answer cache (``neural-scores/``, keyed by everything they
            depend on) so a rerun reads them instead of training; false
            always trains and writes nothing there.
        stacker: The frequency-gated stacker; its ``anchors`` default to
            ``[famol, gold_gbdt, raw_dwell]`` here (each mixed in with a tuned
            weight; ``[]``: the two-expert stacker). An anchor is a system of
            the experiment or a raw baseline (:data:`RAW_BASELINES`: its
            scores, with a missing value below every present one of its
            query); one the dataset cannot give is left out with a warning.
        click_tuning: The head queries' click weight chosen on held-out
            clicks (see :mod:`hybridrank.pipelines._click_tuning`): each run
            first trains the stacker's experts with a share of the sessions
            held out, tunes the gate as usual, and picks the head queries'
            click weight that scores best on the held-out sessions by the
            position-debiased click metric; the run's own models are trained
            on the whole log and its stacker is tuned with that weight fixed
            on the head queries. Costs a second training of the stacker's
            experts per run. None (default): off.
        gold: The gold expert ``gold_gbdt``: LambdaMART on the expert grades
            of the labelled tuning queries, cross-fitted over them (see
            :mod:`hybridrank.pipelines._gold`); null: not trained.
        metrics: Report metrics (the first one decides "best").
        budgets: The budget curve: shares of the pairs given an LLM label
            (e.g. ``[0.1, 0.3, 0.5, 1.0]``). For each main-table seed, strategy
            and share below 1 the judge's outputs outside the chosen pairs
            are removed (label and raw score: a pair the judge never saw has
            neither) and ``budget_systems`` are retrained; 1.0 is the full
            run. The labelled tuning queries stay labelled at every budget
            (they calibrate the semantic judge) and the share counts the
            other pairs. Empty: no budget curve.
        budget_strategies: Selection strategies of the curve (``tail-first``,
            ``uncertainty``, ``random``; see :mod:`hybridrank.pipelines._budget`).
        budget_systems: Systems retrained at each budget.
        budget_fill: ``dense``: on the pairs a budget leaves unlabelled, the
            judge's raw score (the ``semantic`` feature) is estimated from the
            packaged MiniLM's cosine at 64 tokens, mapped onto the judge's
            scale by quantile mapping over the labelled pairs (see
            :func:`~hybridrank.pipelines._budget.fill_judge_score`); the
            labels stay missing. ``none``: the score stays missing.
        tuning_sweep: Numbers of labelled tuning queries (e.g. ``[20, 60,
            150]``) the stacker is refitted on, each scored on the same
            evaluation queries (those no size used), seeds pooled: the
            report's ``tuning_sweep.md|csv|png`` (see
            :mod:`hybridrank.pipelines._tuning_sweep`). Empty: not run.
        tuning_crossfit: Folds of the stacker's cross-fit over the labelled
            tuning queries (default 5; 0: off; skipped with a warning where a
            fold's stacker would be tuned on fewer than 10 queries). Each
            fold's tuning queries are scored by a stacker tuned, with its full
            study, on the other folds' (the gold expert, an anchor that
            learned from these grades, retrained on the other folds' alone),
            so every labelled query also measures the stacker: the report's
            ``tuning_crossfit.md|csv|png`` gives each system's quality on
            those queries (the stacker cross-fitted; the tuned stacker and
            the meta-ranker, fitted on them, left out) beside its quality on
            the evaluated queries, the number a deployment with no other
            grades would see. Costs one stacker study and one gold expert per
            fold and run (10-16 s a run on NFCorpus's 60 queries).
        tie_break: ``text``: exact ties inside a query in a learned system's
            scores are ordered by the text score of ``rule`` (the mean of the
            semantic and BM25 percentiles). Click-GBDT needs it: click labels
            say nothing about pairs the log never showed, so about three
            quarters of its scores within a query tie and would otherwise be
            ordered by the candidates' row order. The raw click baselines
            (never-shown pairs tie in them too) are ordered the same way, so
            a learned model and its input are compared in one tie order.
            Unequal scores keep their order. ``none``: ties stay.
        llm_expert: The stacker's LLM expert. ``ensemble`` (default):
            ``llm_ensemble``, the per-query mean of LLM-GBDT's and the
            transformer's z-scored out-of-fold scores, reported as a system of
            its own; ``llm_neural`` or ``llm_gbdt``: that model alone. Without
            the transformer (``neural: null``) every choice is LLM-GBDT. Which
            single model helps the stacker more differs between collections
            (the transformer on NFCorpus at 20,000 sessions, LLM-GBDT on
            CISI), and the tuning queries are too few to choose between them;
            their ensemble is never far below the better one (README,
            "Both LLM models as the LLM expert").
        ppi_gold_share: Also estimate each system's per-bucket quality by
            prediction-powered inference from the LLM labels of every
            evaluation query and the expert grades of this share of them (a
            seeded draw), next to the gold-only estimate: what a team with
            only a few graded queries would see. None: only when the
            dataset's qrels cover fewer than half of its evaluation queries
            (then those are the gold queries).
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    seeds: tuple[int, ...] = (0, 1, 2)
    sessions: tuple[int, ...] = (2000, 5000, 20000)
    main_sessions: int | None = None
    tuning_queries: int = 60
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    cache: str | None = None
    labels: ClickLabelConfig = field(default_factory=ClickLabelConfig)
    click_features: ClickFeatureConfig = field(default_factory=ClickFeatureConfig)
    click_split: ClickSplitConfig = field(default_factory=ClickSplitConfig)
    features: tuple[str, ...] = ("click", "text", "semantic", "dataset")
    # One thread: on these few thousand rows threads add little, and OpenMP
    # threads competing with other processes on a small machine slow
    # LightGBM down by an order of magnitude.
    gbdt: LambdaMARTConfig = field(
        default_factory=lambda: LambdaMARTConfig(
            n_estimators=300, early_stopping_rounds=30, n_jobs=1
        )
    )
    famol: FAMOLConfig = field(default_factory=FAMOLConfig)
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)
    neural: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_NEURAL))
    neural_cache: bool = True
    stacker: StackerConfig = field(default_factory=lambda: StackerConfig(anchors=DEFAULT_ANCHORS))
    click_tuning: ClickTuningConfig | None = None
    gold: LambdaMARTConfig | None = field(default_factory=lambda: GOLD_GBDT)
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")
    ppi_gold_share: float | None = None
    budgets: tuple[float, ...] = ()
    budget_strategies: tuple[str, ...] = ("tail-first", "uncertainty", "random")
    budget_systems: tuple[str, ...] = BUDGET_SYSTEMS
    budget_fill: str = "dense"
    tuning_sweep: tuple[int, ...] = ()
    tuning_crossfit: int = 5
    tie_break: str = "text"
    llm_expert: str = "ensemble"

    def __post_init__(self) -> None:
        unknown = [a for a in self.stacker.anchors if a not in ANCHOR_SYSTEMS]
        if unknown:
            raise ConfigError(
                f"experiment.stacker.anchors: {unknown} are not systems of the experiment; "
                f"anchors are some of {list(ANCHOR_SYSTEMS)}"
            )
        check_metrics(self.metrics, key="experiment.metrics")
        if self.tie_break not in TIE_BREAKS:
            raise ConfigError(
                f"experiment.tie_break must be one of {list(TIE_BREAKS)}, got {self.tie_break!r}"
            )
        if self.llm_expert not in LLM_EXPERTS:
            raise ConfigError(
                f"experiment.llm_expert must be one of {list(LLM_EXPERTS)}, got {self.llm_expert!r}"
            )
        if any(n < 10 for n in self.tuning_sweep):
            raise ConfigError(
                f"experiment.tuning_sweep: sizes must be >= 10 queries, got {list(self.tuning_sweep)}"
            )
        from hybridrank.pipelines._budget import BUDGET_FILLS, get_strategy

        if self.budget_fill not in BUDGET_FILLS:
            raise ConfigError(
                f"experiment.budget_fill must be one of {list(BUDGET_FILLS)}, "
                f"got {self.budget_fill!r}"
            )
        if any(not 0 < b <= 1 for b in self.budgets):
            raise ConfigError(f"experiment.budgets are shares in (0, 1], got {list(self.budgets)}")
        for name in self.budget_strategies if self.budgets else ():
            get_strategy(name)
        unknown = sorted(set(self.budget_systems) - set(BUDGET_SYSTEMS))
        if unknown:
            raise ConfigError(
                f"experiment.budget_systems: {unknown} cannot be retrained per budget; "
                f"choose from {list(BUDGET_SYSTEMS)}"
            )
        if self.ppi_gold_share is not None and not 0 < self.ppi_gold_share < 1:
            raise ConfigError(
                f"experiment.ppi_gold_share must be in (0, 1) or null, got {self.ppi_gold_share}"
            )
        if not self.seeds:
            raise ConfigError("experiment.seeds must name at least one seed")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"experiment.seeds must be >= 0, got {list(self.seeds)}")
        if self.tuning_crossfit < 0 or self.tuning_crossfit == 1:
            raise ConfigError(
                f"experiment.tuning_crossfit must be 0 (off) or a number of folds >= 2, got "
                f"{self.tuning_crossfit}"
            )
        if self.tuning_queries < 10:
            raise ConfigError(
                "experiment.tuning_queries must be >= 10 (the stacker is tuned on them)"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ExperimentConfig:
        v = dict(values or {})
        # Checked before the sections are taken out, so the list names them too.
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(v) - known))
        if unknown:
            raise unknown_keys_error("experiment", unknown, known)
        sections: dict[str, Any] = {
            "world": WorldConfig.from_dict(v.pop("world", None)),
            "annotate": AnnotateConfig.from_dict(v.pop("annotate", None)),
            "labels": ClickLabelConfig.from_dict(v.pop("labels", None)),
            "click_features": ClickFeatureConfig.from_dict(v.pop("click_features", None)),
            "click_split": ClickSplitConfig.from_dict(v.pop("click_split", None)),
            "gbdt": LambdaMARTConfig.from_dict(v.pop("gbdt", None)) if "gbdt" in v else cls().gbdt,
            "famol": FAMOLConfig.from_dict(v.pop("famol", None)),
            "scheduling": SchedulingConfig.from_dict(v.pop("scheduling", None)),
            "stacker": _stacker_config(v.pop("stacker", None)),
        }
        tuning = v.pop("click_tuning", None)
        sections["click_tuning"] = (
            None if tuning is None else ClickTuningConfig.from_dict(tuning)
        )
        neural = v.pop("neural") if "neural" in v else dict(DEFAULT_NEURAL)
        if neural is not None:
            if not isinstance(neural, Mapping):
                raise ConfigError(f"experiment.neural must be a mapping or null, got {neural!r}")
            if "architecture" not in neural:  # a few keys tune the default model
                if neural.get("document_steps") == 0 and "epochs" not in neural:
                    # no offsets: the query encoder trains, as the default did before them
                    neural = {**neural, "epochs": PREVIOUS_NEURAL_EPOCHS}
                neural = {**DEFAULT_NEURAL, **neural}
            NeuralConfig.from_dict(neural)  # a bad key fails here, not after the world is built
        if "gold" in v:
            raw = v.pop("gold")
            gold = None if raw is None else config_from_dict(LambdaMARTConfig, raw, "gold")
        else:
            gold = cls().gold
        base = config_from_dict(_Plain, v, "experiment")
        return cls(**sections, **base.__dict__, neural=neural, gold=gold)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        p = Path(path)
        raw = read_yaml_mapping(p, section="experiment")
        return in_file(p, lambda: cls.from_dict(raw))

    def to_dict(self) -> dict[str, Any]:
        return {
            "world": self.world.to_dict(),
            "seeds": list(self.seeds),
            "sessions": list(self.sessions),
            "main_sessions": self.main_sessions,
            "tuning_queries": self.tuning_queries,
            "annotate": {**self.annotate.__dict__, "params": dict(self.annotate.params),
                         "grader": self.annotate.grader.to_dict()},
            "cache": self.cache,
            "labels": self.labels.to_dict(),
            "click_features": self.click_features.to_dict(),
            "click_split": self.click_split.to_dict(),
            "features": list(self.features),
            "gbdt": self.gbdt.to_dict(),
            "famol": self.famol.to_dict(),
            "scheduling": self.scheduling.to_dict(),
            "neural": None if self.neural is None else dict(self.neural),
            "neural_cache": self.neural_cache,
            "stacker": self.stacker.to_dict(),
            "click_tuning": None if self.click_tuning is None else self.click_tuning.to_dict(),
            "gold": None if self.gold is None else self.gold.to_dict(),
            "metrics": list(self.metrics),
            "ppi_gold_share": self.ppi_gold_share,
            "budgets": list(self.budgets),
            "budget_strategies": list(self.budget_strategies),
            "budget_systems": list(self.budget_systems),
            "budget_fill": self.budget_fill,
            "tuning_sweep": list(self.tuning_sweep),
            "tuning_crossfit": self.tuning_crossfit,
            "tie_break": self.tie_break,
            "llm_expert": self.llm_expert,
        }  # fmt: skip


@dataclass(frozen=True)
class _Plain:
    seeds: tuple[int, ...] = (0, 1, 2)
    sessions: tuple[int, ...] = (2000, 5000, 20000)
    main_sessions: int | None = None
    tuning_queries: int = 60
    cache: str | None = None
    features: tuple[str, ...] = ("click", "text", "semantic", "dataset")
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")
    ppi_gold_share: float | None = None
    budgets: tuple[float, ...] = ()
    budget_strategies: tuple[str, ...] = ("tail-first", "uncertainty", "random")
    budget_systems: tuple[str, ...] = BUDGET_SYSTEMS
    budget_fill: str = "dense"
    tuning_sweep: tuple[int, ...] = ()
    tuning_crossfit: int = 5
    tie_break: str = "text"
    llm_expert: str = "ensemble"
    neural_cache: bool = True


@dataclass(frozen=True)
class JudgeVectors:
    """Normalised embeddings the embedded judge made, by text, and what made them."""

    model_path: Path
    max_seq_length: int
    vectors: Mapping[str, np.ndarray]


@dataclass
class _Shared:
    """State computed once and reused by every run: folds, tuning set, LLM labels, neural scores."""

    folds: pd.Series
    tuning: set[str]
    llm_labels: pd.DataFrame | None
    neural: OOFScores | None = None
    #: The neural model's untrained start (same architecture and length), per base-table row.
    untrained: np.ndarray | None = None
    #: Texts the judge embedded with the neural model's start weights at its length.
    embedded: JudgeVectors | None = None


def _stacker_config(values: Mapping[str, Any] | None) -> StackerConfig:
    """The experiment's stacker: ``anchors`` default to :data:`DEFAULT_ANCHORS`."""
    v = as_mapping(values, "stacker")
    if "anchor" not in v and "anchors" not in v:
        v["anchors"] = list(DEFAULT_ANCHORS)
    return StackerConfig.from_dict(v)


def _gbdt_fit_predict(
    config: LambdaMARTConfig, features: list[str], label: str
) -> Callable[..., np.ndarray]:
    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        if label == C.Y_CLICK:
            train = training_view(train)
        ranker = LambdaMARTRanker(config).fit(
            train[features], train[label], qid=train[C.QID].to_numpy()
        )
        return ranker.predict(test[features])

    return fit_predict


def _hybrid_fit_predict(
    make: Callable[[], DataSchedulingRanker | FAMOLRanker],
    features: list[str],
    *,
    fill_llm: bool = False,
) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    """Fit a two-label hybrid (click and LLM labels, query frequency) and score the test rows.

    With ``fill_llm`` (FAMOL), rows without an LLM label use their click label in
    the LLM loss; data scheduling instead leaves them out of its LLM stage.
    """

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        train = training_view(train)
        y_llm = train[C.Y_LLM]
        if fill_llm:
            # A partly labelled dataset: the LLM side of the loss takes the click label
            # where no LLM label exists (LLM labels where they exist, clicks elsewhere).
            y_llm = y_llm.fillna(train[C.Y_CLICK])
        model = make().fit(
            train[features],
            train[C.Y_CLICK],
            y_llm,
            qid=train[C.QID].to_numpy(),
            freq=train[C.FREQ],
        )
        return model.predict(test[features])

    return fit_predict


def skipped_systems(table: pd.DataFrame, shared: _Shared) -> dict[str, str]:
    """Systems this dataset cannot support, each with the reason (one line each in the output)."""
    no_click = C.Y_CLICK not in table.columns
    no_llm = C.Y_LLM not in table.columns
    no_tuning = C.Y_EXPERT not in table.columns or not table[TUNING].any()
    reasons: dict[str, str] = {}
    why_click = "the dataset has no click log (impressions)"
    why_llm = "the dataset has no LLM labels and no texts to label"
    if no_click:
        reasons["click_gbdt"] = why_click
    if no_llm:
        reasons["llm_gbdt"] = why_llm
    for name in ("ds_llm_then_click", "ds_click_then_llm", "famol", "famol_label_mixing"):
        if no_click or no_llm:
            reasons[name] = why_click if no_click else why_llm
    if no_tuning:
        reasons[GOLD] = "the dataset has no labelled tuning queries (expert grades) to train it on"
    for name in ("gated_stacker", "meta_ranker"):
        if no_click or no_llm:
            reasons[name] = "needs both a click model and an LLM model"
        elif no_tuning:
            reasons[name] = "the dataset has no labelled tuning queries (expert grades) to tune it on"
    return reasons


def _run_systems(
    table: pd.DataFrame,
    config: ExperimentConfig,
    shared: _Shared,
    features: list[str],
    *,
    progress: bool,
    only: Collection[str] | None = None,
    head: HeadTuning | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Out-of-fold scores of every system the dataset supports, plus the stacker's tuned gate.

    ``only`` restricts the run to these systems (the budget curve's). ``head``:
    the click weight held-out clicks chose for the head queries; when they
    chose one, the stacker tunes the rest of its gate and its anchors with the
    head queries' weight fixed (a :class:`HeadGate`).
    """
    skipped = skipped_systems(table, shared)
    oof: dict[str, OOFScores] = {}
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], OOFScores]) -> None:
        if name in skipped or (only is not None and name not in only):
            return
        start = time.perf_counter()
        oof[name] = fn()
        timings[name] = round(time.perf_counter() - start, 1)

    for name, label in (("click_gbdt", C.Y_CLICK), ("llm_gbdt", C.Y_LLM)):
        timed(
            name,
            partial(
                out_of_fold, table, name, _gbdt_fit_predict(config.gbdt, features, label),
                train_mask=~table[label].isna().to_numpy() if label in table else None,
                progress=progress,
            ),
        )  # fmt: skip
    hybrids: list[tuple[str, Callable[[], DataSchedulingRanker | FAMOLRanker]]] = [
        (
            f"ds_{order}",
            partial(
                DataSchedulingRanker, replace(config.scheduling, order=order, gbdt=config.gbdt)
            ),
        )
        for order in ("llm_then_click", "click_then_llm")
    ]
    hybrids += [
        (name, partial(FAMOLRanker, replace(config.famol, mode=mode)))
        for mode, name in (("objective", "famol"), ("label_mixing", "famol_label_mixing"))
    ]
    for name, make in hybrids:
        fill = name.startswith("famol")
        timed(
            name,
            partial(
                out_of_fold, table, name, _hybrid_fit_predict(make, features, fill_llm=fill),
                progress=progress,
            ),
        )  # fmt: skip
    if config.gold is not None and GOLD not in skipped and (only is None or GOLD in only):
        start = time.perf_counter()
        gold = gold_scores(table, features, config.gold, rows=table[TUNING].to_numpy(),
                           seed=config.stacker.seed)  # fmt: skip
        if gold is not None:
            oof[GOLD] = gold
            timings[GOLD] = round(time.perf_counter() - start, 1)
    if shared.neural is not None:
        oof["llm_neural"] = shared.neural
    llm_model = _llm_expert(config.llm_expert, oof)
    out = table.copy()
    for name, scores in oof.items():
        out[name] = scores.scores
    raw = [name for name in add_raw_baselines(out) if name in RAW_BASELINES]
    # A raw anchor is fitted on the feature's own order, not the report column's text tie order.
    untied = {name: out[name].to_numpy(copy=True) for name in raw}
    if shared.untrained is not None:
        out[UNTRAINED] = shared.untrained
    info: dict[str, Any] = {"llm_model": llm_model, "seconds": timings, "skipped": skipped}
    text = text_scores(out) if config.tie_break == "text" else None
    if text is not None:
        qid = out[C.QID].to_numpy()
        # The raw inputs as well: a learned model is compared with its input in the same tie
        # order (never-shown pairs tie in every click feature).
        for name in [*oof, *raw]:
            out[name] = break_ties(out[name].to_numpy(), text, qid=qid)
    if "gated_stacker" in skipped or (only is not None and "gated_stacker" not in only):
        return out, info

    # The stacker: tuned on the tuning queries' out-of-fold scores only.
    tuning_rows = table[TUNING].to_numpy()
    raw_anchors: dict[str, OOFScores] = {}
    for a in config.stacker.anchors:
        if a in untied:
            raw_anchors[a] = _raw_anchor(table, a, untied[a])
    anchors = [oof[a] if a in oof else raw_anchors[a] for a in config.stacker.anchors
               if a in oof or a in raw_anchors]  # fmt: skip
    missing = [a for a in config.stacker.anchors if a not in oof and a not in raw_anchors]
    if missing:
        logger.warning(
            "stacker.anchors %s did not run or the dataset has no value of them (a raw "
            "feature such as qd_mean_dwell, missing where the log records no dwell): the "
            "stacker mixes the others",
            missing,
        )
    stacker = FrequencyGatedStacker(config.stacker).fit(
        oof["click_gbdt"],
        oof[llm_model],
        freq=table[C.FREQ],
        labels=table[C.Y_EXPERT],
        rows=tuning_rows,
        anchors=anchors,
        head=None if head is None or head.weight is None else (head.min_frequency, head.weight),
        bucket=table[C.BUCKET].to_numpy(),
    )
    if head is not None:
        info["click_tuning"] = {**head.summary(), "curve": head.curve.to_dict(orient="list")}
    out["gated_stacker"] = stacker.predict(
        oof["click_gbdt"].scores,
        oof[llm_model].scores,
        qid=table[C.QID].to_numpy(),
        freq=table[C.FREQ],
        anchors=[a.scores for a in anchors],
    )
    if text is not None:
        out["gated_stacker"] = break_ties(out["gated_stacker"].to_numpy(), text, qid=qid)
    cross = None
    if config.tuning_crossfit and only is None:  # not for the budget curve's or click tuning's runs
        graded = tuning_rows & table[C.Y_EXPERT].notna().to_numpy()
        why = crossfit_shortfall(int(table.loc[graded, C.QID].nunique()), config.tuning_crossfit)
        if why is not None:
            logger.warning("stacker cross-fit skipped: %s", why)
        else:
            start = time.perf_counter()
            gold_config = config.gold

            def refit_gold(rows: np.ndarray) -> OOFScores:
                # Retrained on the other folds' grades: the held-out fold's never reach it.
                assert gold_config is not None
                refitted = gold_scores(table, features, gold_config, rows=rows,
                                       seed=config.stacker.seed)  # fmt: skip
                assert refitted is not None  # a fold's stacker has >= 10 graded queries
                return refitted

            refit = {GOLD: refit_gold} if any(a.name == GOLD for a in anchors) else {}
            cross = crossfit_stacker(
                config.stacker, oof["click_gbdt"], oof[llm_model], freq=table[C.FREQ],
                labels=table[C.Y_EXPERT], rows=tuning_rows, anchors=anchors, refit=refit,
                head=None if head is None or head.weight is None
                else (head.min_frequency, head.weight),
                bucket=table[C.BUCKET].to_numpy(), folds=config.tuning_crossfit,
                seed=config.stacker.seed,
            )  # fmt: skip
            timings[CROSSFIT] = round(time.perf_counter() - start, 1)
    if cross is not None:
        scored = ~np.isnan(cross.scores)
        crossfitted = cross.scores.copy()
        if text is not None and scored.any():
            crossfitted[scored] = break_ties(cross.scores[scored], text[scored], qid=qid[scored])
        out[CROSSFIT] = crossfitted
        info["tuning_crossfit"] = cross.to_dict()
    info.update({"gate": stacker.gate_.params(), "gate_kind": stacker.gate_.kind,
                 "anchors": {a.name: w for a, w in zip(anchors, stacker.anchor_weights_,
                                                       strict=True)},
                 "tuning_ndcg": stacker.best_value_,
                 "gate_selection": stacker.selection_.to_dict()})  # fmt: skip
    if only is not None and "meta_ranker" not in only:
        return out, info
    # The meta-ranker: LambdaMART on both normalised scores and log frequency, trained on the tuning queries.
    data = prepare(oof["click_gbdt"].scores, oof[llm_model].scores, qid=table[C.QID].to_numpy(),
                   freq=table[C.FREQ], normalisation=config.stacker.normalisation)  # fmt: skip
    meta_X = pd.DataFrame(
        {"click": data.click, "llm": data.llm, "log_freq": np.log1p(table[C.FREQ].to_numpy())}
    )
    meta_cfg = LambdaMARTConfig(
        n_estimators=50, num_leaves=7, min_child_samples=10, early_stopping_rounds=None, n_jobs=1
    )
    meta = LambdaMARTRanker(meta_cfg).fit(
        meta_X[tuning_rows],
        table.loc[tuning_rows, C.Y_EXPERT],
        qid=table.loc[tuning_rows, C.QID].to_numpy(),
    )
    out["meta_ranker"] = meta.predict(meta_X)
    if text is not None:
        out["meta_ranker"] = break_ties(out["meta_ranker"].to_numpy(), text, qid=qid)
    return out, info


def _raw_anchor(table: pd.DataFrame, name: str, scores: np.ndarray) -> OOFScores:
    """A raw baseline's scores (:func:`raw_baseline_scores`) as a stacker anchor, from no
    trained model (no fold's model saw any query)."""
    fold = table[C.FOLD].to_numpy()
    return OOFScores(
        name, scores, table[C.QID].to_numpy(), fold,
        trained_on={int(f): frozenset() for f in np.unique(fold)},
    )  # fmt: skip


def _llm_expert(choice: str, oof: dict[str, OOFScores]) -> str:
    """The stacker's LLM expert; ``ensemble`` adds ``llm_ensemble`` to ``oof`` when both LLM models ran.

    A named model that did not run falls back to the other (the transformer is
    off with ``neural: null``); the ensemble of one model is that model.
    """
    if choice == "ensemble" and "llm_gbdt" in oof and "llm_neural" in oof:
        oof[ENSEMBLE] = mean_of_normalised(ENSEMBLE, [oof["llm_gbdt"], oof["llm_neural"]])
        return ENSEMBLE
    if choice == "llm_gbdt" or "llm_neural" not in oof:
        return "llm_gbdt"
    return "llm_neural"


SYSTEM_ORDER = (
    C.BM25, *RAW_BASELINES, UNTRAINED, RULE, "click_gbdt", "llm_gbdt", "llm_neural", ENSEMBLE,
    "gold_gbdt",
    "ds_llm_then_click", "ds_click_then_llm",
    "famol", "famol_label_mixing", "gated_stacker", "meta_ranker",
)  # fmt: skip


@dataclass(frozen=True)
class ExperimentResult:
    """Reports of the experiment.

    Attributes:
        main: Report pooled over the seeds at the main session count.
        per_seed: One report per seed.
        sweep: NDCG (first metric) per system, bucket and session count.
        best_single: The best single-source system (the significance baseline;
            None when the dataset supports none).
        info: Tuned gates, timings and counts per run.
        path: Output directory.
        budget: The budget curve (``budgets`` in the config), else None.
    """

    main: Report
    per_seed: dict[int, Report]
    sweep: pd.DataFrame
    best_single: str | None
    info: dict[str, Any]
    path: Path
    budget: BudgetCurve | None = None


def _prepare_table(dataset: Dataset, config: ExperimentConfig, shared: _Shared) -> pd.DataFrame:
    """The run's table: the dataset's candidates with click features and labels, the shared
    folds, tuning set and LLM labels."""
    options = TableOptions(
        click_features=config.click_features, labels=config.labels, click_split=config.click_split
    )
    table, _ = build_table(dataset, options)
    table[C.FOLD] = shared.folds.reindex(table[C.QID]).to_numpy()
    table[TUNING] = table[C.QID].isin(shared.tuning).to_numpy()
    if shared.llm_labels is not None:
        table = attach_llm_labels(table, shared.llm_labels)
    wants_dense = "dense" in config.features or (
        config.budgets and config.budget_fill == "dense"
    )
    if wants_dense and dataset.has_texts:
        table[DENSE] = dense_similarity(table, dataset, config.cache)
    return table


def _evaluate(
    tables: list[pd.DataFrame],
    systems: list[str],
    config: ExperimentConfig,
    baseline: str | None,
    title: str,
    bucket_order: list[str],
) -> Report:
    pooled = pd.concat(tables, ignore_index=True)
    pooled = pooled.loc[~pooled[TUNING].to_numpy()]
    return evaluate_table(pooled, systems, metrics=config.metrics, bucket_order=bucket_order,
                          baseline=baseline, title=title)  # fmt: skip


def _neural_scores(
    dataset: Dataset,
    base: pd.DataFrame,
    config: ExperimentConfig,
    progress: bool,
    embedded: JudgeVectors | None,
) -> tuple[OOFScores, np.ndarray | None, str, Path | None]:
    """The LLM-neural model's out-of-fold scores, its untrained start's scores (None for a
    cross-encoder, whose head starts random), the label column it learned from, and the
    cache file the scores were read from (None: trained now, and cached)."""
    from hybridrank.neural import RANKERS, BiEncoderRanker, QueryTowerRanker, make_ranker
    from hybridrank.pipelines._train_neural import attach_texts

    ncfg = NeuralConfig.from_dict(config.neural)
    assert dataset.queries is not None and dataset.docs is not None  # has_texts
    texts = attach_texts(base, dataset.queries, dataset.docs)
    target = LLM_SOFT if ncfg.target == "soft" and LLM_SOFT in texts.columns else C.Y_LLM
    pairs = texts[["query", "document"]]

    if ncfg.expert and C.Y_EXPERT in texts.columns:
        gold = texts[TUNING].to_numpy() & texts[C.Y_EXPERT].notna().to_numpy()
        texts[target] = np.where(gold, texts[C.Y_EXPERT].to_numpy(), texts[target].to_numpy())
    clicks = ncfg.clicks and C.Y_CLICK in texts.columns
    if clicks or ncfg.expert:
        logger.warning(
            "neural.clicks/expert: llm_neural learns from more than LLM labels (so it is no "
            "single-source model), and from the first world's clicks in every run"
        )
    if clicks:
        texts["click_share"] = FAMOLRanker(config.famol).alpha(texts[C.FREQ].to_numpy())
    train_mask = ~texts[target].isna().to_numpy()
    # The model sees these columns only, so the cache key covers all it learns from.
    inputs = [C.QID, "query", "document", target, C.FOLD] + (
        [C.Y_CLICK, "click_share"] if clicks else []
    )
    texts = texts[inputs]
    answers = Path(config.cache) if config.cache else default_answer_cache()
    cache = NeuralScoreCache(answers.parent / NEURAL_CACHE_DIR) if config.neural_cache else None
    key = "" if cache is None else cache.key(texts, ncfg, train_mask)
    hit = None if cache is None else cache.load(key, len(texts))
    if cache is not None and hit is not None:
        scores = oof_from_scores(texts, "llm_neural", hit[SCORE].to_numpy(), train_mask=train_mask)
        untrained_hit = hit[CACHED_UNTRAINED].to_numpy()
        return scores, None if np.isnan(untrained_hit).all() else untrained_hit, target, (
            cache.path(key)
        )

    start = None
    untrained: np.ndarray | None = None
    if ncfg.architecture != "cross-encoder":
        start = RANKERS[ncfg.architecture].pretrained(ncfg)
        if embedded is not None and isinstance(start, BiEncoderRanker):
            documents = set(texts["document"])
            start.add_document_embeddings(  # the judge's head view: not encoded again
                {t: v for t, v in embedded.vectors.items() if t in documents},
                model_path=embedded.model_path,
                max_seq_length=embedded.max_seq_length,
            )
        untrained = start.predict(pairs)

    checkpoints = None if cache is None else cache.folds(key, "experiment")

    def neural(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        fold = int(test[C.FOLD].iloc[0])
        done = None if checkpoints is None else checkpoints.load(fold, len(test))
        if checkpoints is not None and done is not None:
            logger.info("llm_neural fold %d: read from %s", fold, checkpoints.path(fold))
            return done[0]
        ranker = make_ranker(ncfg)
        if isinstance(ranker, QueryTowerRanker) and isinstance(start, QueryTowerRanker):
            ranker.share_documents(start)  # every fold reuses the one document encoding
        X, y, qid = train[["query", "document"]], train[target].to_numpy(), train[C.QID].to_numpy()
        if clicks and isinstance(ranker, QueryTowerRanker):
            ranker.fit(X, y, qid=qid, y_click=train[C.Y_CLICK].to_numpy(),
                       click_share=train["click_share"].to_numpy())  # fmt: skip
        else:
            ranker.fit(X, y, qid=qid)
        scores = ranker.predict(test[["query", "document"]])
        if checkpoints is not None:  # a stopped run resumes after this fold
            checkpoints.save(fold, scores, {"fold": fold})
        return scores

    scores = out_of_fold(texts, "llm_neural", neural, train_mask=train_mask, progress=progress)
    if cache is not None:
        cache.save(key, scores.scores, untrained)
    return scores, untrained, target, None


def _label_dataset(
    dataset: Dataset, config: ExperimentConfig, *, progress: bool, echo: Callable[[str], None]
) -> tuple[pd.DataFrame | None, JudgeVectors | None]:
    """The LLM labels the experiment uses: the dataset's own (from `annotate`, any backend)
    when it holds them, else the config's judge through the answer cache (cheap when cached);
    and the texts the judge embedded that the LLM-neural model can reuse."""
    if dataset.llm_labels is not None:
        echo(f"LLM labels: the dataset's own ({len(dataset.llm_labels)} pairs, from `annotate`)")
        return dataset.llm_labels, None
    if not dataset.has_texts:
        return None, None
    annotator = make_annotator(config.annotate.backend, **dict(config.annotate.params))
    cache_path = Path(config.cache) if config.cache else default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with annotator, AnswerCache(cache_path) as cache:
        labelled = annotate_dataset(
            dataset, annotator, cache, config.annotate, progress=progress
        )
        embedded = _reusable_embeddings(annotator, config.neural)
    echo(f"LLM labels ({config.annotate.backend}; cache {cache_path}): {labelled.stats.summary()}")
    return labelled.llm_labels, embedded


def _reusable_embeddings(
    annotator: object, neural: Mapping[str, Any] | None
) -> JudgeVectors | None:
    """What the embedded judge encoded that the neural model would encode again: only
    when both run the same weights on the CPU (torch) at one length of the judge's
    views. On a cold cache that is every document (about a minute on 2 cores for
    NFCorpus at 64 tokens); with the answers cached the judge encodes nothing."""
    from hybridrank.labels.llm import EmbeddingJudge
    from hybridrank.neural import resolve_torch_device

    if neural is None or not isinstance(annotator, EmbeddingJudge):
        return None
    ncfg = NeuralConfig.from_dict(neural)
    same = (
        ncfg.architecture != "cross-encoder"
        and ncfg.backend == "torch"
        and annotator.device == "cpu"
        and resolve_torch_device(ncfg.device) == "cpu"
        and ncfg.max_seq_length in annotator.views
        and Path(ncfg.resolved_model_path).resolve() == annotator.model_path.resolve()
    )
    if not same:
        return None
    return JudgeVectors(
        annotator.model_path, ncfg.max_seq_length, annotator.embedded(ncfg.max_seq_length)
    )


def _ppi(
    dataset: Dataset, table: pd.DataFrame, systems: list[str], config: ExperimentConfig
) -> pd.DataFrame | None:
    """The PPI estimates the config or the dataset's sparse grades call for (None: not run)."""
    if C.Y_LLM not in table.columns or C.Y_EXPERT not in table.columns:
        return None
    evaluated = table.loc[~table[TUNING].to_numpy()]
    queries = evaluated[C.QID].drop_duplicates().to_numpy()
    if config.ppi_gold_share is not None:
        rng = np.random.default_rng(dataset.split_info.fold_seed)
        n_gold = max(round(config.ppi_gold_share * len(queries)), 2)
        gold = {str(q) for q in rng.choice(queries, size=n_gold, replace=False)}
    else:
        if dataset.qrels is None:
            return None
        judged = set(dataset.qrels[C.QID].astype(str)) & {str(q) for q in queries}
        if len(judged) >= len(queries) / 2 or len(judged) < 2:
            return None
        gold = judged
    return ppi_report(evaluated, systems, gold, metric=config.metrics[0])


def _head_tuning(
    dataset: Dataset,
    config: ExperimentConfig,
    shared: _Shared,
    features: list[str],
    *,
    progress: bool,
    echo: Callable[[str], None],
) -> HeadTuning | None:
    """The head queries' click weight, chosen on held-out sessions (``click_tuning``).

    The stacker's experts are trained and its gate tuned with the held-out
    sessions removed from the log (click features, click labels, click model);
    the head weight is chosen on those sessions' clicks. None when the dataset
    has no log or the stacker cannot run.
    """
    tuning = config.click_tuning
    assert tuning is not None
    if dataset.impressions is None:
        echo("click_tuning: the dataset has no click log; the tuned gate stays as it is")
        return None
    earlier, held, how = split_windows(
        dataset.impressions, tuning.holdout, by_time=tuning.by_time, seed=tuning.seed
    )
    table = _prepare_table(replace(dataset, impressions=earlier), config, shared)
    why = skipped_systems(table, shared).get("gated_stacker")
    if why is not None:
        echo(f"click_tuning: the stacker cannot run ({why}); nothing to tune")
        return None
    if shared.neural is not None and config.neural and config.neural.get("clicks"):
        # A transformer trained with the click loss saw the held-out sessions' clicks.
        echo("click_tuning: the transformer learned from every session's clicks "
             "(neural.clicks); the tuning run leaves it out of the stacker")  # fmt: skip
        shared = replace(shared, neural=None)
    needed = {"click_gbdt", "llm_gbdt", "gated_stacker", *config.stacker.anchors}
    scored, info = _run_systems(table, config, shared, features, progress=progress, only=needed)
    if "gate" not in info:
        echo("click_tuning: the stacker did not run on the tuning split; the gate stays as tuned")
        return None
    result = tune_on_held_out(
        scored, info, held, examination_curve(earlier, held, tuning.click_model),
        config=tuning, stacker=config.stacker, min_frequency=head_min_frequency(dataset, tuning),
    )  # fmt: skip
    chosen = (
        f"head click weight {result.weight:.2f} (IPS-DCG@{tuning.k} {result.base_value:.4f} -> "
        f"{result.best_value:.4f})" if result.weight is not None
        else f"gate kept as tuned: {result.reason}"
    )  # fmt: skip
    echo(f"click_tuning ({how}, {held[C.SESSION_ID].nunique()} sessions held out): "
         f"{result.n_queries} head queries (>= {result.min_frequency:g} sessions); {chosen}")  # fmt: skip
    return result


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    dataset: Dataset | None = None,
    data: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = logger.info,
) -> ExperimentResult:
    """Run every system the data supports and write the reports.

    With ``dataset`` (a dataset directory read with :meth:`Dataset.read`) the
    experiment runs on it alone, with its folds, buckets and labelled tuning
    set; seeds and the session sweep do not apply. Without it, the click
    world of ``config.world`` is simulated for every (seed, session count),
    all sharing the first world's folds and tuning set.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    check_output_dir(out, markers=EXPERIMENT_MARKERS, require_all=True)  # before the work, not after it
    fixed = dataset is not None
    main_sessions = config.main_sessions or config.world.simulation.n_sessions
    world_cfg = config.world.replace(
        folds=replace(config.world.folds, tuning_queries=config.tuning_queries)
    )

    def world_for(seed: int, sessions: int) -> Dataset:
        sim = replace(world_cfg.simulation, seed=seed, n_sessions=sessions)
        return build_world(world_cfg.replace(simulation=sim), data=data)

    if dataset is not None:
        first = dataset
        # Runs and reports name the dataset's own traffic, not the config's simulation.
        log = dataset.impressions
        main_sessions = 0 if log is None else int(log[C.SESSION_ID].nunique())
        if len(config.seeds) > 1 or config.sessions:
            echo("a fixed dataset: the seeds and the session sweep of the config do not apply")
        if data is not None or config.world != WorldConfig():
            echo("a fixed dataset: the config's world block (and a collection path for it) "
                 "do not apply")  # fmt: skip
        if dataset.split_info.tuning_requested != config.tuning_queries:
            echo(f"tuning set: the dataset's own {len(dataset.tuning_qids)} queries "
                 f"(the config asks for {config.tuning_queries})")  # fmt: skip
    else:
        first = world_for(config.seeds[0], main_sessions)
    tuning = first.tuning_qids
    grades = first.candidates.get(C.Y_EXPERT)
    evaluated = ~first.candidates[C.QID].isin(tuning).to_numpy()
    if grades is None or not (grades.to_numpy()[evaluated] > 0).any():
        raise DataFormatError(
            "no query outside the tuning set has a candidate with a relevant expert grade "
            "(> 0): every metric would be undefined. The experiment needs graded queries "
            "(qrels with relevant documents among the candidates)"
        )
    folds = first.splits.set_index(C.QID)[C.FOLD]
    echo(f"dataset: {len(first.splits)} queries, {len(first.candidates)} candidates; "
         f"{len(tuning)} tuning queries (left out of evaluation)")  # fmt: skip

    # LLM labels: the judge calibrated on the tuning queries' expert grades.
    llm_labels, embedded = _label_dataset(first, config, progress=progress, echo=echo)
    shared = _Shared(folds=folds, tuning=tuning, llm_labels=llm_labels, embedded=embedded)
    base = _prepare_table(first, config, shared)
    features = resolve_features(config.features, base, first.features)

    if config.neural is not None and first.has_texts and shared.llm_labels is not None:
        t0 = time.perf_counter()
        shared.neural, shared.untrained, target, cached = _neural_scores(
            first, base, config, progress, shared.embedded
        )
        shared.embedded = None  # used once: the run does not keep the vectors
        echo(f"LLM-neural ({config.neural.get('architecture', 'cross-encoder')}, trained on "
             f"{target}) out-of-fold scores "
             + (f"from the cache {cached}" if cached else
                f"in {time.perf_counter() - t0:.0f}s")
             )  # fmt: skip

    info: dict[str, Any] = {"runs": {}}
    tables: dict[tuple[int, int], pd.DataFrame] = {}
    prepared: dict[int, pd.DataFrame] = {}
    first_key = (config.seeds[0], main_sessions)
    runs = [first_key] if fixed else [(s, main_sessions) for s in config.seeds] + [
        (config.seeds[0], n) for n in config.sessions if n != main_sessions
    ]
    for seed, sessions in runs:
        t0 = time.perf_counter()
        run_data = first if (seed, sessions) == first_key else world_for(seed, sessions)
        table = base if (seed, sessions) == first_key else _prepare_table(run_data, config, shared)
        if sessions == main_sessions:
            prepared[seed] = table
        head = (
            None if config.click_tuning is None
            else _head_tuning(run_data, config, shared, features, progress=progress, echo=echo)
        )  # fmt: skip
        scored, run_info = _run_systems(
            table, config, shared, features, progress=progress, head=head
        )
        scored["seed"] = seed
        scored["sessions"] = sessions
        tables[(seed, sessions)] = scored
        run_info["seconds_total"] = round(time.perf_counter() - t0, 1)
        info["runs"][f"seed{seed}_sessions{sessions}"] = run_info
        for name, why in run_info["skipped"].items() if (seed, sessions) == first_key else ():
            echo(f"skipped {name}: {why}")
        echo(
            f"{'dataset' if fixed else f'seed {seed}, {sessions} sessions'}: done in "
            f"{run_info['seconds_total']:.0f}s; gate "
            + (format_params(run_info["gate"]) if isinstance(run_info.get("gate"), Mapping)
               else str(run_info.get("gate", "none (skipped)")))
        )

    if C.Y_EXPERT not in base.columns:
        raise DataFormatError(
            "the dataset has no expert grades (qrels) to evaluate the systems against; "
            "evaluate on held-out sessions with `hybridrank evaluate clicks --dataset DIR`",
            path=first.path,
        )
    systems = [s for s in SYSTEM_ORDER if s in next(iter(tables.values())).columns]
    bucket_order = first.bucket_names
    metric = config.metrics[0]
    budget = None
    if config.budgets:
        budget = _budget_curve(
            prepared, {s: tables[(s, main_sessions)] for s in prepared}, config, shared, features,
            bucket_order, progress=progress, echo=echo,
        )  # fmt: skip
        info["budget"] = budget.info
    main_tables = [
        t.assign(**{C.QID: t["seed"].astype(str) + ":" + t[C.QID].astype(str)})
        for (s, n), t in tables.items()
        if n == main_sessions
    ]
    probe = _evaluate(main_tables, systems, config, None, "", bucket_order)
    overall = probe.summary[probe.summary[C.BUCKET] == "all"].set_index("system")[metric]
    singles = [s for s in SINGLE_SOURCE if s in systems]
    known = overall.reindex(singles).dropna()
    best_single = str(known.idxmax()) if len(known) else None
    what = (
        f"dataset {first.path or first.source.get('producer', '')}"
        if fixed
        else f"{len(config.seeds)} seed{'s' if len(config.seeds) != 1 else ''} x "
        f"{main_sessions:,} sessions"
    )
    main = _evaluate(main_tables, systems, config, best_single,
                     f"{metric} per bucket, {what}, {first.split_info.n_folds} query folds"
                     + (f"; * p < 0.05 against the best single-source model ({best_single})"
                        if best_single else ""), bucket_order)  # fmt: skip
    crossfit = crossfit_report(
        main_tables, systems, main, metric=metric, bucket_order=bucket_order,
        title=f"{metric} per bucket on the labelled tuning queries, {what}; * p < 0.05 against "
        "the cross-fitted stacker",
    )  # fmt: skip
    crossfit_text = None
    if crossfit is not None:
        crossfit_text = crossfit_markdown(*crossfit, config.tuning_crossfit)
        echo(crossfit_summary(crossfit[1], metric) + " (report/tuning_crossfit.md)")
    seeds = [first_key[0]] if fixed else list(config.seeds)
    per_seed = {
        s: _evaluate([tables[(s, main_sessions)]], systems, config, best_single,
                     f"seed {s}, {main_sessions} sessions", bucket_order)
        for s in seeds
    }  # fmt: skip
    sweep_rows = []
    for n in sorted({n for _, n in tables}):
        rep = _evaluate([tables[(config.seeds[0], n)]], systems, config, None, "", bucket_order)
        for _, row in rep.summary.iterrows():
            sweep_rows.append(
                {
                    "sessions": n,
                    "system": row["system"],
                    C.BUCKET: row[C.BUCKET],
                    metric: row[metric],
                }
            )
    sweep = pd.DataFrame(sweep_rows).pivot_table(
        index="system", columns=["sessions", C.BUCKET], values=metric
    )
    sweep = sweep.reindex([s for s in systems if s in sweep.index])

    ppi = _ppi(first, tables[first_key], systems, config)
    ppi_text = ppi_markdown(ppi, metric) if ppi is not None else None
    if ppi is not None:
        echo(f"prediction-powered {metric} (LLM labels on every query + expert grades on "
             f"{int(ppi['n_gold'].max())} gold queries) beside the gold-only estimate:\n{ppi_text}")  # fmt: skip
    sweep_tuning = None
    stacked = {s: t for (s, n), t in tables.items() if n == main_sessions and "gated_stacker" in t}
    if config.tuning_sweep and stacked:
        llm_model = info["runs"][f"seed{first_key[0]}_sessions{main_sessions}"]["llm_model"]
        gold_config, gold_seed = config.gold, config.stacker.seed

        def retrain_gold(t: pd.DataFrame, rows: np.ndarray) -> OOFScores | None:
            assert gold_config is not None
            return gold_scores(t, features, gold_config, rows=rows, seed=gold_seed)

        retrain = {GOLD: retrain_gold} if gold_config is not None else None
        sweep_tuning = tuning_sweep(stacked, config.tuning_sweep, config.stacker, llm_model,
                                    retrain=retrain)  # fmt: skip
        if sweep_tuning.empty:
            sweep_tuning = None  # no size fits the data (logged): no sweep report
        else:
            echo(tuning_sweep_markdown(sweep_tuning))
    gates = gate_table(tables, info, main_sessions, bucket_order)
    if not gates.empty:
        echo("tuned gates (click weight at each bucket's median frequency):\n"
             + gates.to_markdown(index=False, floatfmt=".3f"))  # fmt: skip
    info.update({"best_single": best_single, "seconds": round(time.perf_counter() - start, 1),
                 "tuning_queries": sorted(tuning), "features": features,
                 "dataset": str(first.path) if first.path else None})  # fmt: skip
    # The run directory is built beside its target and renamed into place: a crash
    # leaves the previous complete run (info.json, written last, marks a complete one).
    with staged_directory(out, markers=EXPERIMENT_MARKERS, require_all=True) as tmp:
        write_text(tmp / "config.yaml", yaml.safe_dump({"experiment": config.to_dict()}, sort_keys=False))
        report = tmp / "report"
        if ppi is not None and ppi_text is not None:
            write_text(report / "ppi.md", ppi_text + "\n")
            write_text(report / "ppi.csv", ppi.to_csv(index=False))
        main.write(report, stem="main")
        if crossfit is not None and crossfit_text is not None:
            write_text(report / "tuning_crossfit.md", crossfit_text + "\n")
            write_text(report / "tuning_crossfit.csv", crossfit[1].to_csv(index=False))
            plot_crossfit(crossfit[1], metric, report / "tuning_crossfit.png")
        for s, rep in per_seed.items():
            rep.write(report / f"seed{s}", stem="report")
        if not gates.empty:
            write_text(report / "gate.csv", gates.to_csv(index=False))
            write_text(report / "gate.md", gates.to_markdown(index=False, floatfmt=".3f") + "\n")
            _plot_gates(gates, tables, info, main_sessions, bucket_order, report / "gate_curve.png")
        heads = {
            s: run["click_tuning"]
            for (s, n) in tables
            if n == main_sessions
            and "click_tuning" in (run := info["runs"][f"seed{s}_sessions{n}"])
        }
        if heads:
            _write_click_tuning(heads, report)
        if sweep_tuning is not None:
            write_text(report / "tuning_sweep.csv", sweep_tuning.to_csv(index=False))
            write_text(report / "tuning_sweep.md", tuning_sweep_markdown(sweep_tuning) + "\n")
            plot_tuning_sweep(sweep_tuning, report / "tuning_sweep.png")
        write_text(report / "sessions_sweep.csv", sweep.to_csv())
        if not fixed:
            _plot_sweep(sweep, metric, report / "sessions_sweep.png")
        write_parquet(pd.concat(tables.values(), ignore_index=True), tmp / "scores.parquet")
        if budget is not None:
            write_text(report / "budget_curve.md", budget.markdown + "\n")
            write_text(report / "budget_curve.csv", budget.summary.to_csv(index=False))
            write_text(report / "budget_significance.csv", budget.significance.to_csv(index=False))
            write_parquet(budget.per_query, report / "budget_per_query.parquet")
            plot_budget_curve(budget.summary, metric, report / "budget_curve.png")
        write_text(tmp / "info.json", json.dumps(info, indent=2, default=str) + "\n")
    return ExperimentResult(
        main=main, per_seed=per_seed, sweep=sweep, best_single=best_single, info=info, path=out,
        budget=budget,
    )  # fmt: skip


@dataclass(frozen=True)
class BudgetCurve:
    """The budget curve of an experiment.

    Attributes:
        per_query: One row per (seed, strategy, budget, system, evaluated
            query): ``seed, strategy, budget, share, system, qid, bucket, value``.
        summary: Mean per (strategy, budget, system, bucket), seeds pooled.
        significance: Each strategy against ``random`` per budget and system.
        markdown: The report text.
        info: Shares, gates and timings per run.
    """

    per_query: pd.DataFrame
    summary: pd.DataFrame
    significance: pd.DataFrame
    markdown: str
    info: dict[str, Any]


def _budget_curve(
    prepared: Mapping[int, pd.DataFrame],
    full: Mapping[int, pd.DataFrame],
    config: ExperimentConfig,
    shared: _Shared,
    features: list[str],
    bucket_order: list[str],
    *,
    progress: bool,
    echo: Callable[[str], None],
) -> BudgetCurve:
    """Retrain the budget systems on each seed's table with the LLM labels of a budget only.

    The judge's answers for every pair are cached, so a budget is applied by
    removing them outside the chosen pairs: the same labels a run asking only
    those pairs would get (the calibration uses the tuning queries, kept at
    every budget).
    """
    metric = config.metrics[0]
    only = set(config.budget_systems)
    if "gated_stacker" in only:
        only |= {"click_gbdt", "llm_gbdt", *config.stacker.anchors}
    # The budget runs use LLM-GBDT as the stacker's LLM model (the neural model saw every
    # label) and the label-tuned gate, the fully labelled point too: with the transformer
    # or the held-out click tuning in the main run it is rerun without them, so every
    # point of the curve has the same stacker.
    budget_shared = replace(shared, neural=None)
    frames: list[pd.DataFrame] = []
    info: dict[str, Any] = {}
    all_labelled: dict[int, pd.DataFrame] = {}
    if config.budget_fill == "dense" and not all(DENSE in t.columns for t in prepared.values()):
        echo("budget_fill: dense needs the documents' texts for the MiniLM cosine; the dataset "
             "has none, so the judge's score stays missing outside the budget")  # fmt: skip
    for seed, table in prepared.items():
        if C.Y_LLM not in table.columns:
            echo("budget curve skipped: the dataset has no LLM labels")
            return _empty_curve()
        keep = table[TUNING].to_numpy(dtype=bool)
        labelled_all = table[C.Y_LLM].notna().to_numpy()
        for strategy in config.budget_strategies:
            for share in config.budgets:
                t0 = time.perf_counter()
                if share >= 1.0:
                    if (seed not in all_labelled and shared.neural is None
                            and config.click_tuning is None):  # fmt: skip
                        all_labelled[seed] = full[seed]
                    elif seed not in all_labelled:
                        all_labelled[seed], run_info = _run_systems(
                            table, config, budget_shared, features, progress=False, only=only
                        )
                        info[f"seed{seed}_all_labelled"] = {
                            "gate": run_info.get("gate"), "seconds": run_info["seconds"],
                            "llm_model": run_info["llm_model"],
                        }  # fmt: skip
                    scored, mask = all_labelled[seed], labelled_all
                else:
                    mask = budget_mask(table, share, strategy, keep=keep, seed=seed)
                    masked = mask_llm_labels(table, mask)
                    missing = int(masked[SEMANTIC].isna().sum()) if SEMANTIC in masked else 0
                    if config.budget_fill == "dense" and DENSE in table.columns:
                        masked = fill_judge_score(masked, table[DENSE].to_numpy())
                    filled = missing - (int(masked[SEMANTIC].isna().sum()) if missing else 0)
                    scored, run_info = _run_systems(
                        masked, config, budget_shared, features, progress=False, only=only
                    )
                    info[f"seed{seed}_{strategy}_{share}"] = {
                        "gate": run_info.get("gate"), "seconds": run_info["seconds"],
                        "llm_model": run_info["llm_model"], "judge_scores_filled": filled,
                    }  # fmt: skip
                actual = float((mask & labelled_all)[~keep].mean()) if (~keep).any() else 1.0
                systems = [s for s in config.budget_systems if s in scored.columns]
                keys = {"seed": seed, "strategy": strategy, "budget": share, "share": actual}
                frames.append(per_query_values(scored, systems, metric, keys))
                echo(f"budget {share:.0%} ({strategy}, seed {seed}): {actual:.1%} of the pairs "
                     f"labelled; {time.perf_counter() - t0:.0f}s")  # fmt: skip
    per_query = pd.concat(frames, ignore_index=True)
    summary = budget_curve_summary(per_query, bucket_order)
    significance = budget_significance(per_query)
    text = budget_curve_markdown(summary, significance, metric)
    echo(text)
    return BudgetCurve(per_query, summary, significance, text, info)


def _empty_curve() -> BudgetCurve:
    empty = pd.DataFrame()
    return BudgetCurve(empty, empty, empty, "budget curve: not run (no LLM labels)", {})


def _write_click_tuning(heads: Mapping[int, Mapping[str, Any]], report: Path) -> None:
    """``click_tuning.md`` (per seed: head queries, head weight, click metric),
    ``click_tuning.csv`` and ``click_tuning.png`` (the click metric against the head weight)."""
    text = (
        "Head queries' click weight, chosen on held-out sessions (position-debiased "
        "click metric, IPS-weighted DCG)\n\n"
        + summary_table(heads).to_markdown(index=False, floatfmt=".4f")
    )
    write_text(report / "click_tuning.md", text + "\n")
    write_text(report / "click_tuning.csv", curve_table(heads).to_csv(index=False))
    plot_click_tuning(heads, report / "click_tuning.png")


def _gate_columns(gate: Gate) -> dict[str, Any]:
    """A gate's parameters as flat report columns (a head gate: its base's, then the head weight)."""
    if isinstance(gate, HeadGate):
        return {"gate": f"head({gate.base.kind})", **gate.base.params(),
                "head min sessions": gate.min_frequency, "head weight": gate.weight}  # fmt: skip
    return {"gate": gate.kind, **gate.params()}


def _run_gate(info: Mapping[str, Any], seed: int, sessions: int) -> Gate | None:
    run = info["runs"].get(f"seed{seed}_sessions{sessions}", {})
    if "gate" not in run:
        return None
    return make_gate(run.get("gate_kind", "sigmoid"), run["gate"])


def gate_table(
    tables: Mapping[tuple[int, int], pd.DataFrame],
    info: Mapping[str, Any],
    sessions: int,
    bucket_order: list[str],
) -> pd.DataFrame:
    """The tuned gate per seed: its parameters, the click weight ``g(bucket)`` at each
    bucket's median query frequency (that seed's queries), and the rise from the lowest
    bucket to the highest; with the stacker's gate selection, the top trial's rise, the
    kept and the top trial's tuning NDCG and how many trials were within the standard
    errors (``stacker.selection``)."""
    rows = []
    for (seed, n), table in tables.items():
        gate = _run_gate(info, seed, n)
        if n != sessions or gate is None:
            continue
        per_query = table.drop_duplicates(C.QID)
        row: dict[str, Any] = {"seed": seed, **_gate_columns(gate)}
        medians = per_query.groupby(C.BUCKET, observed=True)[C.FREQ].median()
        present = [b for b in bucket_order if b in medians.index]
        for b in present:
            row[f"g({b})"] = float(gate(np.array([medians[b]]))[0])
        if len(present) >= 2:
            ends = np.array([medians[present[0]], medians[present[-1]]], dtype=np.float64)
            lo, hi = (float(v) for v in gate(ends))
            row[f"rise {present[0]}->{present[-1]}"] = hi - lo
            key = f"seed{seed}_sessions{n}"
            recorded = info["runs"].get(key, {}).get("gate_selection")
            if recorded is not None:  # runs before the selection have none
                choice = GateChoice.from_dict(recorded, source=f"runs.{key}.gate_selection")
                top = gate_from_dict(choice.best_gate)
                t_lo, t_hi = (float(v) for v in top(ends))
                row["top trial's rise"] = t_hi - t_lo
                row["tuning: kept"] = choice.value
                row["tuning: top"] = choice.best_value
                row["trials within SE"] = choice.within
        rows.append(row)
    return pd.DataFrame(rows)


def _plot_gates(
    gates: pd.DataFrame,
    tables: Mapping[tuple[int, int], pd.DataFrame],
    info: Mapping[str, Any],
    sessions: int,
    bucket_order: list[str],
    path: Path,
) -> None:
    """The click weight against query frequency, one curve per seed, bucket medians marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for seed in gates["seed"]:
        gate = _run_gate(info, int(seed), sessions)
        if gate is None:
            continue
        f, g = gate.curve()
        ax.plot(f + 1, g, label=f"seed {seed}")
    first = tables[(int(gates["seed"].iloc[0]), sessions)].drop_duplicates(C.QID)
    medians = first.groupby(C.BUCKET, observed=True)[C.FREQ].median()
    for b in bucket_order:
        if b in medians.index:
            ax.axvline(medians[b] + 1, color="grey", ls=":", lw=1)
            ax.text(medians[b] + 1, 1.02, b, ha="center", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("query frequency + 1 (sessions)")
    ax.set_ylabel("click weight g(freq)")
    ax.set_ylim(-0.02, 1.08)
    ax.set_title("tuned gate per seed (dotted: bucket medians)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)


def _plot_sweep(sweep: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = [
        b for b in ("low", "mid", "high", "all") if b in set(sweep.columns.get_level_values(1))
    ]
    fig, axes = plt.subplots(1, len(buckets), figsize=(4 * len(buckets), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, bucket in zip(axes, buckets, strict=True):
        for system in sweep.index:
            series = sweep.loc[system].xs(bucket, level=1)
            ax.plot(series.index.astype(int), series.to_numpy(), marker="o", label=system)
        ax.set_xscale("log")
        counts = sorted({int(n) for n in sweep.columns.get_level_values(0)})
        ax.set_xticks(counts, [f"{n:,}" for n in counts])
        ax.minorticks_off()
        ax.set_title(bucket)
        ax.set_xlabel("sessions in the log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncols=min(len(labels), 5))
    fig.suptitle(f"{metric} by session count: how the head/tail balance moves")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    save_figure(fig, path, dpi=110)
