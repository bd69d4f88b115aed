"""The workflows over a dataset: world build, annotate, train, experiment, study inputs.

Model packages (``gbdt``, ``neural``, ``ensemble``) know arrays and configs;
the pipelines read datasets, build the candidate table once
(:func:`build_table`), run the out-of-fold loops and write run directories
whole or not at all.
"""

from __future__ import annotations

from hybridrank.pipelines._annotate import (
    LLM_LABEL_COLUMNS,
    DatasetLabels,
    annotate_dataset,
    default_answer_cache,
)
from hybridrank.pipelines._click_eval import (
    ClickEvalConfig,
    ClickEvaluation,
    evaluate_on_clicks,
    split_log,
)
from hybridrank.pipelines._experiment import (
    SINGLE_SOURCE,
    SYSTEM_ORDER,
    ExperimentConfig,
    ExperimentResult,
    run_experiment,
    skipped_systems,
)
from hybridrank.pipelines._import import LOGGED_POSITION, PRODUCER, ImportConfig, import_dataset
from hybridrank.pipelines._ppi import ppi_markdown, ppi_report
from hybridrank.pipelines._study import run_study_on_data, study_features, study_inputs
from hybridrank.pipelines._tables import (
    CLICK_ESTIMATE,
    RAW_BASELINES,
    SEMANTIC,
    TableOptions,
    add_raw_baselines,
    attach_llm_labels,
    build_table,
    evaluation_rows,
)
from hybridrank.pipelines._train_gbdt import (
    FEATURE_GROUPS,
    LABELS,
    GBDTRun,
    GBDTTrainConfig,
    load_dataset,
    plot_training_curves,
    resolve_features,
    train_gbdt,
    training_table,
)
from hybridrank.pipelines._train_neural import (
    COSINE,
    SCORE_COLUMNS,
    NeuralRun,
    NeuralTrainConfig,
    attach_texts,
    cross_validated_scores,
    minilm_cosine,
    plot_loss_curves,
    train_neural,
)
from hybridrank.pipelines._world import (
    DataConfig,
    FoldConfig,
    WorldConfig,
    build_world,
    load_collection,
    make_splits,
    world_config_of,
    world_summary,
    write_world,
)

__all__ = [
    "CLICK_ESTIMATE",
    "COSINE",
    "FEATURE_GROUPS",
    "LABELS",
    "LLM_LABEL_COLUMNS",
    "LOGGED_POSITION",
    "PRODUCER",
    "RAW_BASELINES",
    "SCORE_COLUMNS",
    "SEMANTIC",
    "SINGLE_SOURCE",
    "SYSTEM_ORDER",
    "ClickEvalConfig",
    "ClickEvaluation",
    "DataConfig",
    "DatasetLabels",
    "ExperimentConfig",
    "ExperimentResult",
    "FoldConfig",
    "GBDTRun",
    "GBDTTrainConfig",
    "ImportConfig",
    "NeuralRun",
    "NeuralTrainConfig",
    "TableOptions",
    "WorldConfig",
    "add_raw_baselines",
    "annotate_dataset",
    "attach_llm_labels",
    "attach_texts",
    "build_table",
    "build_world",
    "cross_validated_scores",
    "default_answer_cache",
    "evaluate_on_clicks",
    "evaluation_rows",
    "import_dataset",
    "load_collection",
    "load_dataset",
    "make_splits",
    "minilm_cosine",
    "plot_loss_curves",
    "plot_training_curves",
    "ppi_markdown",
    "ppi_report",
    "resolve_features",
    "run_experiment",
    "run_study_on_data",
    "skipped_systems",
    "split_log",
    "study_features",
    "study_inputs",
    "train_gbdt",
    "train_neural",
    "training_table",
    "world_config_of",
    "world_summary",
    "write_world",
]
