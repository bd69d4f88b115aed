"""How far an annotator agrees with expert grades (weighted kappa, Kendall tau, confusion, per
bucket), and several judges with each other."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import save_figure, write_text
from hybridrank.evaluate import ndcg_at_k

ALL = "all"


#: The judges' grade scale (the rubric's 0-3).
JUDGE_TOP = 3


def expert_top(expert: npt.ArrayLike) -> int:
    """The collection's highest expert grade (at least 1), the top of its scale."""
    values = np.asarray(expert, dtype=np.float64)
    values = values[~np.isnan(values)]
    return max(1, int(np.rint(values.max()))) if values.size else 1


def on_judge_scale(expert: npt.ArrayLike, top: int | None = None) -> np.ndarray:
    """Expert grades on the judges' 0-3 scale (NaN stays NaN).

    Grades up to 3 are unchanged (negative ones read as 0). A collection graded
    above 3 (0-4; CLARA2's 0-5) is scaled, ``round(g * 3 / top)``, so its top
    grade is the judges' top grade and no grade is read above it: 0-4 becomes
    0, 1, 2, 2, 3. ``top``: the collection's highest grade (default: the
    highest of ``expert``); give the whole table's, so a subset maps the same.
    """
    e = np.clip(np.asarray(expert, dtype=np.float64), 0, None)
    top = expert_top(e) if top is None else top
    if top > JUDGE_TOP:
        e = e * JUDGE_TOP / top
    return np.clip(np.rint(e), 0, JUDGE_TOP)


def scale_note(top: int) -> str:
    """How :func:`on_judge_scale` reads a collection's grades, in words ("" for 0-3)."""
    if top <= JUDGE_TOP:
        return ""
    mapped = on_judge_scale(np.arange(top + 1, dtype=np.float64), top).astype(int)
    pairs = ", ".join(f"{g}->{m}" for g, m in enumerate(mapped))
    return (
        f"expert grades 0-{top} read on the judge's 0-{JUDGE_TOP} scale for kappa, agreement "
        f"and calibration ({pairs}); NDCG uses the expert grades as they are"
    )


def _measures(judge: np.ndarray, expert: np.ndarray) -> dict[str, float]:
    n = int(judge.size)
    if n < 2:
        return {"pairs": float(n), "kappa_quadratic": np.nan, "kappa_linear": np.nan,
                "kendall_tau": np.nan, "exact_agreement": np.nan}  # fmt: skip
    # scipy.stats and scikit-learn take a second to import: on first use, not with the CLI.
    from scipy import stats
    from sklearn.metrics import cohen_kappa_score

    labels = [0, 1, 2, 3]
    single = np.unique(np.concatenate([judge, expert])).size < 2
    return {
        "pairs": float(n),
        "kappa_quadratic": np.nan
        if single
        else float(cohen_kappa_score(expert, judge, labels=labels, weights="quadratic")),
        "kappa_linear": np.nan
        if single
        else float(cohen_kappa_score(expert, judge, labels=labels, weights="linear")),
        "kendall_tau": float(stats.kendalltau(expert, judge).statistic),
        "exact_agreement": float(np.mean(judge == expert)),
    }


