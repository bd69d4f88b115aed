"""Several LLM judges on the same pairs, their grades combined per pair: the panel.

A :class:`JudgePanel` is an annotator (backend ``panel``) made of two or more
LLM judges and a combiner (:data:`COMBINERS`). The pipelines run it judge by
judge through the answer cache (:func:`annotate_panel`): each judge's
answers are stored under its own backend, model and prompt version, so a
rerun, or another panel sharing a judge, asks nothing twice. The combined
grade is ``y_llm``; the mean of the judges' soft grades is ``y_llm_soft``;
each judge's own grade, soft grade and status stay beside them
(:func:`judge_columns`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hybridrank._config import config_from_dict
from hybridrank.errors import ConfigError
from hybridrank.labels.llm._agreement import JudgeAgreement, judge_agreement
from hybridrank.labels.llm._cache import AnswerCache
from hybridrank.labels.llm._protocol import (
    ANNOTATORS,
    GRADES,
    PARTIAL,
    Annotator,
    Judgment,
    Pair,
    make_annotator,
    register_annotator,
)
from hybridrank.labels.llm._runner import AnnotationStats, annotate_pairs

logger = logging.getLogger(__name__)

#: The panel's backend name.
PANEL = "panel"
#: Prefixes of a judge's own columns: ``y_llm@NAME``, ``y_llm_soft@NAME``, ``llm_status@NAME``.
JUDGE_PREFIXES = ("y_llm@", "y_llm_soft@", "llm_status@")
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def judge_columns(name: str) -> tuple[str, str, str]:
    """A judge's grade, soft grade and status columns."""
    grade, soft, status = JUDGE_PREFIXES
    return grade + name, soft + name, status + name


def judge_names(columns: Iterable[str]) -> list[str]:
    """The judges whose grade columns (``y_llm@NAME``) are among ``columns``, in order."""
    prefix = JUDGE_PREFIXES[0]
    return [c[len(prefix) :] for c in columns if c.startswith(prefix)]


# ------------------------------------------------------------------------------ combiners


def combine_mean(grades: np.ndarray) -> np.ndarray:
    """The rounded mean of each row's grades; halves round up (1.5 -> 2).

    Args:
        grades: ``(pairs, judges)``, NaN where a judge gave no grade.

    Returns:
        ``(pairs,)`` float: a grade 0-3, NaN where no judge graded.
    """
    g = np.asarray(grades, dtype=np.float64)
    n = (~np.isnan(g)).sum(axis=1)
    total = np.where(np.isnan(g), 0.0, g).sum(axis=1)
    mean = np.divide(total, n, out=np.full(len(g), np.nan), where=n > 0)
    return np.floor(mean + 0.5)


def combine_majority(grades: np.ndarray) -> np.ndarray:
    """The most common grade of each row.

    A tie goes to the tied grade nearest the median of all the row's grades,
    and a tie in that to the lower grade: ``[1, 1, 2]`` -> 1 (no tie),
    ``[0, 3, 3, 2, 2]`` -> 2 (median 2), ``[1, 1, 3, 3, 2]`` -> 1 (1 and 3
    tie; median 2, both as near: the lower).

    Args:
        grades: ``(pairs, judges)``, NaN where a judge gave no grade.

    Returns:
        ``(pairs,)`` float: a grade 0-3, NaN where no judge graded.
    """
    g = np.asarray(grades, dtype=np.float64)
    levels = np.asarray(GRADES, dtype=np.float64)
    counts = (g[:, :, None] == levels[None, None, :]).sum(axis=1)
    graded = counts.sum(axis=1) > 0
    top = (counts == counts.max(axis=1, keepdims=True)) & (counts > 0)
    median = np.zeros(len(g))
    if graded.any():
        median[graded] = np.nanmedian(g[graded], axis=1)
    distance = np.where(top, np.abs(levels[None, :] - median[:, None]), np.inf)
    return np.where(graded, levels[np.argmin(distance, axis=1)], np.nan)


