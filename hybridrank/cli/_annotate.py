"""``hybridrank annotate``: label a dataset's pairs with an LLM or the embedded judge; ``annotate report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank import columns as C
from hybridrank.cli._common import add_dataset_option, positive_int, print_paths
from hybridrank.errors import MissingInputError


def _backend_params(args: argparse.Namespace) -> dict[str, object]:
    """Backend keyword arguments from the flags the user set (unset flags keep defaults)."""
    flags = {
        "base_url": args.base_url,
        "model": args.model,
        "api_key_env": args.api_key_env,
        "concurrency": args.concurrency,
        "requests_per_minute": args.rpm,
        "timeout_s": args.timeout,
        "model_path": args.model_path,
        "device": args.device,
        "price_in_per_1k": args.price_in,
        "price_out_per_1k": args.price_out,
        "max_tokens": args.max_tokens,
        "logprobs": True if args.logprobs else None,
    }
    params: dict[str, object] = {k: v for k, v in flags.items() if v is not None}
    if args.head_tokens is not None:
        params["head_tokens"] = args.head_tokens or None  # 0: the body view alone
    return params


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.action == "report":
        return _annotate_report(args)
    from hybridrank.data import Dataset, read_table
    from hybridrank.labels.llm import AnnotateConfig, AnswerCache, make_annotator
    from hybridrank.pipelines import annotate_dataset, default_answer_cache

    if args.dataset is None:
        raise MissingInputError(
            "annotate needs --dataset DIR (from `hybridrank dataset import` or `world build`)"
        )
    dataset = Dataset.read(args.dataset)
    if args.strategy is not None or (args.budget is not None and args.candidates is None):
        return _annotate_budgeted(args, dataset)
    if args.budget is not None and not str(args.budget).isdigit():
        raise MissingInputError("with --candidates, --budget is a whole number of new pairs")
    candidates = None
    if args.candidates is not None:
        candidates = read_table(args.candidates, required=(C.QID, C.DOCID))
    config = AnnotateConfig(
        backend=args.backend,
        budget=int(args.budget) if args.budget is not None else None,
        batch_size=args.batch_size,
        retry_failed=args.retry_failed,
    )
    cache_path: Path = args.cache or default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = make_annotator(args.backend, **_backend_params(args))
    kind = "LLM" if annotator.is_llm else "semantic judge (not an LLM)"
    n_pairs = len(candidates) if candidates is not None else len(dataset.candidates)
    print(
        f"annotating {n_pairs} pairs with {args.backend} [{kind}] model {annotator.model}, "
        f"prompt {annotator.prompt_version}; calibration: the dataset's "
        f"{len(dataset.tuning_qids)} tuning queries; cache {cache_path}",
        flush=True,
    )
    with annotator, AnswerCache(cache_path) as cache:
        result = annotate_dataset(dataset, annotator, cache, config, candidates=candidates)
    labels = result.llm_labels
    if candidates is not None and dataset.llm_labels is not None:
        # A subset extends the labels the dataset holds; its pairs replace theirs.
        keep = ~pd.MultiIndex.from_frame(dataset.llm_labels[[C.QID, C.DOCID]]).isin(
            pd.MultiIndex.from_frame(labels[[C.QID, C.DOCID]])
        )
        labels = pd.concat([dataset.llm_labels.loc[keep], labels], ignore_index=True)
    dataset.update(llm_labels=labels)
    print(result.stats.summary())
    if result.grader is not None:
        print(f"grades: {result.grader.describe()}")
    print(
        f"labels: {args.dataset}/llm_labels.parquet (column y_llm; failed or unannotated pairs "
        f"are NaN); next: hybridrank annotate report --dataset {args.dataset}"
    )
    return 0


def _annotate_budgeted(args: argparse.Namespace, dataset: Any) -> int:
    """``annotate --budget N|SHARE --strategy S``: label the pairs the strategy chooses."""
    from hybridrank.labels.llm import AnnotateConfig, AnswerCache, make_annotator
    from hybridrank.pipelines import Budget, annotate_with_budget, default_answer_cache

    if args.budget is None:
        raise MissingInputError(
            "--strategy needs --budget: a number of new pairs (5000) or a share labelled in "
            "total (0.3 or 30%)"
        )
    if args.candidates is not None:
        raise MissingInputError("--candidates and --strategy exclude each other: the strategy chooses")
    budget = Budget.parse(args.budget)
    strategy = args.strategy or "tail-first"
    config = AnnotateConfig(
        backend=args.backend, batch_size=args.batch_size, retry_failed=args.retry_failed
    )
    cache_path: Path = args.cache or default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = make_annotator(args.backend, **_backend_params(args))
    kind = "LLM" if annotator.is_llm else "semantic judge (not an LLM)"
    print(
        f"budgeted annotation with {args.backend} [{kind}] model {annotator.model}: budget "
        f"{args.budget}, strategy {strategy}; cache {cache_path}",
        flush=True,
    )
    with annotator, AnswerCache(cache_path) as cache:
        result = annotate_with_budget(
            dataset, annotator, cache, budget, strategy, config, seed=args.seed
        )
    if result.stats is not None:
        dataset.update(llm_labels=result.llm_labels)
        print(result.stats.summary())
    print(
        f"round {result.round}: {len(result.new)} new pairs chosen ({strategy}); "
        f"{result.n_selected} of {result.n_selectable} pairs labelled ({result.share:.1%})"
        + ("" if annotator.is_llm else "; the tuning queries' pairs are judged too, outside "
           "the budget: their grades calibrate the judge")
    )  # fmt: skip
    print(
        f"labels: {args.dataset}/llm_labels.parquet (selected_by, selection_round record the "
        "choice; a rerun with a larger budget extends it and never asks a pair twice)"
    )
    return 0


def _annotate_report(args: argparse.Namespace) -> int:
    from hybridrank.data import Dataset
    from hybridrank.labels.llm import LLM_SCORE, agreement_report
    from hybridrank.pipelines import attach_llm_labels, evaluation_rows

    if args.dataset is None:
        raise MissingInputError("annotate report needs --dataset DIR")
    dataset = Dataset.read(args.dataset)
    if dataset.llm_labels is None:
        raise MissingInputError(
            f"{args.dataset}: the dataset holds no LLM labels; run `hybridrank annotate "
            f"--dataset {args.dataset}` first"
        )
    table = dataset.table()
    if C.Y_EXPERT not in table.columns and dataset.qrels is not None:
        grades = dataset.qrels.set_index([C.QID, C.DOCID])[C.GRADE]
        table[C.Y_EXPERT] = (
            grades.reindex(pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])).fillna(0).to_numpy()
        )
    if C.Y_EXPERT not in table.columns:
        raise MissingInputError(f"{args.dataset}: no expert grades (qrels) to compare with")
    table = attach_llm_labels(table, dataset.llm_labels)
    n_tuning = len(dataset.tuning_qids)
    table = table.loc[evaluation_rows(table)]
    report = agreement_report(
        table,
        score="semantic_similarity" if LLM_SCORE in dataset.llm_labels.columns else None,
        bucket_order=tuple(dataset.bucket_names),
        title=f"Annotator agreement with expert grades ({args.dataset}); "
        f"{n_tuning} tuning/calibration queries left out, as in every evaluation",
    )
    print(report.to_text())
    print_paths(report.write(args.out or Path(args.dataset) / "agreement"), width=9)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from hybridrank.labels.llm import ANNOTATORS

    an = sub.add_parser(
        "annotate",
        help="label a dataset's candidate pairs with an LLM or the embedded semantic judge; "
        "`annotate report` compares them with expert grades",
    )
    an.add_argument("action", nargs="?", choices=["run", "report"], default="run")
    add_dataset_option(an)
    an.add_argument(
        "--candidates", type=Path, help="label only these (qid, docid) pairs of the dataset"
    )
    an.add_argument(
        "--backend", default="embedding", choices=sorted(ANNOTATORS),
        help="embedding (default, the embedded semantic judge) | openai | transformers",
    )  # fmt: skip
    an.add_argument(
        "--budget",
        help="pairs to label: N new pairs this run, or a share labelled in total (0.3 or 30%%); "
        "chosen by --strategy (default tail-first); with --candidates: at most N new pairs",
    )
    an.add_argument(
        "--strategy", choices=["tail-first", "uncertainty", "random"],
        help="which pairs a budget labels: tail-first (fewest sessions first, then weakest click "
        "evidence), uncertainty (weak click evidence or click/text disagreement), random",
    )  # fmt: skip
    an.add_argument("--seed", type=int, default=0, help="seed of the strategy's tie-breaks")
    an.add_argument("--batch-size", type=int, default=256)
    an.add_argument(
        "--retry-failed", action="store_true", help="ask again where the stored answer failed"
    )
    an.add_argument(
        "--cache",
        type=Path,
        help="SQLite answer cache (default: the one shared cache, $HYBRIDRANK_CACHE/annotations.sqlite)",
    )
    an.add_argument("--out", type=Path, help="report: output directory (default DATASET/agreement)")
    an.add_argument("--base-url", help="openai: e.g. http://127.0.0.1:8000/v1")
    an.add_argument("--model", help="openai: model name")
    an.add_argument("--api-key-env", help="openai: environment variable holding the API key")
    an.add_argument("--concurrency", type=int, help="openai: requests in flight")
    an.add_argument("--rpm", type=int, help="openai: requests per minute at most")
    an.add_argument("--timeout", type=float, help="openai: seconds per request")
    an.add_argument(
        "--price-in", type=float, help="openai: price per 1k prompt tokens, for the cost estimate"
    )
    an.add_argument("--price-out", type=float, help="openai: price per 1k completion tokens")
    an.add_argument(
        "--max-tokens",
        type=int,
        help="openai: completion token limit (default 8; raise it for models that reason "
        "before their final 'Grade: N' line)",
    )
    an.add_argument(
        "--logprobs",
        action="store_true",
        help="openai: ask for token log-probabilities and record the expected grade",
    )
    an.add_argument("--model-path", type=Path, help="transformers / embedding: local model path")
    an.add_argument("--device", choices=["cpu", "cuda", "auto"])
    an.add_argument(
        "--head-tokens",
        type=positive_int,
        help="embedding: tokens of the document-head view; the score is the larger of the head's "
        "and the 256-token cosine (default 64; 0: the 256-token view alone)",
    )
    an.set_defaults(func=cmd_annotate)