@dataclass(frozen=True)
class Agreement:
    """Agreement of judge grades with expert grades.

    Attributes:
        overall: Quadratic- and linear-weighted Cohen's kappa, Kendall tau-b,
            exact agreement and the number of pairs.
        by_bucket: The same per frequency bucket (and ``all``), plus NDCG@10
            on the judged pairs of each query: ``ndcg@10_by_judge`` (the
            judge's grade, ties broken by its continuous score where given,
            else as ``tie_order`` says), ``ndcg@10_grades_only`` (the grade,
            ties broken by BM25: what four grades alone rank) and
            ``ndcg@10_bm25`` (BM25 alone, the same pairs) where the table has
            BM25.
        confusion: Expert grade (rows) by judge grade (columns) counts.
        title: What was compared.
        per_grade: Per grade: pairs the expert and the judge gave it, the
            judge's precision (expert agrees) and recall (judge finds it).
        tie_order: How ``ndcg@10_by_judge`` breaks grade ties, in words.
        scale: How expert grades above the judge's scale were read
            (:func:`scale_note`; "" for a 0-3 collection).
    """

    overall: dict[str, float]
    by_bucket: pd.DataFrame
    confusion: pd.DataFrame
    title: str
    per_grade: pd.DataFrame | None = None
    tie_order: str = ""
    scale: str = ""

    def to_text(self) -> str:
        o = self.overall
        lines = [
            self.title,
            *([f"Scale: {self.scale}"] if self.scale else []),
            f"pairs {int(o['pairs'])}: weighted kappa (quadratic) {o['kappa_quadratic']:.3f}, "
            f"(linear) {o['kappa_linear']:.3f}; Kendall tau-b {o['kendall_tau']:.3f}; "
            f"exact agreement {o['exact_agreement']:.3f}",
            "",
            f"Per frequency bucket (NDCG@10 on the judged pairs; by_judge: {self.tie_order})",
            _counts_as_ints(self.by_bucket, ["pairs"]).to_markdown(floatfmt=".3f"),
            "",
            "Confusion (rows: expert grade, columns: judge grade)",
            self.confusion.to_markdown(),
        ]
        if self.per_grade is not None:
            per_grade = _counts_as_ints(self.per_grade, ["expert_pairs", "judge_pairs"])
            lines += ["", "Per grade", per_grade.to_markdown(floatfmt=".3f")]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "markdown": out / "agreement.md",
            "json": out / "agreement.json",
            "csv": out / "agreement_by_bucket.csv",
            "png": out / "confusion.png",
        }
        write_text(paths["markdown"], self.to_text() + "\n")
        write_text(
            paths["json"],
            json.dumps(
                {"title": self.title, "overall": self.overall, "tie_order": self.tie_order,
                 "scale": self.scale,
                 "by_bucket": json.loads(self.by_bucket.reset_index().to_json(orient="records")),
                 "confusion": self.confusion.to_numpy().tolist(),
                 "per_grade": None if self.per_grade is None
                 else json.loads(self.per_grade.reset_index().to_json(orient="records"))},
                indent=2,
            ) + "\n"
        )  # fmt: skip
        write_text(paths["csv"], self.by_bucket.to_csv())
        self.plot_confusion(paths["png"])
        return paths

    def plot_confusion(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        counts = self.confusion.to_numpy(dtype=float)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center",
                        fontsize=8, color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(counts.shape[1]), [str(c) for c in self.confusion.columns])
        ax.set_yticks(range(counts.shape[0]), [str(r) for r in self.confusion.index])
        ax.set_xlabel("judge grade")
        ax.set_ylabel("expert grade")
        ax.set_title(f"kappa (quadratic) {self.overall['kappa_quadratic']:.3f}", fontsize=10)
        fig.colorbar(im, ax=ax, label="share of the expert grade's row")
        fig.tight_layout()
        save_figure(fig, path, dpi=120)


