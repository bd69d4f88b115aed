"""The stacker cross-fitted over its tuning queries, and the report on those queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import TUNING
from hybridrank.ensemble import (
    FrequencyGatedStacker,
    OOFScores,
    StackerConfig,
    crossfit_shortfall,
    crossfit_stacker,
    oof_from_scores,
    query_folds,
)
from hybridrank.errors import ConfigError
from hybridrank.evaluate import evaluate_table
from hybridrank.pipelines._crossfit_report import (
    CROSSFIT,
    crossfit_markdown,
    crossfit_report,
    crossfit_summary,
)
from tests.conftest import make_scored_table


def _scored(n_q: int = 120, per: int = 8, n_tuning: int = 40, seed: int = 0) -> pd.DataFrame:
    return make_scored_table(n_q, per, n_tuning, seed)


def _oof(table: pd.DataFrame, name: str):  # type: ignore[no-untyped-def]
    return oof_from_scores(
        table, name, table[name].to_numpy(), train_mask=np.zeros(len(table), bool)
    )


CONFIG = StackerConfig(n_trials=12, anchors=("famol",))


def test_every_tuning_query_is_scored_by_a_stacker_that_never_saw_it() -> None:
    table = _scored()
    click, llm, famol = (_oof(table, n) for n in ("click_gbdt", "llm_gbdt", "famol"))
    rows = table[TUNING].to_numpy()
    cross = crossfit_stacker(
        CONFIG, click, llm, freq=table[C.FREQ], labels=table[C.Y_EXPERT], rows=rows,
        anchors=[famol], bucket=table[C.BUCKET].to_numpy(), folds=4, seed=3,
    )  # fmt: skip
    # Scores exactly on the tuning rows; whole queries share one fold.
    assert np.array_equal(~np.isnan(cross.scores), rows)
    assert (cross.fold[~rows] == -1).all() and set(cross.fold[rows]) == {0, 1, 2, 3}
    assert (table.assign(f=cross.fold).groupby(C.QID)["f"].nunique() == 1).all()
    assert [g["tuned_on"] + g["scored"] for g in cross.gates] == [40] * 4
    assert cross.to_dict()["folds"] == 4
    # Fold 2's scores are those of a stacker tuned on the other folds' queries alone.
    held = cross.fold == 2
    alone = FrequencyGatedStacker(CONFIG).fit(
        click, llm, freq=table[C.FREQ], labels=table[C.Y_EXPERT], rows=rows & ~held,
        anchors=[famol], bucket=table[C.BUCKET].to_numpy(),
    )  # fmt: skip
    assert cross.gates[2]["gate"] == alone.gate_.params()
    expected = alone.predict(
        click.scores[held], llm.scores[held], qid=click.qid[held],
        freq=table[C.FREQ].to_numpy()[held], anchors=[famol.scores[held]],
    )  # fmt: skip
    np.testing.assert_allclose(cross.scores[held], expected)
    # The split is the gold expert's for the same seed: a seeded deal of the sorted queries.
    tuning_queries = np.unique(click.qid[rows])
    folds = query_folds(tuning_queries, 4, 3)
    assert list(folds) == sorted(tuning_queries) and folds == query_folds(
        tuning_queries[::-1], 4, 3
    )
    assert all(cross.fold[click.qid == q][0] == f for q, f in folds.items())


def test_a_query_with_no_grade_is_left_out_and_too_few_queries_are_refused() -> None:
    table = _scored(n_tuning=15)
    click, llm = _oof(table, "click_gbdt"), _oof(table, "llm_gbdt")
    labels = table[C.Y_EXPERT].to_numpy().copy()
    labels[table[C.QID].to_numpy() == "q000"] = np.nan
    rows = table[TUNING].to_numpy()
    cross = crossfit_stacker(StackerConfig(n_trials=5), click, llm, freq=table[C.FREQ],
                             labels=labels, rows=rows, folds=4)  # fmt: skip
    assert np.isnan(cross.scores[table[C.QID].to_numpy() == "q000"]).all()
    assert (~np.isnan(cross.scores)).sum() == 14 * 8
    with pytest.raises(ConfigError, match="fewer than 10"):
        crossfit_stacker(StackerConfig(n_trials=5), click, llm, freq=table[C.FREQ],
                         labels=labels, rows=rows, folds=3)  # fmt: skip
    with pytest.raises(ConfigError, match="at least 2 folds"):
        crossfit_stacker(StackerConfig(n_trials=5), click, llm, freq=table[C.FREQ],
                         labels=labels, rows=rows, folds=1)  # fmt: skip


def test_the_report_sets_the_tuning_queries_beside_the_evaluated_ones() -> None:
    table = _scored()
    rows = table[TUNING].to_numpy()
    rng = np.random.default_rng(1)
    # Stand-ins: the tuned stacker and the meta-ranker (fitted on the tuning queries) must
    # not appear on them; the cross-fitted stacker only there.
    table["gated_stacker"] = table["famol"] + rng.normal(0, 0.1, len(table))
    table["meta_ranker"] = table[C.Y_EXPERT]
    table[CROSSFIT] = np.where(rows, table["famol"] + rng.normal(0, 0.1, len(table)), np.nan)
    systems = ["click_gbdt", "llm_gbdt", "famol", "gated_stacker", "meta_ranker"]
    evaluated = evaluate_table(table.loc[~rows], systems, bucket_order=["low", "mid", "high"])
    made = crossfit_report([table], systems, evaluated, metric="ndcg@10",
                           bucket_order=["low", "mid", "high"], title="t")  # fmt: skip
    assert made is not None
    report, side = made
    assert list(side["system"]) == [CROSSFIT, "click_gbdt", "llm_gbdt", "famol"]
    assert report.bucket_sizes()["all"] == 40 and report.baseline == CROSSFIT
    by = side.set_index("system")
    ev = evaluated.summary[evaluated.summary[C.BUCKET] == "all"].set_index("system")["ndcg@10"]
    assert by.loc[CROSSFIT, "evaluated queries (ndcg@10)"] == pytest.approx(ev["gated_stacker"])
    assert by.loc["famol", "evaluated queries (ndcg@10)"] == pytest.approx(ev["famol"])
    on_tuning = evaluate_table(table.loc[rows], ["llm_gbdt"], bucket_order=["low", "mid", "high"])
    assert by.loc["llm_gbdt", "tuning queries (ndcg@10)"] == pytest.approx(
        on_tuning.summary.query("bucket == 'all'")["ndcg@10"].iloc[0]
    )
    assert (
        pd.isna(by.loc[CROSSFIT, "p vs stacker"]) and 0 < by.loc["click_gbdt", "p vs stacker"] <= 1
    )
    assert sorted(side["rank, tuning"]) == [1, 2, 3, 4]
    text = crossfit_markdown(report, side, 5)
    assert "over 5 folds" in text and "Spearman" in text and "evaluated queries" in text
    line = crossfit_summary(side, "ndcg@10")
    assert line.startswith("stacker cross-fitted on the tuning queries: ndcg@10 ")
    assert "of 4; best other" in line and "Spearman" in line
    # A run without the cross-fit: no report.
    plain = table.drop(columns=[CROSSFIT])
    assert crossfit_report([plain], systems, evaluated, metric="ndcg@10",
                           bucket_order=["low", "mid", "high"], title="t") is None  # fmt: skip


def test_an_anchor_that_learned_from_the_grades_is_retrained_without_the_held_out_fold() -> None:
    table = _scored()
    click, llm, famol = (_oof(table, n) for n in ("click_gbdt", "llm_gbdt", "famol"))
    rows = table[TUNING].to_numpy()
    qid = table[C.QID].to_numpy()
    y = table[C.Y_EXPERT].to_numpy()
    seen: list[np.ndarray] = []

    def refit(train: np.ndarray) -> OOFScores:
        # A stand-in "gold expert" that memorises the grades it is given: its scores on a
        # held-out fold would be the grades themselves if that fold's rows reached it.
        seen.append(train.copy())
        scores = np.where(train, y, table["famol"].to_numpy())
        fold = np.where(train, 0, 1)
        return OOFScores(
            "famol",
            scores,
            qid,
            fold,
            {0: frozenset(), 1: frozenset(np.unique(qid[train]).tolist())},
        )

    cross = crossfit_stacker(
        CONFIG, click, llm, freq=table[C.FREQ], labels=y, rows=rows, anchors=[famol],
        refit={"famol": refit}, folds=4, seed=3,
    )  # fmt: skip
    assert len(seen) == 4
    for f, train in enumerate(seen):
        held = cross.fold == f
        assert not (train & held).any()  # the held-out fold's grades never reach it
        assert np.array_equal(train | held, rows)  # every other graded row does
    assert all(g["refitted"] == ["famol"] for g in cross.gates)
    with pytest.raises(ConfigError, match="not among the anchors"):
        crossfit_stacker(CONFIG, click, llm, freq=table[C.FREQ], labels=y, rows=rows,
                         anchors=[famol], refit={"gold_gbdt": refit})  # fmt: skip


def test_folds_are_capped_at_one_per_query_and_match_the_gold_experts() -> None:
    assert crossfit_shortfall(60, 5) is None
    assert "fewer than 10" in str(crossfit_shortfall(12, 5))
    assert "at least 2 folds" in str(crossfit_shortfall(60, 1))
    # 40 folds over 40 graded queries: one query per fold (leave one out), never an empty one.
    table = _scored()
    click, llm = _oof(table, "click_gbdt"), _oof(table, "llm_gbdt")
    cross = crossfit_stacker(StackerConfig(n_trials=3), click, llm, freq=table[C.FREQ],
                             labels=table[C.Y_EXPERT], rows=table[TUNING], folds=60)  # fmt: skip
    assert len(cross.gates) == 40 and all(g["scored"] == 1 for g in cross.gates)
    # The gold expert deals its five folds the same way (it predates query_folds).
    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.pipelines._gold import gold_scores

    gold = gold_scores(table, ["click_gbdt", "llm_gbdt"],
                       LambdaMARTConfig(n_estimators=5, early_stopping_rounds=None, n_jobs=1),
                       rows=table[TUNING].to_numpy(), seed=7)  # fmt: skip
    assert gold is not None
    tuning = table[TUNING].to_numpy()
    folds = query_folds(table.loc[tuning, C.QID], 5, 7)
    assert np.array_equal(gold.fold[tuning], table.loc[tuning, C.QID].map(folds).to_numpy())
    # Pinned: the deal of the code before query_folds (a seeded permutation modulo k).
    assert query_folds(["b", "a", "c", "d"], 2, 0) == dict(
        zip(
            ["a", "b", "c", "d"],
            (np.random.default_rng(0).permutation(4) % 2).tolist(),
            strict=True,
        )
    )
