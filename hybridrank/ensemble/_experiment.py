"""The clicks-vs-LLM-labels experiment: every system, several seeds, session counts, per bucket."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank._config import config_from_dict, read_yaml_mapping
from hybridrank.ensemble._famol import FAMOLConfig, FAMOLRanker
from hybridrank.ensemble._oof import OOFScores, out_of_fold
from hybridrank.ensemble._scheduling import DataSchedulingRanker, SchedulingConfig
from hybridrank.ensemble._stacker import FrequencyGatedStacker, StackerConfig, prepare
from hybridrank.errors import ConfigError
from hybridrank.evaluate import Report, evaluate_table
from hybridrank.features import ClickFeatureConfig, compute_click_features, join_click_features
from hybridrank.gbdt import FEATURE_GROUPS, LambdaMARTConfig, LambdaMARTRanker
from hybridrank.labels import ClickLabelConfig, click_labels
from hybridrank.labels.llm import (
    LLM_SCORE,
    AnnotateConfig,
    AnswerCache,
    annotate_candidates,
    make_annotator,
)
from hybridrank.world import ClickWorld, WorldConfig, build_world, load_collection

logger = logging.getLogger(__name__)

SINGLE_SOURCE = ("click_gbdt", "llm_gbdt", "llm_neural")
#: The semantic judge's raw similarity, usable as a text feature (group ``semantic``).
SEMANTIC = "semantic_similarity"
FEATURES = {**FEATURE_GROUPS, "semantic": (SEMANTIC,)}
TUNING = "tuning"


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
        cache: SQLite answer cache shared by every run.
        labels: Click labels.
        click_features: Click feature options.
        features: Feature groups of the GBDT systems.
        gbdt: LambdaMART for click-GBDT and LLM-GBDT.
        famol: FAMOL.
        scheduling: Data scheduling (both orders run).
        neural: LLM-neural model config (keys of NeuralConfig); None skips it
            and the stacker uses LLM-GBDT as its LLM model.
        stacker: The frequency-gated stacker.
        metrics: Report metrics (the first one decides "best").
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
    features: tuple[str, ...] = ("click", "text", "semantic")
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
    neural: Mapping[str, Any] | None = None
    stacker: StackerConfig = field(default_factory=StackerConfig)
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("experiment.seeds must name at least one seed")
        if self.tuning_queries < 10:
            raise ConfigError(
                "experiment.tuning_queries must be >= 10 (the stacker is tuned on them)"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ExperimentConfig:
        v = dict(values or {})
        sections: dict[str, Any] = {
            "world": WorldConfig.from_dict(v.pop("world", None)),
            "annotate": AnnotateConfig.from_dict(v.pop("annotate", None)),
            "labels": ClickLabelConfig.from_dict(v.pop("labels", None)),
            "click_features": ClickFeatureConfig.from_dict(v.pop("click_features", None)),
            "gbdt": LambdaMARTConfig.from_dict(v.pop("gbdt", None)) if "gbdt" in v else cls().gbdt,
            "famol": FAMOLConfig.from_dict(v.pop("famol", None)),
            "scheduling": SchedulingConfig.from_dict(v.pop("scheduling", None)),
            "stacker": StackerConfig.from_dict(v.pop("stacker", None)),
        }
        neural = v.pop("neural", None)
        base = config_from_dict(_Plain, v, "experiment")
        return cls(**sections, **base.__dict__, neural=neural)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        p = Path(path)
        raw = read_yaml_mapping(p, section="experiment")
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None

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
            "features": list(self.features),
            "gbdt": self.gbdt.to_dict(),
            "famol": self.famol.to_dict(),
            "scheduling": self.scheduling.to_dict(),
            "neural": None if self.neural is None else dict(self.neural),
            "stacker": self.stacker.to_dict(),
            "metrics": list(self.metrics),
        }  # fmt: skip


@dataclass(frozen=True)
class _Plain:
    seeds: tuple[int, ...] = (0, 1, 2)
    sessions: tuple[int, ...] = (2000, 5000, 20000)
    main_sessions: int | None = None
    tuning_queries: int = 60
    cache: str | None = None
    features: tuple[str, ...] = ("click", "text", "semantic")
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")


def choose_tuning_queries(queries: pd.DataFrame, n: int, seed: int) -> set[str]:
    """``n`` queries with a relevant candidate, stratified by bucket (at least 4 per bucket where possible).

    Never more than a fifth of those queries: the rest must stay for evaluation.
    """
    pool = queries[queries["has_relevant"]]
    n = min(n, max(len(pool) // 5, 1))
    rng = np.random.default_rng(seed)
    sizes = pool[C.BUCKET].value_counts()
    share = sizes / sizes.sum()
    want = np.maximum(np.round(share * n).astype(int), np.minimum(4, sizes)).astype(int)
    chosen: set[str] = set()
    for bucket, k in want.items():
        members = pool.loc[pool[C.BUCKET] == bucket, C.QID].to_numpy()
        chosen.update(
            str(q) for q in rng.choice(members, size=min(int(k), members.size), replace=False)
        )
    return chosen


@dataclass
class _Shared:
    """State computed once and reused by every run: folds, tuning set, LLM labels, neural scores."""

    folds: pd.Series
    tuning: set[str]
    y_llm: pd.DataFrame
    texts: pd.DataFrame
    neural: OOFScores | None = None


def _gbdt_fit_predict(
    config: LambdaMARTConfig, features: list[str], label: str
) -> Callable[..., np.ndarray]:
    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        ranker = LambdaMARTRanker(config).fit(
            train[features], train[label], qid=train[C.QID].to_numpy()
        )
        return ranker.predict(test[features])

    return fit_predict


def _hybrid_fit_predict(
    make: Callable[[], DataSchedulingRanker | FAMOLRanker], features: list[str]
) -> Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]:
    """Fit a two-label hybrid (click and LLM labels, query frequency) and score the test rows."""

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        model = make().fit(
            train[features],
            train[C.Y_CLICK],
            train[C.Y_LLM],
            qid=train[C.QID].to_numpy(),
            freq=train[C.FREQ],
        )
        return model.predict(test[features])

    return fit_predict


def _run_systems(
    table: pd.DataFrame, config: ExperimentConfig, shared: _Shared, *, progress: bool
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Out-of-fold scores of every system on one world, plus the stacker's tuned gate."""
    features = [f for g in config.features for f in FEATURES.get(g, (g,))]
    has_click = ~table[C.Y_CLICK].isna().to_numpy()
    has_llm = ~table[C.Y_LLM].isna().to_numpy()
    oof: dict[str, OOFScores] = {}
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], OOFScores]) -> None:
        start = time.perf_counter()
        oof[name] = fn()
        timings[name] = round(time.perf_counter() - start, 1)

    timed(
        "click_gbdt",
        lambda: out_of_fold(
            table,
            "click_gbdt",
            _gbdt_fit_predict(config.gbdt, features, C.Y_CLICK),
            train_mask=has_click,
            progress=progress,
        ),
    )
    timed(
        "llm_gbdt",
        lambda: out_of_fold(
            table,
            "llm_gbdt",
            _gbdt_fit_predict(config.gbdt, features, C.Y_LLM),
            train_mask=has_llm,
            progress=progress,
        ),
    )
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
        timed(
            name,
            partial(
                out_of_fold, table, name, _hybrid_fit_predict(make, features), progress=progress
            ),
        )
    if shared.neural is not None:
        oof["llm_neural"] = shared.neural
    llm_model = "llm_neural" if shared.neural is not None else "llm_gbdt"

    # The stacker: tuned on the tuning queries' out-of-fold scores only.
    tuning_rows = table[TUNING].to_numpy()
    stacker = FrequencyGatedStacker(config.stacker).fit(
        oof["click_gbdt"],
        oof[llm_model],
        freq=table[C.FREQ],
        labels=table[C.Y_EXPERT],
        rows=tuning_rows,
    )
    out = table.copy()
    for name, scores in oof.items():
        out[name] = scores.scores
    out["gated_stacker"] = stacker.predict(
        oof["click_gbdt"].scores,
        oof[llm_model].scores,
        qid=table[C.QID].to_numpy(),
        freq=table[C.FREQ],
    )
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
    info = {"gate": stacker.gate_.params(), "gate_kind": config.stacker.gate, "llm_model": llm_model,
            "tuning_ndcg": stacker.best_value_, "seconds": timings}  # fmt: skip
    return out, info