def agreement_report(
    table: pd.DataFrame,
    *,
    judge: str = C.Y_LLM,
    expert: str = C.Y_EXPERT,
    bucket: str | None = C.BUCKET,
    score: str | None = None,
    baseline: str | None = C.BM25,
    bucket_order: tuple[str, ...] = ("low", "mid", "high"),
    title: str = "",
    top: int | None = None,
) -> Agreement:
    """Compare judge grades with expert grades on the rows where both exist.

    Args:
        table: Candidate rows (rows of a query contiguous) with both grade columns.
        judge: Judge grade column (NaN where the judge failed or was not run).
        expert: Expert grade column (evaluation only; never a training input).
        bucket: Frequency bucket column, or None.
        score: A continuous judge score to break grade ties when ranking.
        baseline: The first-stage score (BM25) shown beside the judge on the
            same pairs and used to break ties of ``ndcg@10_grades_only``;
            skipped where the table lacks it.
        bucket_order: Display order of buckets.
        title: Heading line.
        top: The collection's highest expert grade (:func:`on_judge_scale`);
            default the highest in ``table``. Give the whole dataset's when
            ``table`` is a part of it.
    """
    j_all = table[judge].to_numpy(dtype=np.float64)
    keep = ~np.isnan(j_all)
    sub = table.loc[keep]
    top = expert_top(table[expert]) if top is None else top
    j = sub[judge].to_numpy(dtype=np.float64).clip(0, JUDGE_TOP).round().astype(int)
    # Kappa and the confusion compare grades on the judge's scale; NDCG the expert's own.
    e_true = sub[expert].to_numpy(dtype=np.float64).clip(0, None)
    e = on_judge_scale(e_true, top).astype(int)
    overall = _measures(j, e)
    overall["pairs_without_judgment"] = float((~keep).sum())

    qid = sub[C.QID].to_numpy()
    base = (
        sub[baseline].to_numpy(dtype=np.float64)
        if baseline is not None and baseline in sub.columns
        else None
    )
    grades_only = j.astype(np.float64) + (0.0 if base is None else 1e-3 * within_unit(base))
    if score is not None:
        rank_score = j + 1e-3 * within_unit(sub[score].to_numpy(dtype=np.float64))
        tie_order = f"grade ties broken by the judge's {score}"
    else:
        rank_score = grades_only
        tie_order = (
            f"grade ties broken by {baseline}" if base is not None else "grade ties in table order"
        )
    ndcg_columns = {"ndcg@10_by_judge": ndcg_at_k(rank_score, e_true, qid=qid, k=10)}
    if base is not None:
        ndcg_columns["ndcg@10_grades_only"] = ndcg_at_k(grades_only, e_true, qid=qid, k=10)
        ndcg_columns[f"ndcg@10_{baseline}"] = ndcg_at_k(base, e_true, qid=qid, k=10)
    ndcg = ndcg_columns["ndcg@10_by_judge"]
    q_first = np.r_[True, sub[C.QID].to_numpy()[1:] != sub[C.QID].to_numpy()[:-1]]
    q_bucket = sub[bucket].astype(str).to_numpy()[q_first] if bucket else np.full(ndcg.size, ALL)
    rows = {}
    buckets = [b for b in bucket_order if bucket and b in set(q_bucket)]
    if bucket:
        buckets += sorted(set(q_bucket) - set(buckets))
    for b in [*buckets, ALL]:
        rmask = (
            np.ones(len(sub), dtype=bool) if b == ALL else sub[bucket].astype(str).to_numpy() == b
        )
        qmask = np.ones(ndcg.size, dtype=bool) if b == ALL else q_bucket == b
        row = _measures(j[rmask], e[rmask])
        for name, values in ndcg_columns.items():
            row[name] = (
                float(np.nanmean(values[qmask])) if np.any(~np.isnan(values[qmask])) else np.nan
            )
        rows[b] = row
    by_bucket = pd.DataFrame(rows).T
    by_bucket["pairs"] = by_bucket["pairs"].astype(int)
    confusion = pd.crosstab(
        pd.Categorical(e, categories=[0, 1, 2, 3]),
        pd.Categorical(j, categories=[0, 1, 2, 3]),
        dropna=False,
    )
    confusion.index.name, confusion.columns.name = "expert", "judge"
    counts = confusion.to_numpy(dtype=np.float64)
    diagonal = np.diag(counts)
    by_judge, by_expert = counts.sum(axis=0), counts.sum(axis=1)
    per_grade = pd.DataFrame(
        {
            "expert_pairs": by_expert.astype(int),
            "judge_pairs": by_judge.astype(int),
            "precision": np.divide(diagonal, by_judge, out=np.full(4, np.nan), where=by_judge > 0),
            "recall": np.divide(diagonal, by_expert, out=np.full(4, np.nan), where=by_expert > 0),
        },
        index=pd.Index([0, 1, 2, 3], name="grade"),
    )
    return Agreement(overall=overall, by_bucket=by_bucket, confusion=confusion, title=title,
                     per_grade=per_grade, tie_order=tie_order, scale=scale_note(top))  # fmt: skip


def _counts_as_ints(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with count columns as Python ints (tabulate prints them without decimals)."""
    out = frame.copy()
    for c in columns:
        out[c] = [int(v) for v in out[c]]
    return out.astype({c: object for c in columns})


def within_unit(values: npt.ArrayLike) -> np.ndarray:
    """Min-max scale to [0, 1] (a tie-breaker that never outweighs one grade step)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = np.nanmin(v), np.nanmax(v)
    return np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)


