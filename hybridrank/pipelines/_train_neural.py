"""Training the neural ranker on the click world's LLM labels: cross-validation, baselines, run directory."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from hybridrank import columns as C
from hybridrank._atomic import check_output_dir, save_figure, staged_directory, write_text
from hybridrank._config import (
    as_mapping,
    config_from_dict,
    in_file,
    read_yaml_mapping,
    unknown_keys_error,
)
from hybridrank.data import Dataset
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import Report, check_metrics, evaluate_table
from hybridrank.neural import (
    ARCHITECTURES,
    DOCUMENT,
    QUERY,
    BiEncoderRanker,
    NeuralConfig,
    NeuralRanker,
    make_ranker,
    resolve_torch_device,
)
from hybridrank.pipelines._annotate import annotate_dataset, default_answer_cache
from hybridrank.pipelines._neural_cache import NEURAL_CACHE_DIR, FoldCheckpoints, NeuralScoreCache
from hybridrank.pipelines._tables import attach_llm_labels, evaluation_rows
from hybridrank.pipelines._world import WorldConfig, build_world

logger = logging.getLogger(__name__)

#: Files that mark a `train neural` run directory (the first is written last).
RUN_MARKERS = ("folds.json", "config.yaml")

#: Score column of each architecture's out-of-fold predictions.
SCORE_COLUMNS = {"cross-encoder": "neural_ce", "bi-encoder": "neural_bi", "query-tower": "neural_qt"}
#: Score column of the untrained MiniLM cosine baseline.
COSINE = "minilm_cosine"
#: Tokens per text of the untrained cosine baseline (MiniLM's own limit).
BASELINE_MAX_SEQ_LENGTH = 256


@dataclass(frozen=True)
class NeuralTrainConfig:
    """A ``hybridrank train neural`` run (the YAML form: ``studies/neural.yaml``).

    Attributes:
        world: The click world to build (when no ``dataset`` is given).
        dataset: A dataset directory (``dataset import`` or ``world build``).
        label: The label column to train on (``y_llm``). When the dataset
            holds no LLM labels, the embedded semantic judge annotates it
            first, through the answer cache ``cache``.
        cache: The SQLite answer cache of the annotation and of the cosine
            baseline; None is the one default cache every command shares.
        neural: The model, its loss and training schedule.
        baseline: Also report the untrained MiniLM cosine at MiniLM's own 256
            tokens (column ``minilm_cosine``; the embedded judge's score, read
            from the answer cache where it is there; kept if the candidates hold it).
        baseline_at_model_length: Also report the untrained MiniLM cosine at
            ``neural.max_seq_length`` tokens (column ``minilm_cosine_len<N>``;
            only when that differs from 256), so the report separates what
            training adds from what the shorter input does.
        final_model: Train the production model on every labelled row and save it.
        metrics: Metrics of the report.
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    dataset: str | None = None
    label: str = C.Y_LLM
    cache: str | None = None
    neural: NeuralConfig = field(default_factory=NeuralConfig)
    baseline: bool = True
    baseline_at_model_length: bool = True
    final_model: bool = True
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")

    def __post_init__(self) -> None:
        check_metrics(self.metrics, key="metrics")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> NeuralTrainConfig:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise unknown_keys_error(
                "train config", unknown, [f.name for f in fields(cls)], noun="sections"
            )
        simple: dict[str, Any] = {
            k: values[k]
            for k in (
                "dataset",
                "label",
                "cache",
                "baseline",
                "baseline_at_model_length",
                "final_model",
                "metrics",
            )
            if k in values
        }
        base = config_from_dict(_Simple, simple, "train")
        return cls(
            world=WorldConfig.from_dict(values.get("world")),
            neural=NeuralConfig.from_dict(values.get("neural")),
            **base.__dict__,
        )

    @classmethod
    def from_yaml(
        cls, path: str | Path, profile: str | None = None, *, architecture: str | None = None
    ) -> NeuralTrainConfig:
        """Read a config; a file with a ``profiles:`` mapping needs ``profile`` (default ``quick``).

        A profile's ``neural:`` keys merge into ``neural:``; its other keys
        replace top-level keys, except ``cross-encoder:`` and ``bi-encoder:``,
        which merge into ``neural:`` only when that is the architecture
        (``architecture`` overrides ``neural.architecture``), so one profile
        can tune each architecture apart.
        """
        p = Path(path)
        raw = read_yaml_mapping(p)
        profiles = raw.pop("profiles", None)
        neural = in_file(p, lambda: as_mapping(raw.get("neural"), "neural"))
        per_architecture: dict[str, Any] = {}
        if profiles is not None:
            name = profile or "quick"
            if not isinstance(profiles, dict) or name not in profiles:
                known = sorted(profiles) if isinstance(profiles, dict) else []
                raise ConfigError(f"{p}: no profile {name!r}; profiles are {known}")

            def mapping(values: Any, key: str) -> dict[str, Any]:
                return in_file(p, lambda: as_mapping(values, f"profiles.{name}{key}"))

            overlay = mapping(profiles[name], "")
            per_architecture = {
                a: mapping(overlay.pop(a), f".{a}") for a in ARCHITECTURES if a in overlay
            }
            neural.update(mapping(overlay.pop("neural", None), ".neural"))
            raw.update(overlay)
        elif profile is not None:
            raise ConfigError(f"{p}: has no profiles; drop --profile {profile}")
        if architecture is not None:
            neural["architecture"] = architecture
        arch = neural.get("architecture", NeuralConfig.architecture)
        neural.update(per_architecture.get(arch, {}))
        raw["neural"] = neural
        return in_file(p, lambda: cls.from_dict(raw))

    def to_dict(self) -> dict[str, Any]:
        return {
            "world": self.world.to_dict(),
            "dataset": self.dataset,
            "label": self.label,
            "cache": self.cache,
            "neural": self.neural.to_dict(),
            "baseline": self.baseline,
            "baseline_at_model_length": self.baseline_at_model_length,
            "final_model": self.final_model,
            "metrics": list(self.metrics),
        }