SYSTEM_ORDER = (
    C.BM25, "click_gbdt", "llm_gbdt", "llm_neural", "ds_llm_then_click", "ds_click_then_llm",
    "famol", "famol_label_mixing", "gated_stacker", "meta_ranker",
)  # fmt: skip


@dataclass(frozen=True)
class ExperimentResult:
    """Reports of the experiment.

    Attributes:
        main: Report pooled over the seeds at the main session count.
        per_seed: One report per seed.
        sweep: NDCG (first metric) per system, bucket and session count.
        best_single: The best single-source system (the significance baseline).
        info: Tuned gates, timings and counts per run.
        path: Output directory.
    """

    main: Report
    per_seed: dict[int, Report]
    sweep: pd.DataFrame
    best_single: str
    info: dict[str, Any]
    path: Path


def _prepare_table(world: ClickWorld, config: ExperimentConfig, shared: _Shared) -> pd.DataFrame:
    table = join_click_features(
        world.candidates.drop(columns=[C.FOLD]),
        compute_click_features(world.log, config.click_features),
    )
    table[C.Y_CLICK] = click_labels(table, world.log, config.labels).grade
    table[C.FOLD] = shared.folds.reindex(table[C.QID]).to_numpy()
    keyed = shared.y_llm.set_index([C.QID, C.DOCID])[C.Y_LLM]
    index = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])
    table[C.Y_LLM] = keyed.reindex(index).to_numpy()
    table[SEMANTIC] = shared.y_llm.set_index([C.QID, C.DOCID])[SEMANTIC].reindex(index).to_numpy()
    table[TUNING] = table[C.QID].isin(shared.tuning).to_numpy()
    return table