def _pair_measures(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Quadratic-weighted Cohen's kappa and exact agreement of two graders on the pairs both graded."""
    both = ~(np.isnan(a) | np.isnan(b))
    x = a[both].clip(0, 3).round().astype(int)
    y = b[both].clip(0, 3).round().astype(int)
    n = int(x.size)
    if n == 0:
        return {"pairs": 0.0, "kappa_quadratic": np.nan, "exact_agreement": np.nan}
    from sklearn.metrics import cohen_kappa_score
    # Kappa is undefined when the two use one grade between them (no chance disagreement).
    single = np.unique(np.concatenate([x, y])).size < 2
    kappa = (
        np.nan
        if single or n < 2
        else float(cohen_kappa_score(x, y, labels=[0, 1, 2, 3], weights="quadratic"))
    )
    return {"pairs": float(n), "kappa_quadratic": kappa, "exact_agreement": float(np.mean(x == y))}


@dataclass(frozen=True)
class JudgeAgreement:
    """How far several judges agree with each other (and with expert grades, where given).

    Attributes:
        pairwise: One row per pair of judges (``judge_a``, ``judge_b``): the
            pairs both graded, quadratic-weighted Cohen's kappa and exact
            agreement on them.
        per_judge: One row per judge (index ``judge``; the combined grade last
            where given): pairs graded, and with expert grades their kappa,
            exact agreement and the pairs compared.
        combine: How the judges' grades were combined (``mean``, ``majority``).
    """

    pairwise: pd.DataFrame
    per_judge: pd.DataFrame
    combine: str = ""

    def to_text(self) -> str:
        how = f", combined by {self.combine}" if self.combine else ""
        pairwise = _counts_as_ints(self.pairwise, ["pairs"])
        per_judge = _counts_as_ints(
            self.per_judge, [c for c in self.per_judge.columns if c.endswith("pairs")]
        )
        n_judges = sum(not str(n).startswith("combined") for n in self.per_judge.index)
        return "\n".join(
            [
                f"Agreement between the {n_judges} judges{how} (on the pairs both graded)",
                pairwise.to_markdown(index=False, floatfmt=".3f"),
                "",
                "Per judge",
                per_judge.to_markdown(floatfmt=".3f"),
            ]
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "combine": self.combine,
            "pairwise": json.loads(self.pairwise.to_json(orient="records")),
            "per_judge": json.loads(self.per_judge.reset_index().to_json(orient="records")),
        }

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """``judges.md`` and ``judges.json`` in ``out_dir`` (each written atomically)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"judges_markdown": out / "judges.md", "judges_json": out / "judges.json"}
        write_text(paths["judges_markdown"], self.to_text() + "\n")
        write_text(paths["judges_json"], json.dumps(self.to_dict(), indent=2) + "\n")
        return paths


def judge_agreement(
    grades: Mapping[str, npt.ArrayLike],
    *,
    combined: npt.ArrayLike | None = None,
    combine: str = "",
    expert: npt.ArrayLike | None = None,
    top: int | None = None,
) -> JudgeAgreement:
    """Agreement of several judges' grades over the same pairs.

    Args:
        grades: Judge name -> grades, one per pair (NaN where the judge gave none).
        combined: The combined grade per pair, shown as the last judge row.
        combine: How ``combined`` was made (its row is ``combined (<combine>)``).
        expert: Expert grades per pair: each judge's agreement with them (read on
            the judges' 0-3 scale, :func:`on_judge_scale`, with ``top`` the
            collection's highest grade: default the highest of ``expert``).

    Example:
        >>> rep = judge_agreement({"a": [0, 1, 2, 3], "b": [0, 1, 2, 2]})
        >>> rep.pairwise["exact_agreement"].item()
        0.75
    """
    names = list(grades)
    values = {n: np.asarray(grades[n], dtype=np.float64) for n in names}
    rows = [
        {"judge_a": a, "judge_b": b, **_pair_measures(values[a], values[b])}
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    pairwise = pd.DataFrame(
        rows, columns=["judge_a", "judge_b", "pairs", "kappa_quadratic", "exact_agreement"]
    )
    judged = dict(values)
    if combined is not None:
        judged[f"combined ({combine})" if combine else "combined"] = np.asarray(
            combined, dtype=np.float64
        )
    per: dict[str, dict[str, float]] = {}
    truth = None if expert is None else on_judge_scale(expert, top)
    for name, g in judged.items():
        row: dict[str, float] = {"graded_pairs": float(np.sum(~np.isnan(g)))}
        if truth is not None:
            m = _pair_measures(g, truth)
            row.update(
                expert_pairs=m["pairs"],
                kappa_quadratic_vs_expert=m["kappa_quadratic"],
                exact_agreement_vs_expert=m["exact_agreement"],
            )
        per[name] = row
    per_judge = pd.DataFrame.from_dict(per, orient="index")
    per_judge.index.name = "judge"
    return JudgeAgreement(pairwise=pairwise, per_judge=per_judge, combine=combine)