def combine_soft(soft: np.ndarray) -> np.ndarray:
    """The mean of each row's soft grades over the judges that gave one (NaN where none did)."""
    s = np.asarray(soft, dtype=np.float64)
    n = (~np.isnan(s)).sum(axis=1)
    total = np.where(np.isnan(s), 0.0, s).sum(axis=1)
    return np.divide(total, n, out=np.full(len(s), np.nan), where=n > 0)


#: How a panel combines its judges' grades, by name.
COMBINERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": combine_mean,
    "majority": combine_majority,
}


# --------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class JudgeConfig:
    """One judge of a panel (an entry of ``annotate.judges``).

    Attributes:
        backend: An LLM backend (``openai``, ``transformers``). Grades are
            combined, so a score-only judge (``embedding``, graded only after
            a calibration) cannot sit on a panel.
        params: The backend's keyword arguments (base_url, model, model_path,
            prompt, ...).
        name: The judge's name in its columns and in the reports (letters,
            digits, ``_.-``, at most 64); default from its model
            (``params.model``, or the file name of ``params.model_path``).
    """

    backend: str
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        llm = sorted(b for b, cls in ANNOTATORS.items() if cls.is_llm and b != PANEL)
        if self.backend == PANEL:
            raise ConfigError("a panel cannot sit on a panel: list its judges instead")
        if self.backend not in ANNOTATORS:
            raise ConfigError(f"unknown annotator backend {self.backend!r}; choose from {llm}")
        if not ANNOTATORS[self.backend].is_llm:
            raise ConfigError(
                f"backend {self.backend!r} is a score-only judge (not an LLM): its scores become "
                f"grades only after a calibration, so it cannot be combined; choose from {llm}"
            )
        if not isinstance(self.params, Mapping):
            raise ConfigError(
                f"params must be a mapping of {self.backend} keyword arguments, got {self.params!r}"
            )
        if self.name is not None and not _NAME.match(str(self.name)):
            raise ConfigError(
                f"judge name {self.name!r}: use 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )

    def default_name(self) -> str:
        """A name from the judge's model: ``params.model``, the stem of ``params.model_path``."""
        model = self.params.get("model")
        if not model and self.params.get("model_path"):
            model = Path(str(self.params["model_path"])).stem
        return judge_name_from(str(model or self.backend))

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "params": dict(self.params), "name": self.name}


def judge_name_from(text: str) -> str:
    """A valid judge name made from free text (a model id): other characters become ``-``."""
    name = _NOT_NAME.sub("-", text).strip("-._")[:64] or "judge"
    return name if _NAME.match(name) else "j-" + name[:62]


def _unique_names(given: Sequence[str | None], defaults: Sequence[str]) -> list[str]:
    """Given names as they are (two equal ones are an error); defaults made unique with ``-2``..."""
    named = [n for n in given if n is not None]
    repeated = sorted({n for n in named if named.count(n) > 1})
    if repeated:
        raise ConfigError(f"judge names must differ; {repeated} named twice")
    taken = set(named)
    out = []
    for name, default in zip(given, defaults, strict=True):
        if name is None:
            name, k = default, 1
            while name in taken:
                k += 1
                name = f"{default[:60]}-{k}"
        taken.add(name)
        out.append(name)
    return out


def _judge_config(entry: Any, where: str) -> JudgeConfig:
    """A :class:`JudgeConfig` from a mapping, its errors naming ``where``."""
    if isinstance(entry, JudgeConfig):
        return entry
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a judge ({{backend, params[, name]}}), got {entry!r}")
    try:
        return config_from_dict(JudgeConfig, entry, where)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def panel_params(judges: Any, combine: Any, where: str = "annotate") -> dict[str, Any]:
    """The ``panel`` backend's parameters from an ``annotate.judges`` list and ``combine``.

    Every judge is checked (:class:`JudgeConfig`) and named; no annotator is
    built, so nothing is loaded or called.

    Raises:
        ConfigError: Naming ``where.judges[i]`` or ``where.combine``.
    """
    if combine not in COMBINERS:
        raise ConfigError(f"{where}.combine: {combine!r} is not one of {sorted(COMBINERS)}")
    if not isinstance(judges, list | tuple):
        raise ConfigError(
            f"{where}.judges: expected a list of judges ({{backend, params[, name]}}), got {judges!r}"
        )
    if len(judges) < 2:
        raise ConfigError(
            f"{where}.judges: give two or more judges to combine (one judge: {where}.backend and "
            f"{where}.params), got {len(judges)}"
        )
    configs = [_judge_config(entry, f"{where}.judges[{i}]") for i, entry in enumerate(judges)]
    try:
        names = _unique_names([c.name for c in configs], [c.default_name() for c in configs])
    except ConfigError as exc:
        raise ConfigError(f"{where}.judges: {exc}") from None
    return {
        "judges": [{**c.to_dict(), "name": n} for c, n in zip(configs, names, strict=True)],
        "combine": combine,
    }