@dataclass(frozen=True)
class _Simple:
    dataset: str | None = None
    label: str = C.Y_LLM
    cache: str | None = None
    baseline: bool = True
    baseline_at_model_length: bool = True
    final_model: bool = True
    metrics: tuple[str, ...] = ("ndcg@10", "mrr")


def attach_texts(
    candidates: pd.DataFrame, queries: pd.DataFrame, docs: pd.DataFrame
) -> pd.DataFrame:
    """The candidates with ``query`` and ``document`` text columns (rows and order unchanged).

    Raises:
        DataFormatError: A candidate's query or document has no text (naming the first).
    """
    qtext = queries.drop_duplicates(C.QID).set_index(C.QID)[C.TEXT]
    dtext = docs.drop_duplicates(C.DOCID).set_index(C.DOCID)[C.TEXT]
    out = candidates.copy()
    out[QUERY] = out[C.QID].map(qtext)
    out[DOCUMENT] = out[C.DOCID].map(dtext)
    for col, key in ((QUERY, C.QID), (DOCUMENT, C.DOCID)):
        missing = out[col].isna().to_numpy()
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise DataFormatError(
                f"{int(missing.sum())} candidates have no {col} text, first {key} "
                f"{out[key].iloc[i]!r}",
                row=i,
                column=key,
            )
    return out


#: What each fold's record in ``folds.json`` holds (a kept fold must hold them too).
FOLD_RECORD_KEYS = (
    "fold", "fit_s", "score_s", "train_pairs", "train_queries", "best_valid_ndcg",
    "loss_history", "valid_history",
)  # fmt: skip


