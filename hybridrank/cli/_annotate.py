"""``hybridrank annotate``: label a dataset's pairs with an LLM or the embedded judge; ``annotate report``."""

from __future__ import annotations

import argparse
import inspect
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import yaml_load
from hybridrank.cli._common import (
    add_dataset_option,
    at_least_one,
    positive_int,
    print_paths,
    refuse_options,
    remember_defaults,
)
from hybridrank.errors import ConfigError, MissingInputError


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


#: Pairs per backend call when neither the flag nor the config sets it.
CLI_BATCH_SIZE = 256


def _parse_judge(spec: list[str]) -> dict[str, Any]:
    """One ``--judge BACKEND [KEY=VALUE ...]``: ``{"backend", "params"[, "name"]}``.

    Values are read as YAML scalars (``0.5``, ``true``, ``null``); anything
    else stays text. The key ``name`` names the judge.
    """
    import yaml

    backend, *pairs = spec
    params: dict[str, Any] = {}
    judge: dict[str, Any] = {"backend": backend, "params": params}
    for item in pairs:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"--judge {backend}: expected KEY=VALUE after the backend, got {item!r} "
                "(e.g. --judge openai model=qwen2.5-7b base_url=http://127.0.0.1:8000/v1)"
            )
        try:
            value = yaml_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, dict | list) or (value is None and text not in ("null", "~", "")):
            value = text
        if key == "name":
            judge["name"] = str(value)
        else:
            params[key] = value
    return judge


def _accepts(backend: str, key: str) -> bool:
    """Whether the backend's constructor takes keyword ``key``."""
    from hybridrank.labels.llm import ANNOTATORS

    cls = ANNOTATORS.get(backend)
    return cls is not None and key in inspect.signature(cls.__init__).parameters


def annotate_config(args: argparse.Namespace) -> Any:
    """The :class:`~hybridrank.labels.llm.AnnotateConfig` of ``--config`` with the flags over it.

    ``--judge`` (repeated) replaces the file's judges or backend; ``--backend``
    names one judge instead. The backend flags (``--base-url``, ``--max-tokens``,
    ...) set those parameters of the one judge, or of every judge whose
    backend takes them and that does not set them itself.
    """
    from hybridrank._config import read_yaml_mapping
    from hybridrank.labels.llm import PANEL, AnnotateConfig

    values: dict[str, Any] = (
        read_yaml_mapping(args.config, section="annotate") if args.config else {}
    )
    if values.get("backend") == PANEL and isinstance(values.get("params"), dict):
        # The written form of several judges (backend: panel) read as the judges it names.
        params = values.pop("params")
        values.pop("backend")
        values.update(judges=params.get("judges"), combine=params.get("combine", "mean"))
    shared = _backend_params(args)
    if args.judge:
        if args.backend is not None:
            raise ConfigError(
                "--backend names one judge and --judge several: give one of them "
                "(--judge BACKEND KEY=VALUE ... once per judge)"
            )
        for key in ("backend", "params", "judges"):
            values.pop(key, None)
        values["judges"] = [_parse_judge(spec) for spec in args.judge]
    elif args.backend is not None:
        if values.get("backend") != args.backend:
            values.pop("params", None)
        for key in ("judges", "combine"):
            values.pop(key, None)
        values["backend"] = args.backend
    if args.combine is not None:
        if "judges" not in values:
            raise ConfigError(
                "--combine combines several judges: name them with --judge (repeated) or under "
                "`annotate.judges` in --config"
            )
        values["combine"] = args.combine
    if "judges" in values and isinstance(values["judges"], list):
        values["judges"] = [
            {
                **judge,
                "params": {
                    **{
                        k: v
                        for k, v in shared.items()
                        if _accepts(str(judge.get("backend")), k)
                    },
                    **dict(judge.get("params") or {}),
                },
            }
            if isinstance(judge, dict)
            else judge
            for judge in values["judges"]
        ]
    elif shared:
        base = values.get("params") or {}
        values["params"] = {**(base if isinstance(base, dict) else {}), **shared}
    for key, value in (("prompt", args.prompt), ("batch_size", args.batch_size)):
        if value is not None:
            values[key] = value
    if args.retry_failed:
        values["retry_failed"] = True
    values.setdefault("batch_size", CLI_BATCH_SIZE)
    try:
        return AnnotateConfig.from_dict(values)
    except ConfigError as exc:
        if args.config:
            raise ConfigError(f"{args.config} (with the command-line flags): {exc}") from None
        raise