def with_prompt(backend: str, params: Mapping[str, Any], prompt: str | None) -> dict[str, Any]:
    """``params`` with the prompt variant set for every LLM judge that does not set its own.

    A judge's own ``prompt`` wins; score-only judges are left as they are
    (they read no prompt).
    """
    out = dict(params)
    if prompt is None:
        return out
    if backend == PANEL:
        judges = out.get("judges")
        if isinstance(judges, list | tuple):
            out["judges"] = [
                {**j, "params": with_prompt(str(j.get("backend")), j.get("params") or {}, prompt)}
                if isinstance(j, Mapping)
                else j
                for j in judges
            ]
        return out
    cls = ANNOTATORS.get(backend)
    if cls is not None and cls.is_llm and "prompt" not in out:
        out["prompt"] = prompt
    return out


# ---------------------------------------------------------------------------------- panel


@register_annotator
class JudgePanel(Annotator):
    """Two or more LLM judges whose grades are combined per pair (backend ``panel``).

    ``combine`` is ``mean`` (the rounded mean grade, halves up) or
    ``majority`` (the most common grade; a tie goes to the tied grade nearest
    the median of all the judges' grades, then to the lower one). A judge
    that fails on a pair is left out of that pair's combination; a pair no
    judge graded has no grade. The soft grade is the mean of the judges'
    soft grades (each judge's expected grade where its backend gives one,
    else its grade).

    The pipelines (:func:`~hybridrank.labels.llm.annotate_candidates`) run
    the judges one by one through the answer cache with
    :func:`annotate_panel`, so each judge's answers are cached under its own
    model and prompt version. :meth:`annotate` asks the judges directly.

    Args:
        judges: Built LLM annotators, or ``{"backend", "params"[, "name"]}``
            mappings (``annotate.judges`` entries), built here.
        combine: A key of :data:`COMBINERS`.
        names: Names of the judges (None entries, or None: from their models).

    Example:
        >>> panel = JudgePanel(judges=[
        ...     {"backend": "openai", "params": {"base_url": "http://127.0.0.1:8000/v1", "model": "a"}},
        ...     {"backend": "openai", "params": {"base_url": "http://127.0.0.1:8001/v1", "model": "b"}},
        ... ], combine="majority")
        >>> panel.names
        ('a', 'b')
    """

    backend: ClassVar[str] = PANEL
    is_llm: ClassVar[bool] = True

    def __init__(
        self,
        *,
        judges: Sequence[Annotator | Mapping[str, Any]],
        combine: str = "mean",
        names: Sequence[str | None] | None = None,
    ) -> None:
        if combine not in COMBINERS:
            raise ConfigError(f"panel: combine {combine!r} is not one of {sorted(COMBINERS)}")
        if len(judges) < 2:
            raise ConfigError(f"panel: give two or more judges to combine, got {len(judges)}")
        if names is not None and len(names) != len(judges):
            raise ConfigError(f"panel: {len(names)} names for {len(judges)} judges")
        given = list(names) if names is not None else [None] * len(judges)
        explicit: list[str | None] = []
        defaults: list[str] = []
        makers: list[Annotator | JudgeConfig] = []
        for i, (entry, name) in enumerate(zip(judges, given, strict=True)):
            if isinstance(entry, Annotator):
                if not entry.is_llm or isinstance(entry, JudgePanel):
                    raise ConfigError(
                        f"panel judges[{i}]: {entry.backend!r} ({entry.model}) cannot sit on a "
                        "panel: only LLM judges (no score-only judge, no panel) are combined"
                    )
                explicit.append(name)
                defaults.append(judge_name_from(entry.model))
                makers.append(entry)
            else:
                config = _judge_config(entry, f"panel judges[{i}]")
                explicit.append(name if name is not None else config.name)
                defaults.append(config.default_name())
                makers.append(config)
        for name in explicit:
            if name is not None and not _NAME.match(str(name)):
                raise ConfigError(
                    f"panel: judge name {name!r}: use 1-64 letters, digits, '_', '.' or '-'"
                )
        final = _unique_names(explicit, defaults)
        built: list[Annotator] = []
        try:
            for maker in makers:
                if isinstance(maker, JudgeConfig):
                    built.append(make_annotator(maker.backend, **maker.params))
                else:
                    built.append(maker)
        except BaseException:
            for ann, maker in zip(built, makers, strict=False):
                if isinstance(maker, JudgeConfig):
                    ann.close()
            raise
        self.combine = combine
        self._combiner = COMBINERS[combine]
        self._judges: tuple[tuple[str, Annotator], ...] = tuple(zip(final, built, strict=True))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={j!r}" for n, j in self._judges)
        return f"{type(self).__name__}(combine={self.combine!r}, judges=[{inner}])"

    @property
    def judges(self) -> tuple[tuple[str, Annotator], ...]:
        """``(name, annotator)`` of every judge, in order."""
        return self._judges

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._judges)

    @property
    def model(self) -> str:
        inner = "; ".join(f"{n}={j.backend}:{j.model}" for n, j in self._judges)
        return f"{self.combine}({inner})"

    @property
    def prompt_version(self) -> str:
        return "; ".join(f"{n}={j.prompt_version}" for n, j in self._judges)

    @property
    def reads_query_context(self) -> bool:
        return any(j.reads_query_context for _, j in self._judges)

    def prompt_version_for(self, pair: Pair) -> str:
        return "; ".join(
            f"{n}={j.prompt_version_for(pair if j.reads_query_context else pair.without_context())}"
            for n, j in self._judges
        )

    def combine_grades(self, grades: np.ndarray) -> np.ndarray:
        """The combined grade of each row of ``grades`` (``(pairs, judges)``, NaN: no grade)."""
        return self._combiner(grades)

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        """Ask every judge (no cache) and combine; ``raw`` holds each judge's grade as JSON."""
        if not pairs:
            return []
        try:
            answers = [
                judge.annotate(
                    pairs if judge.reads_query_context else [p.without_context() for p in pairs]
                )
                for _, judge in self._judges
            ]
        except BaseException as exc:
            # A judge's own partial answers are not the panel's combined ones.
            if hasattr(exc, PARTIAL):
                delattr(exc, PARTIAL)
            raise
        grades = np.array([[_grade(j) for j in js] for js in answers], dtype=np.float64).T
        soft = np.array([[_soft(j) for j in js] for js in answers], dtype=np.float64).T
        combined, mean_soft = self.combine_grades(grades), combine_soft(soft)
        out = []
        for i in range(len(pairs)):
            mine = [(name, js[i]) for (name, _), js in zip(self._judges, answers, strict=True)]
            raw = json.dumps({name: j.grade for name, j in mine})
            t_in = [j.tokens_in for _, j in mine if j.tokens_in is not None]
            t_out = [j.tokens_out for _, j in mine if j.tokens_out is not None]
            graded = not np.isnan(combined[i])
            out.append(
                Judgment(
                    grade=int(combined[i]) if graded else None,
                    expected_grade=float(mean_soft[i]) if graded else None,
                    raw=raw,
                    error=None
                    if graded
                    else "no judge graded the pair: "
                    + "; ".join(f"{name}: {j.error}" for name, j in mine),
                    attempts=sum(j.attempts for _, j in mine),
                    tokens_in=sum(t_in) if t_in else None,
                    tokens_out=sum(t_out) if t_out else None,
                )
            )
        return out

    def close(self) -> None:
        for _, judge in self._judges:
            judge.close()