def _evaluate(
    tables: list[pd.DataFrame],
    systems: list[str],
    config: ExperimentConfig,
    baseline: str | None,
    title: str,
) -> Report:
    pooled = pd.concat(tables, ignore_index=True)
    pooled = pooled.loc[~pooled[TUNING].to_numpy()]
    return evaluate_table(pooled, systems, metrics=config.metrics, bucket_order=["low", "mid", "high"],
                          baseline=baseline, title=title)  # fmt: skip


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    data: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = logger.info,
) -> ExperimentResult:
    """Run every system on every (seed, session count) world and write the reports."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(
        yaml.safe_dump({"experiment": config.to_dict()}, sort_keys=False)
    )
    main_sessions = config.main_sessions or config.world.simulation.n_sessions

    def world_for(seed: int, sessions: int) -> ClickWorld:
        sim = replace(config.world.simulation, seed=seed, n_sessions=sessions)
        return build_world(config.world.replace(simulation=sim), data=data)

    first = world_for(config.seeds[0], main_sessions)
    collection, _ = load_collection(first.config.data, data)
    tuning = choose_tuning_queries(
        first.queries, config.tuning_queries, seed=config.world.folds.seed
    )
    folds = first.queries.set_index(C.QID)[C.FOLD]
    echo(f"world: {len(first.queries)} queries, {len(first.candidates)} candidates; "
         f"{len(tuning)} tuning queries (left out of evaluation)")  # fmt: skip

    # LLM labels: the judge calibrated on the tuning queries' expert grades.
    annotator = make_annotator(config.annotate.backend, **dict(config.annotate.params))
    cache_path = config.cache or str(out / "annotations.sqlite")
    calib_cands = first.candidates.copy()
    with annotator, AnswerCache(cache_path) as cache:
        # The tuning set is the calibration set: mark it so the grader calibrates on it.
        annotated = annotate_candidates(
            calib_cands, collection.queries, collection.docs, annotator, cache,
            replace(config.annotate, seed_queries=0), progress=progress,
        )  # fmt: skip
        if not annotator.is_llm and annotated.grader is not None:
            scored = annotated.candidates.assign(score=annotated.candidates["llm_score"])
            rows = scored[C.QID].isin(tuning).to_numpy()
            annotated.grader.fit(scored.loc[rows], scored.loc[rows, C.Y_EXPERT].to_numpy())
            annotated.candidates[C.Y_LLM] = annotated.grader.transform(scored)
    echo(f"LLM labels ({config.annotate.backend}): {annotated.stats.summary()}")
    # The judge's raw similarity is a text-only signal (no expert label behind
    # it): the GBDTs may use it as the "semantic" feature group.
    y_llm = annotated.candidates[[C.QID, C.DOCID, C.Y_LLM]].assign(
        **{SEMANTIC: annotated.candidates[LLM_SCORE].to_numpy()}
    )
    shared = _Shared(folds=folds, tuning=tuning, y_llm=y_llm, texts=collection.docs)

    if config.neural is not None:
        from hybridrank.neural import NeuralConfig, attach_texts, make_ranker

        ncfg = NeuralConfig.from_dict(config.neural)
        base = _prepare_table(first, config, shared)
        texts = attach_texts(base, collection.queries, collection.docs)

        def neural(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
            ranker = make_ranker(ncfg).fit(
                train[["query", "document"]], train[C.Y_LLM].to_numpy(), qid=train[C.QID].to_numpy()
            )
            return ranker.predict(test[["query", "document"]])

        t0 = time.perf_counter()
        shared.neural = out_of_fold(
            texts,
            "llm_neural",
            neural,
            train_mask=~texts[C.Y_LLM].isna().to_numpy(),
            progress=progress,
        )
        echo(
            f"LLM-neural ({ncfg.architecture}) out-of-fold scores in {time.perf_counter() - t0:.0f}s"
        )

    info: dict[str, Any] = {"runs": {}}
    tables: dict[tuple[int, int], pd.DataFrame] = {}
    runs = [(s, main_sessions) for s in config.seeds] + [
        (config.seeds[0], n) for n in config.sessions if n != main_sessions
    ]
    for seed, sessions in runs:
        t0 = time.perf_counter()
        world = (
            first
            if (seed, sessions) == (config.seeds[0], main_sessions)
            else world_for(seed, sessions)
        )
        table = _prepare_table(world, config, shared)
        scored, run_info = _run_systems(table, config, shared, progress=progress)
        scored["seed"] = seed
        scored["sessions"] = sessions
        tables[(seed, sessions)] = scored
        run_info["seconds_total"] = round(time.perf_counter() - t0, 1)
        info["runs"][f"seed{seed}_sessions{sessions}"] = run_info
        echo(
            f"seed {seed}, {sessions} sessions: done in {run_info['seconds_total']:.0f}s; gate {run_info['gate']}"
        )

    systems = [s for s in SYSTEM_ORDER if s in next(iter(tables.values())).columns]
    metric = config.metrics[0]
    main_tables = [
        t.assign(**{C.QID: t["seed"].astype(str) + ":" + t[C.QID].astype(str)})
        for (s, n), t in tables.items()
        if n == main_sessions
    ]
    probe = _evaluate(main_tables, systems, config, None, "")
    overall = probe.summary[probe.summary[C.BUCKET] == "all"].set_index("system")[metric]
    best_single = str(overall.reindex([s for s in SINGLE_SOURCE if s in systems]).idxmax())
    main = _evaluate(main_tables, systems, config, best_single,
                     f"{metric} per bucket, {len(config.seeds)} seeds x {main_sessions} sessions, "
                     f"5 query folds; * p < 0.05 against the best single-source model ({best_single})")  # fmt: skip
    per_seed = {
        s: _evaluate(
            [tables[(s, main_sessions)]],
            systems,
            config,
            best_single,
            f"seed {s}, {main_sessions} sessions",
        )
        for s in config.seeds
    }
    sweep_rows = []
    for n in sorted({n for _, n in tables}):
        rep = _evaluate([tables[(config.seeds[0], n)]], systems, config, None, "")
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

    main.write(out / "report", stem="main")
    for s, rep in per_seed.items():
        rep.write(out / "report" / f"seed{s}", stem="report")
    sweep.to_csv(out / "report" / "sessions_sweep.csv")
    _plot_sweep(sweep, metric, out / "report" / "sessions_sweep.png")
    pd.concat(tables.values(), ignore_index=True).to_parquet(out / "scores.parquet", index=False)
    info.update({"best_single": best_single, "seconds": round(time.perf_counter() - start, 1),
                 "tuning_queries": sorted(tuning)})  # fmt: skip
    (out / "info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return ExperimentResult(
        main=main, per_seed=per_seed, sweep=sweep, best_single=best_single, info=info, path=out
    )


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
    fig.savefig(path, dpi=110)
    plt.close(fig)