def _describe_judge(annotator: Any) -> str:
    """One line per judge: backend, kind, model, prompt version."""
    from hybridrank.labels.llm import JudgePanel

    if isinstance(annotator, JudgePanel):
        lines = [f"{len(annotator.judges)} LLM judges combined by {annotator.combine}:"]
        lines += [
            f"  judge {name}: {judge.backend} model {judge.model}, prompt {judge.prompt_version}"
            for name, judge in annotator.judges
        ]
        return "\n".join(lines)
    kind = (
        "LLM" if annotator.is_llm
        else "simulated judge: expert grade + noise, not an LLM" if annotator.backend == "simulated"
        else "semantic judge (not an LLM)"
    )  # fmt: skip
    return (
        f"{annotator.backend} [{kind}] model {annotator.model}, prompt {annotator.prompt_version}"
    )


def _print_judges(result: Any) -> None:
    """Each judge's counts and the judges' agreement (several judges)."""
    if result.judge_stats:
        for name, stats in result.judge_stats.items():
            print(f"judge {name}: {stats.summary()}")
    if result.judge_agreement is not None:
        print(result.judge_agreement.to_text())


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.action == "report":
        refuse_options(args, ("dataset", "out", "draws", "seed", "config"), "annotate report")
        return _annotate_report(args)
    refuse_options(args, [d for d in args._defaults if d not in ("out", "draws")], "annotate")
    from hybridrank.data import Dataset, file_lines, read_table
    from hybridrank.labels.llm import AnswerCache
    from hybridrank.pipelines import (
        annotate_chosen,
        annotate_dataset,
        default_answer_cache,
        require_texts,
    )

    if args.dataset is None:
        raise MissingInputError(
            "annotate needs --dataset DIR (from `hybridrank dataset import` or `world build`)"
        )
    dataset = Dataset.read(args.dataset)
    require_texts(dataset)  # before any line that says labelling starts
    config = annotate_config(args)
    if args.strategy is not None or (args.budget is not None and args.candidates is None):
        return _annotate_budgeted(args, dataset, config)
    if args.budget is not None and not str(args.budget).isdigit():
        raise MissingInputError("with --candidates, --budget is a whole number of new pairs")
    candidates = None
    if args.candidates is not None:
        candidates = read_table(args.candidates, required=(C.QID, C.DOCID))
    if args.budget is not None:
        config = replace(config, budget=int(args.budget))
    cache_path: Path = args.cache or default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = config.make_annotator()
    n_pairs = len(candidates) if candidates is not None else len(dataset.candidates)
    print(
        f"annotating {n_pairs} pairs with {_describe_judge(annotator)}\ncalibration: the "
        f"dataset's {len(dataset.tuning_qids)} tuning queries; cache {cache_path}",
        flush=True,
    )
    lines: AbstractContextManager[None] = (
        file_lines(args.candidates) if args.candidates is not None else nullcontext()
    )
    with annotator, AnswerCache(cache_path) as cache, lines:
        if candidates is None:
            result = annotate_dataset(dataset, annotator, cache, config)
        else:  # extends the labels the dataset holds, on one grade scale
            result = annotate_chosen(dataset, annotator, cache, candidates, config)
    labels = result.llm_labels
    dataset.update(llm_labels=labels)
    _print_judges(result)
    print(("all judges: " if result.judge_stats else "") + result.stats.summary())
    if result.grader is not None:
        print(f"grades: {result.grader.describe()}")
    per_judge = (
        "; each judge's own grade: y_llm@NAME, soft grade y_llm_soft@NAME, status llm_status@NAME"
        if result.judge_stats
        else ""
    )
    print(
        f"labels: {args.dataset}/llm_labels.parquet (column y_llm; failed or unannotated pairs "
        f"are NaN{per_judge}); next: hybridrank annotate report --dataset {args.dataset}"
    )
    return 0