def _grade(j: Judgment) -> float:
    return np.nan if j.grade is None or not j.ok else float(j.grade)


def _soft(j: Judgment) -> float:
    if j.grade is None or not j.ok:
        return np.nan
    return float(j.expected_grade) if j.expected_grade is not None else float(j.grade)


# -------------------------------------------------------------------------- run, cached


@dataclass(frozen=True)
class PanelRun:
    """Result of :func:`annotate_panel` (one entry per pair, in order).

    Attributes:
        grade: The combined grade (float, NaN where no judge graded).
        soft: The mean of the judges' soft grades (NaN where no judge graded).
        status: ``ok`` (some judge graded), ``failed`` (every judge that
            answered failed) or ``not_run`` (the budget stopped every judge).
        judges: One row per pair: each judge's grade, soft grade and status
            (:func:`judge_columns`).
        labels: The runners' label tables one under the other, with a ``judge`` column.
        stats: Each judge's counts, by name.
        agreement: The judges' agreement with each other.
    """

    grade: np.ndarray
    soft: np.ndarray
    status: np.ndarray
    judges: pd.DataFrame
    labels: pd.DataFrame
    stats: Mapping[str, AnnotationStats]
    agreement: JudgeAgreement

    @property
    def total(self) -> AnnotationStats:
        """All judges' counts together (:meth:`AnnotationStats.total`)."""
        return AnnotationStats.total(list(self.stats.values()))


