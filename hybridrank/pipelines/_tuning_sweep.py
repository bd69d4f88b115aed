"""How much labelled tuning data the stacker needs: its quality against the number of
labelled tuning queries (``experiment.tuning_sweep``, e.g. ``[20, 60, 150]``).

Only the stacker learns from the tuning queries' expert grades (the judge's
calibration stays on the dataset's own tuning set), so the sweep refits just
the stacker on nested labelled sets: smaller ones are stratified subsets of
the dataset's tuning set, larger ones add evaluation queries drawn per
frequency bucket. Every size is scored on the same queries: the evaluation
queries that no size used, seeds pooled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import save_figure
from hybridrank.data import TUNING
from hybridrank.ensemble import FrequencyGatedStacker, OOFScores, StackerConfig
from hybridrank.evaluate import ndcg_at_k
from hybridrank.pipelines._tables import anchor_scores

logger = logging.getLogger(__name__)


def stratified_order(buckets: pd.Series, rng: np.random.Generator) -> list[str]:
    """The queries of ``buckets`` (qid -> bucket) in an order whose every prefix holds each
    bucket about in proportion to its size: shuffled within buckets, then interleaved by
    relative position."""
    keys = rng.random(len(buckets))
    frame = pd.DataFrame({"bucket": buckets.to_numpy(), "key": keys}, index=buckets.index)
    rank = frame.groupby("bucket")["key"].rank(method="first")
    size = frame.groupby("bucket")["key"].transform("size")
    position = (rank - 0.5) / size
    return [str(q) for q in position.sort_values(kind="stable").index]


def nested_tuning_sets(
    table: pd.DataFrame, sizes: Sequence[int], seed: int = 0
) -> tuple[dict[int, set[str]], set[str]]:
    """One labelled query set per size, nested and stratified by bucket, and the queries
    added beyond the dataset's tuning set (they leave the sweep's evaluation).

    Sizes up to the dataset's tuning set are prefixes of it; larger ones add
    evaluation queries. Only queries with a relevant expert grade are drawn. A
    size that would leave fewer than half of the other such queries for the
    evaluation is left out (logged): every size is scored on the same remaining
    queries, so one such size would leave nothing to compare on.
    """
    per_query = table.groupby(C.QID, sort=False).agg(
        bucket=(C.BUCKET, "first"), tuning=(TUNING, "first"), relevant=(C.Y_EXPERT, "max")
    )
    per_query = per_query[per_query["relevant"] > 0]
    rng = np.random.default_rng(seed)
    base = stratified_order(per_query[per_query["tuning"]]["bucket"].astype(str), rng)
    pool = stratified_order(per_query[~per_query["tuning"]]["bucket"].astype(str), rng)
    order = base + pool
    limit = len(base) + len(pool) // 2
    kept = [n for n in sorted(sizes) if n <= limit]
    if len(kept) < len(sizes):
        logger.warning(
            "tuning sweep: sizes %s left out: %d queries have a relevant expert grade (%d in "
            "the tuning set), so at most %d can be labelled while half of the others stay "
            "for the evaluation",
            [n for n in sorted(sizes) if n > limit], len(order), len(base), limit,
        )  # fmt: skip
    sets = {n: set(order[:n]) for n in kept}
    extra = set(order[len(base) : max(kept)]) if kept else set()
    return sets, extra


def _oof(table: pd.DataFrame, column: str) -> OOFScores:
    """The table's out-of-fold scores of ``column`` (each fold's model trained on the others)."""
    qid = table[C.QID].astype(str).to_numpy()
    fold = table[C.FOLD].to_numpy().astype(np.int64)
    trained = {int(f): frozenset(np.unique(qid[fold != f]).tolist()) for f in np.unique(fold)}
    return OOFScores(column, anchor_scores(table, column), qid, fold, trained)


def tuning_sweep(
    tables: Mapping[int, pd.DataFrame],
    sizes: Sequence[int],
    stacker: StackerConfig,
    llm_model: str,
    *,
    references: Sequence[str] = ("famol", "click_gbdt"),
    seed: int = 0,
    retrain: Mapping[str, Callable[[pd.DataFrame, np.ndarray], OOFScores | None]] | None = None,
) -> pd.DataFrame:
    """NDCG@10 of the stacker refitted on each number of labelled tuning queries.

    Args:
        tables: Per seed, the scored table of the main run (out-of-fold
            scores of ``click_gbdt``, ``llm_model`` and the anchor).
        sizes: Numbers of labelled tuning queries.
        stacker: The stacker's config (its anchors included).
        llm_model: The stacker's LLM expert column.
        references: Systems shown on the same evaluation queries.
        retrain: Anchors trained on the labelled tuning queries themselves
            (the gold expert): ``retrain[name](table, rows)`` rebuilds their
            scores from each size's labelled rows, so a size sees no more
            expert grades than it has. Other anchors come from the table.

    Returns:
        One row per (seed or ``all``, size, system): ``seed, n_tuning, system,
        ndcg@10, n_eval``, plus the stacker's gate rise (``rise``) per seed.
    """
    frames = []
    for s, table in tables.items():
        sets, extra = nested_tuning_sets(table, sizes, seed=seed + int(s))
        evaluated = ~table[TUNING].to_numpy() & ~table[C.QID].astype(str).isin(extra).to_numpy()
        part = table.loc[evaluated]
        qid = part[C.QID].to_numpy()
        first = part.drop_duplicates(C.QID)
        # Bucket medians from the rarest bucket to the most frequent one.
        medians = np.sort(first.groupby(C.BUCKET, observed=True)[C.FREQ].median().to_numpy())
        click, llm = _oof(table, "click_gbdt"), _oof(table, llm_model)
        # Anchors read from the table are the same for every size; retrained ones are not.
        fixed = {
            name: _oof(table, name)
            for name in stacker.anchors
            if not (retrain and name in retrain) and name in table.columns
        }
        table_qids = table[C.QID].astype(str)
        for n, chosen in sets.items():
            rows = table_qids.isin(chosen).to_numpy()
            anchors = []
            for name in stacker.anchors:
                if retrain and name in retrain:
                    rebuilt = retrain[name](table, rows)
                    if rebuilt is not None:
                        anchors.append(rebuilt)
                elif name in fixed:
                    anchors.append(fixed[name])
            fitted = FrequencyGatedStacker(stacker).fit(
                click, llm, freq=table[C.FREQ], labels=table[C.Y_EXPERT], rows=rows,
                anchors=anchors, bucket=table[C.BUCKET].to_numpy(),
            )  # fmt: skip
            scores = fitted.predict(
                part["click_gbdt"], part[llm_model], qid=qid, freq=part[C.FREQ],
                anchors=[a.scores[evaluated] for a in anchors],
            )  # fmt: skip
            systems = {"gated_stacker": scores, **{r: part[r].to_numpy() for r in references
                                                  if r in part.columns}}  # fmt: skip
            g = fitted.gate_(medians) if medians.size >= 2 else None
            for name, values in systems.items():
                per_q = ndcg_at_k(values, part[C.Y_EXPERT].to_numpy(), qid=qid, k=10)
                frames.append(pd.DataFrame({
                    "seed": s, "n_tuning": n, "system": name, "qid": first[C.QID].to_numpy(),
                    "value": per_q,
                    "rise": (float(g[-1] - g[0]) if g is not None and name == "gated_stacker"
                             else np.nan),
                }))  # fmt: skip
    if not frames:  # no size fits the data (logged)
        return pd.DataFrame(columns=["seed", "n_tuning", "system", "ndcg@10", "n_eval",
                                     "gate_rise"])  # fmt: skip
    per_query = pd.concat(frames, ignore_index=True)
    per_seed = per_query.groupby(["seed", "n_tuning", "system"], sort=False).agg(
        ndcg=("value", "mean"), n_eval=("value", "count"), rise=("rise", "first")
    )
    pooled = per_query.groupby(["n_tuning", "system"], sort=False).agg(
        ndcg=("value", "mean"), n_eval=("value", "count"), rise=("rise", "min")
    )
    pooled = pooled.reset_index().assign(seed="all")
    out = pd.concat([per_seed.reset_index(), pooled], ignore_index=True)
    return out.rename(columns={"ndcg": "ndcg@10", "rise": "gate_rise"})


def tuning_sweep_markdown(sweep: pd.DataFrame) -> str:
    """Pooled NDCG@10 per system and number of tuning queries, and the smallest gate rise."""
    pooled = sweep[sweep["seed"] == "all"]
    table = pooled.pivot_table(index="system", columns="n_tuning", values="ndcg@10", sort=False)
    table.columns = [f"{c} tuning queries" for c in table.columns]
    rise = pooled[pooled["system"] == "gated_stacker"].set_index("n_tuning")["gate_rise"]
    n_eval = int(pooled["n_eval"].max())
    return (
        f"NDCG@10 against the number of labelled tuning queries ({n_eval} evaluated queries, "
        "the same for every size, seeds pooled)\n\n"
        + table.to_markdown(floatfmt=".4f")
        + "\n\nsmallest gate rise (click weight, low -> high bucket median) over the seeds: "
        + ", ".join(f"{n}: {v:.3f}" for n, v in rise.items())
    )


def plot_tuning_sweep(sweep: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = sweep[sweep["seed"] == "all"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for system, part in pooled.groupby("system", sort=False):
        style = "-o" if system == "gated_stacker" else "--"
        ax.plot(part["n_tuning"], part["ndcg@10"], style, label=str(system), markersize=4)
    ax.set_xlabel("labelled tuning queries")
    ax.set_ylabel("NDCG@10 (same evaluation queries)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=110)