def _annotate_budgeted(args: argparse.Namespace, dataset: Any, config: Any) -> int:
    """``annotate --budget N|SHARE --strategy S``: label the pairs the strategy chooses."""
    from hybridrank.labels.llm import AnswerCache
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
    cache_path: Path = args.cache or default_answer_cache()
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    annotator = config.make_annotator()
    print(
        f"budgeted annotation with {_describe_judge(annotator)}\nbudget {args.budget}, "
        f"strategy {strategy}; cache {cache_path}",
        flush=True,
    )
    with annotator, AnswerCache(cache_path) as cache:
        result = annotate_with_budget(
            dataset, annotator, cache, budget, strategy, config, seed=args.seed
        )
    if result.stats is not None:
        dataset.update(llm_labels=result.llm_labels)
        print(result.stats.summary())
    status = result.llm_labels.get("llm_status")
    failed = 0 if status is None else int((status.astype(str) == "failed").sum())
    if len(result.new) == 0 and result.n_selected >= result.n_selectable:
        print(f"every one of the {result.n_selectable} pairs the budget draws from is labelled "
              "already: no budget adds more")  # fmt: skip
    elif len(result.new) == 0 and result.n_selected:
        print(f"the budget {args.budget} is already met: {result.n_selected} pairs are labelled "
              "(earlier rounds, or a plain annotate); give a larger one to extend them")  # fmt: skip
    print(
        f"round {result.round}: {len(result.new)} new pairs chosen ({strategy}); "
        f"{result.n_selected} of {result.n_selectable} pairs chosen so far ({result.share:.1%})"
        + (f", {failed} of them without a label (failed; --retry-failed asks again)"
           if failed else "")
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
    from hybridrank.labels.llm import (
        LLM_SCORE,
        LLM_SOFT,
        agreement_report,
        expert_top,
        judge_agreement,
        judge_columns,
        judge_names,
    )
    from hybridrank.pipelines import attach_llm_labels, evaluation_rows, llm_label_hint

    if args.dataset is None:
        raise MissingInputError("annotate report needs --dataset DIR")
    dataset = Dataset.read(args.dataset)
    if dataset.llm_labels is None:
        raise MissingInputError(f"{args.dataset}: the dataset holds no LLM labels; "
                                + llm_label_hint(dataset))  # fmt: skip
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
    full = table
    table = table.loc[evaluation_rows(table)]
    # Grade ties are broken by the judge's continuous output: a score-only judge's score, an
    # LLM's soft grade (expected grade, or several judges' mean) where it is not the grade.
    score = None
    if LLM_SCORE in dataset.llm_labels.columns and dataset.llm_labels[LLM_SCORE].notna().any():
        score = "semantic_similarity"
    elif LLM_SOFT in table.columns:
        soft = table[LLM_SOFT].to_numpy(dtype="float64")
        grade = table[C.Y_LLM].to_numpy(dtype="float64")
        if (~np.isnan(soft) & ~np.isnan(grade) & (soft != grade)).any():
            score = LLM_SOFT
    report = agreement_report(
        table,
        top=expert_top(full[C.Y_EXPERT]),
        score=score,
        bucket_order=tuple(dataset.bucket_names),
        title=f"Annotator agreement with expert grades ({args.dataset}); "
        f"{n_tuning} tuning/calibration queries left out, as in every evaluation",
    )
    print(report.to_text())
    out = args.out or Path(args.dataset) / "agreement"
    paths = report.write(out)
    if score == "semantic_similarity" and args.draws > 0 and n_tuning > 0:
        paths.update(_calibration_draws(args, dataset, full, out))
    names = judge_names(dataset.llm_labels.columns)
    if names:
        # Several judges: each judge's grade against the others' and the experts'.
        keyed = dataset.llm_labels.set_index([C.QID, C.DOCID])
        index = pd.MultiIndex.from_frame(table[[C.QID, C.DOCID]])
        by_judge = {
            n: keyed[judge_columns(n)[0]].reindex(index).to_numpy(dtype="float64") for n in names
        }
        judges = judge_agreement(
            by_judge,
            combined=table[C.Y_LLM].to_numpy(dtype="float64"),
            expert=table[C.Y_EXPERT].to_numpy(dtype="float64"),
            top=expert_top(full[C.Y_EXPERT]),
        )
        print()
        print(judges.to_text())
        paths.update(judges.write(out))
    print_paths(paths, width=15 if names else 9)
    return 0


def _calibration_draws(
    args: argparse.Namespace, dataset: Any, table: pd.DataFrame, out: Path
) -> dict[str, Path]:
    """The report's agreement again after calibrating on other random query sets."""
    from hybridrank._atomic import write_text
    from hybridrank.labels.llm import calibration_draws, summarise_draws

    size = len(dataset.tuning_qids)
    config = annotate_config(args).grader if args.config else None
    # attach_llm_labels already joined the judge's raw score as semantic_similarity.
    scored = table.assign(score=table[C.SEMANTIC])
    try:
        draws = calibration_draws(scored, size, draws=args.draws, seed=args.seed, config=config)
    except ValueError as exc:
        print(f"\ncalibration draws skipped: {exc}")
        return {}
    print(
        f"\nThe same after calibrating on {args.draws} random sets of {size} queries instead of "
        "the tuning set (the judge's scores unchanged; each measured on the queries outside its "
        "set; `--draws 0` skips this)"
    )
    print(summarise_draws(draws).to_markdown(floatfmt=".4f"))
    path = out / "calibration_draws.csv"
    write_text(path, draws.to_csv(index=False))
    return {"draws": path}


def register(sub: argparse._SubParsersAction) -> None:
    from hybridrank.labels.llm import ANNOTATORS, COMBINERS, PANEL, PROMPTS

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
        "--config", type=Path,
        help="YAML with an `annotate:` section (backend and params, or judges and combine; "
        "prompt, budget, batch_size, ...); the flags override it",
    )
    an.add_argument(
        "--backend", choices=sorted(b for b in ANNOTATORS if b != PANEL),
        help="one judge: embedding (default, the embedded semantic judge) | openai | transformers "
        "| simulated (expert grade + noise, params from --config: a measuring instrument)",
    )
    an.add_argument(
        "--judge", action="append", nargs="+", metavar=("BACKEND", "KEY=VALUE"),
        help="one of several LLM judges, combined per pair (repeat: --judge openai model=a "
        "--judge openai model=b name=second); KEY=VALUE are the backend's parameters, name= the "
        "judge's name; the backend flags (--base-url, --max-tokens, ...) fill in what a judge "
        "does not set",
    )
    an.add_argument(
        "--combine", choices=sorted(COMBINERS),
        help="how several judges' grades combine: mean (default; the rounded mean, halves up) | "
        "majority (the most common grade; a tie goes to the tied grade nearest the median, then "
        "the lower)",
    )
    an.add_argument(
        "--prompt", choices=sorted(PROMPTS),
        help="LLM judges' prompt: title (default; the query text) | described (adds the query's "
        "description and narrative where the dataset has them)",
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
    an.add_argument(
        "--seed", type=positive_int, default=0,
        help="seed of the strategy's tie-breaks (report: of the calibration draws)",
    )  # fmt: skip
    an.add_argument("--batch-size", type=at_least_one, help="pairs per backend call (default 256)")
    an.add_argument(
        "--retry-failed", action="store_true", help="ask again where the stored answer failed"
    )
    an.add_argument(
        "--cache",
        type=Path,
        help="SQLite answer cache (default: the one shared cache, $HYBRIDRANK_CACHE/annotations.sqlite)",
    )
    an.add_argument("--out", type=Path, help="report: output directory (default DATASET/agreement)")
    an.add_argument(
        "--draws", type=positive_int, default=10,
        help="report, embedded judge: recalibrate on this many random query sets of the tuning "
        "set's size and show the spread of kappa and grades-only NDCG@10 (0: skip; default 10)",
    )  # fmt: skip
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
    remember_defaults(an)