def annotate_panel(
    panel: JudgePanel,
    pairs: Sequence[Pair],
    cache: AnswerCache,
    *,
    budget: int | None = None,
    batch_size: int = 16,
    retry_failed: bool = False,
    progress: bool = True,
) -> PanelRun:
    """Judge pairs with every judge of a panel through the cache, then combine.

    Each judge goes through :func:`~hybridrank.labels.llm.annotate_pairs` on
    its own (its answers keyed by its backend, model and prompt version;
    ``budget`` bounds each judge's new texts), so a rerun asks nothing twice
    and a killed run resumes judge by judge.
    """
    tables, stats = [], {}
    columns: dict[str, np.ndarray] = {}
    grades, softs = [], []
    for name, judge in panel.judges:
        table, judge_stats = annotate_pairs(
            judge,
            pairs,
            cache,
            budget=budget,
            batch_size=batch_size,
            retry_failed=retry_failed,
            progress=progress,
            label=f"judge {name}",
        )
        ok = table["status"].to_numpy() == "ok"
        grade = np.where(ok, table["grade"].astype("float64").to_numpy(), np.nan)
        soft = np.where(
            ok, table["expected_grade"].fillna(table["grade"].astype("float64")), np.nan
        )
        g_col, s_col, st_col = judge_columns(name)
        columns[g_col], columns[s_col] = grade, soft.astype(np.float64)
        columns[st_col] = table["status"].to_numpy(dtype=object)
        grades.append(grade)
        softs.append(soft)
        tables.append(table.assign(judge=name))
        stats[name] = judge_stats
        logger.info("judge %s: %s", name, judge_stats.summary())
    g = np.stack(grades, axis=1)
    combined = panel.combine_grades(g)
    statuses = np.stack([columns[judge_columns(n)[2]] for n in panel.names], axis=1)
    status = np.where(
        (statuses == "ok").any(axis=1),
        "ok",
        np.where((statuses == "failed").any(axis=1), "failed", "not_run"),
    ).astype(object)
    agreement = judge_agreement(
        dict(zip(panel.names, grades, strict=True)), combined=combined, combine=panel.combine
    )
    return PanelRun(
        grade=combined,
        soft=combine_soft(np.stack(softs, axis=1)),
        status=status,
        judges=pd.DataFrame(columns),
        labels=pd.concat(tables, ignore_index=True),
        stats=stats,
        agreement=agreement,
    )


__all__ = [
    "COMBINERS",
    "JUDGE_PREFIXES",
    "PANEL",
    "JudgeConfig",
    "JudgePanel",
    "PanelRun",
    "annotate_panel",
    "combine_majority",
    "combine_mean",
    "combine_soft",
    "judge_columns",
    "judge_name_from",
    "judge_names",
    "panel_params",
    "with_prompt",
]