def cross_validated_scores(
    table: pd.DataFrame,
    label: str,
    config: NeuralConfig,
    *,
    fold_column: str = C.FOLD,
    desc: str = "folds",
    checkpoints: FoldCheckpoints | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold scores: each fold scored by a model fine-tuned on the other folds' labelled rows.

    ``table`` needs ``query`` and ``document`` text columns. Returns the scores
    and one record per fold (seconds to train and to score, loss and validation
    curves). With ``checkpoints``, each finished fold is kept there and a fold
    kept by an earlier, stopped run is read back (its record says ``resumed``).
    """
    scores = np.full(len(table), np.nan)
    folds = table[fold_column].to_numpy()
    y = table[label].to_numpy(dtype=np.float64)
    qid = table[C.QID].to_numpy()
    pairs = table[[QUERY, DOCUMENT]]
    records = []
    for f in tqdm(np.unique(folds), desc=desc):
        train = (folds != f) & ~np.isnan(y)
        test = folds == f
        done = (
            None
            if checkpoints is None
            else checkpoints.load(f, int(test.sum()), needs=FOLD_RECORD_KEYS)
        )
        if checkpoints is not None and done is not None:
            scores[test] = done[0]
            records.append({**done[1], "resumed": True})
            logger.info("fold %s: read from %s (a stopped run's)", f, checkpoints.path(f))
            continue
        start = time.perf_counter()
        ranker = make_ranker(config).fit(pairs[train], y[train], qid=qid[train])
        fit_s = time.perf_counter() - start
        scores[test] = ranker.predict(pairs[test], show_progress_bar=True)
        records.append(
            {
                "fold": int(f) if np.issubdtype(type(f), np.integer) else str(f),
                "fit_s": round(fit_s, 1),
                "score_s": round(time.perf_counter() - start - fit_s, 1),
                "train_pairs": ranker.n_train_pairs_,
                "train_queries": ranker.n_train_queries_,
                "best_valid_ndcg": ranker.best_score_,
                "loss_history": ranker.loss_history_,
                "valid_history": ranker.valid_history_,
            }
        )
        if checkpoints is not None:
            checkpoints.save(f, scores[test], records[-1])
        logger.info("fold %s: fit %.0fs, scored %d pairs", f, fit_s, int(test.sum()))
    return scores, records


def minilm_cosine(
    table: pd.DataFrame,
    config: NeuralConfig,
    *,
    max_seq_length: int = BASELINE_MAX_SEQ_LENGTH,
    cache: str | Path | None = None,
) -> np.ndarray:
    """The untrained MiniLM cosine of each (query, document) row: the zero-shot baseline.

    This is the one-view embedded semantic judge at ``max_seq_length`` tokens
    (same packaged weights, same length, normalised embeddings), so with
    ``cache`` the scores already stored under that judge's prompt version are
    read back and only missing pairs are encoded (and stored).
    """
    pairs = table[[QUERY, DOCUMENT]]
    if cache is not None:
        from hybridrank.labels.llm import AnswerCache, EmbeddingJudge, Pair, annotate_pairs

        judge = EmbeddingJudge(
            device=resolve_torch_device(config.device),
            max_seq_length=max_seq_length,
            head_tokens=None,
        )
        texts = [
            Pair(str(q), str(d), qt, dt)
            for q, d, qt, dt in zip(
                table[C.QID], table[C.DOCID], pairs[QUERY], pairs[DOCUMENT], strict=True
            )
        ]
        with judge, AnswerCache(cache) as store:
            labels, stats = annotate_pairs(judge, texts, store, batch_size=256)
        logger.info("untrained MiniLM cosine via the judge's answer cache: %s", stats.summary())
        scores = labels["score"].to_numpy(dtype=np.float64)
        if not np.isnan(scores).any():
            return scores
        logger.warning("the answer cache left %d scores missing; encoding", np.isnan(scores).sum())
    base = replace(
        config,
        architecture="bi-encoder",
        backend="torch",
        max_seq_length=max_seq_length,
        model_path=None,
        clicks=False,
        listwise_loss="listnet",
    )
    return BiEncoderRanker.pretrained(base).predict(pairs, show_progress_bar=True)


def cosine_column(max_seq_length: int) -> str:
    """Score column of the untrained MiniLM cosine at ``max_seq_length`` tokens."""
    if max_seq_length == BASELINE_MAX_SEQ_LENGTH:
        return COSINE
    return f"{COSINE}_len{max_seq_length}"


@dataclass(frozen=True)
class NeuralRun:
    """The result of :func:`train_neural`.

    Attributes:
        ranker: The production model (trained on every labelled row), or None.
        report: Per-bucket metrics of the out-of-fold predictions.
        table: The candidate table with texts, labels and score columns.
        folds: Per-fold timings and curves.
        timings: Seconds per stage.
        path: The run directory.
    """

    ranker: NeuralRanker | None
    report: Report
    table: pd.DataFrame
    folds: list[dict[str, Any]]
    timings: dict[str, float]
    path: Path


def train_neural(
    config: NeuralTrainConfig,
    out_dir: str | Path,
    *,
    data: str | Path | None = None,
    candidates: pd.DataFrame | None = None,
    dataset: Dataset | None = None,
) -> NeuralRun:
    """Cross-validate, evaluate and save a neural ranker on a dataset (default the click world).

    Args:
        config: The run.
        out_dir: The run directory: ``model/`` (when ``final_model``),
            ``config.yaml``, ``report/``, ``metrics.json``, ``folds.json``,
            ``loss.png``, ``scores.parquet``.
        data: Collection directory for building the world.
        candidates: A candidate table of the dataset that already holds the
            label column (``y_llm``); default the dataset's candidates with
            its LLM labels, annotated by the embedded judge when it has none.
        dataset: The dataset (default: ``config.dataset``, else the world).
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    check_output_dir(out, markers=RUN_MARKERS, require_all=True)  # before the work, not after it
    if dataset is None:
        dataset = (
            Dataset.read(config.dataset) if config.dataset else build_world(config.world, data=data)
        )
    if dataset.queries is None or dataset.docs is None:
        raise DataFormatError(
            "the dataset holds no query and document texts: a neural model cannot read it",
            path=dataset.path,
        )
    cache_path = Path(config.cache) if config.cache else default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    table = dataset.table() if candidates is None else candidates
    if config.label not in table.columns:
        llm_labels = dataset.llm_labels
        if llm_labels is None:
            from hybridrank.labels.llm import AnswerCache, make_annotator

            logger.info("no LLM labels in the dataset: annotating with the embedded semantic judge")
            with AnswerCache(cache_path) as cache:
                llm_labels = annotate_dataset(dataset, make_annotator("embedding"), cache).llm_labels
        table = attach_llm_labels(table, llm_labels)
    table = attach_texts(table, dataset.queries, dataset.docs)
    timings["data_s"] = time.perf_counter() - start
    arch = config.neural.architecture
    name = SCORE_COLUMNS[arch]
    systems = [C.BM25]
    if config.baseline:
        t = time.perf_counter()
        if COSINE not in table.columns:
            table[COSINE] = minilm_cosine(table, config.neural, cache=cache_path)
        systems.append(COSINE)
        length = config.neural.max_seq_length
        if config.baseline_at_model_length and length != BASELINE_MAX_SEQ_LENGTH:
            column = cosine_column(length)
            if column not in table.columns:
                # Through the answer cache too (the one-view judge at that length), so a run
                # stopped and started again does not encode every pair a second time.
                table[column] = minilm_cosine(
                    table, config.neural, max_seq_length=length, cache=cache_path
                )
            systems.append(column)
        timings["baseline_s"] = time.perf_counter() - t
    t = time.perf_counter()
    # Finished folds are kept beside the answer cache until the run is saved: a run
    # stopped in fold 4 resumes there.
    inputs = table[[C.QID, QUERY, DOCUMENT, config.label, C.FOLD]]
    trainable = ~inputs[config.label].isna().to_numpy()
    fold_cache = NeuralScoreCache(cache_path.parent / NEURAL_CACHE_DIR)
    checkpoints = fold_cache.folds(fold_cache.key(inputs, config.neural, trainable), "train")
    table[name], folds = cross_validated_scores(
        table, config.label, config.neural, desc=f"{name} folds", checkpoints=checkpoints
    )
    timings["cross_validation_s"] = time.perf_counter() - t
    systems.append(name)

    evaluated = table.loc[evaluation_rows(table)]
    if len(evaluated) < len(table):
        logger.info("left %d tuning rows out of the evaluation", len(table) - len(evaluated))
    n_folds = table[C.FOLD].nunique()
    report = evaluate_table(
        evaluated,
        systems,
        metrics=config.metrics,
        bucket_order=dataset.bucket_names,
        baseline=C.BM25,
        title=f"{arch} ({config.neural.loss}, trained on {config.label}) vs BM25 and untrained "
        f"MiniLM cosine, {n_folds}-fold cross-validated by query; expert grades",
    )
    ranker: NeuralRanker | None = None
    if config.final_model:
        t = time.perf_counter()
        labelled = ~table[config.label].isna().to_numpy()
        ranker = make_ranker(config.neural).fit(
            table.loc[labelled, [QUERY, DOCUMENT]],
            table.loc[labelled, config.label].to_numpy(dtype=np.float64),
            qid=table.loc[labelled, C.QID].to_numpy(),
        )
        timings["final_model_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    timings = {k: round(v, 1) for k, v in timings.items()}

    keep = [C.QID, C.DOCID, C.BUCKET, C.FOLD, C.FREQ, C.BM25, C.Y_EXPERT, config.label, *systems[1:]]
    # Built beside its target and renamed into place; folds.json, written last, marks a
    # complete run. A crash leaves the previous run as it was.
    with staged_directory(out, markers=RUN_MARKERS, require_all=True) as tmp:
        if ranker is not None:
            ranker.save(tmp / "model")
        write_text(
            tmp / "config.yaml",
            "# The config this run used; `hybridrank train neural --config` reads it back.\n"
            + yaml.safe_dump(config.to_dict(), sort_keys=False),
        )
        report.write(tmp / "report")
        write_text(tmp / "metrics.json", report.summary.to_json(orient="records", indent=2) + "\n")
        plot_loss_curves(folds, ranker, tmp / "loss.png")
        table[[c for c in dict.fromkeys(keep) if c in table.columns]].to_parquet(
            tmp / "scores.parquet", index=False
        )
        write_text(
            tmp / "folds.json", json.dumps({"timings": timings, "folds": folds}, indent=2) + "\n"
        )
    checkpoints.clear()
    logger.info("trained %s in %.1fs", name, timings["total_s"])
    return NeuralRun(
        ranker=ranker, report=report, table=table, folds=folds, timings=timings, path=out
    )


def plot_loss_curves(folds: list[dict[str, Any]], ranker: NeuralRanker | None, path: Path) -> None:
    """Training loss by step (each fold, and the final model), validation NDCG on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax2 = ax.twinx()
    curves = [(f"fold {r['fold']}", r["loss_history"], r["valid_history"]) for r in folds]
    if ranker is not None:
        curves.append(("final", ranker.loss_history_, ranker.valid_history_))
    for i, (label, loss, valid) in enumerate(curves):
        color = f"C{i % 10}"
        if loss:
            steps, values = zip(*loss, strict=True)
            ax.plot(steps, values, color=color, alpha=0.8, label=f"{label} loss")
        if valid:
            steps, values = zip(*valid, strict=True)
            ax2.plot(
                steps, values, color=color, marker="o", linestyle="--", label=f"{label} valid NDCG"
            )
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss")
    ax2.set_ylabel("validation NDCG@k (labels)")
    ax.set_title("Neural ranker training curves")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
