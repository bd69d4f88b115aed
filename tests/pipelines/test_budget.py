"""Budgeted annotation: strategies, the recorded selection, reruns that extend it, the curve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import TUNING, Dataset, SimulationConfig
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.labels.llm import PROMPT_VERSION, Annotator, AnswerCache, Judgment, Pair
from hybridrank.pipelines import (
    SELECTED_BY,
    SELECTION_ROUND,
    SEMANTIC,
    Budget,
    DataConfig,
    ExperimentConfig,
    WorldConfig,
    annotate_chosen,
    annotate_dataset,
    annotate_with_budget,
    budget_mask,
    build_world,
    fill_judge_score,
    mask_llm_labels,
    select_pairs,
    write_world,
)
from tests.conftest import make_collection, write_trec_dir


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    freq = {"a": 0, "b": 1, "c": 5, "d": 50}
    rows = []
    for q, f in freq.items():
        for i in range(10):
            shown = f > 0 and i < 5
            rows.append({C.QID: q, C.DOCID: f"{q}{i}", C.FREQ: f, C.BM25: 10.0 - i,
                         "qd_impressions": float(f * (5 - i)) if shown else np.nan,
                         "click_estimate": rng.random() if shown else np.nan,
                         C.Y_LLM: float(i % 4), SEMANTIC: rng.random(),
                         TUNING: q == "c"})  # fmt: skip
    return pd.DataFrame(rows)


def test_tail_first_takes_the_rarest_queries_and_weakest_evidence_first() -> None:
    chosen = select_pairs(_table(), 15, "tail-first")
    assert list(chosen[C.QID][:10]) == ["a"] * 10
    # Within query "a" (never shown) the first-stage order decides: top BM25 first.
    assert list(chosen[C.DOCID][:3]) == ["a0", "a1", "a2"]
    # Query "b": never-shown pairs (weakest click evidence) before shown ones.
    assert set(chosen[C.DOCID][10:]) == {"b5", "b6", "b7", "b8", "b9"}


def test_uncertainty_prefers_pairs_without_click_evidence() -> None:
    table = _table()
    chosen = select_pairs(table, 20, "uncertainty")
    shown = table.set_index(C.DOCID)["qd_impressions"].notna()
    assert not shown.reindex(chosen[C.DOCID]).any()


def test_uncertainty_without_a_log_says_it_has_no_click_evidence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = _table().drop(columns=["qd_impressions", "click_estimate"])
    with caplog.at_level("WARNING"):
        chosen = select_pairs(table, 10, "uncertainty")
    assert "no click evidence" in caplog.text
    assert list(chosen[C.QID]) == ["a"] * 10  # by query frequency, then random
    caplog.clear()
    with caplog.at_level("WARNING"):
        select_pairs(_table(), 10, "uncertainty")
    assert "no click evidence" not in caplog.text


def test_random_is_seeded_and_exclusions_are_never_chosen_again() -> None:
    table = _table()
    a = select_pairs(table, 12, "random", seed=3)
    assert a.equals(select_pairs(table, 12, "random", seed=3))
    b = select_pairs(table, 40, "random", seed=3, exclude=a)
    assert len(b) == 28
    assert not set(zip(a[C.QID], a[C.DOCID], strict=True)) & set(
        zip(b[C.QID], b[C.DOCID], strict=True)
    )
    with pytest.raises(ConfigError, match="unknown selection strategy"):
        select_pairs(table, 1, "head-first")


def test_budget_parse_and_mask() -> None:
    assert Budget.parse("5000") == Budget(pairs=5000)
    assert Budget.parse("0.3") == Budget(share=0.3) == Budget.parse("30%")
    assert Budget(share=0.5).new_pairs(100, 20) == 30
    assert Budget(pairs=500).new_pairs(100, 20) == 80
    with pytest.raises(ConfigError):
        Budget.parse("lots")
    table = _table()
    keep = table[TUNING].to_numpy()
    mask = budget_mask(table, 0.5, "tail-first", keep=keep)
    assert mask[keep].all() and mask[~keep].sum() == 15
    masked = mask_llm_labels(table, mask)
    assert masked.loc[~mask, C.Y_LLM].isna().all() and masked.loc[~mask, SEMANTIC].isna().all()
    assert masked.loc[mask, C.Y_LLM].notna().all()


def test_fill_judge_score_maps_the_proxy_onto_the_judge_scale() -> None:
    rng = np.random.default_rng(0)
    n = 400
    proxy = rng.uniform(-0.2, 0.8, n)
    judge = 3.0 * proxy**2 + 0.5  # increasing in proxy on [0, 0.8], on another scale
    table = pd.DataFrame({C.QID: np.repeat(np.arange(40), 10), SEMANTIC: judge, C.Y_LLM: 1.0})
    labelled = rng.random(n) < 0.3
    labelled[proxy > 0.7] = True  # the fit sees the top of the range
    masked = mask_llm_labels(table, labelled)
    filled = fill_judge_score(masked, proxy)
    # Judge scores that exist are kept; labels stay missing; every gap is filled.
    np.testing.assert_array_equal(filled.loc[labelled, SEMANTIC], judge[labelled])
    assert filled.loc[~labelled, C.Y_LLM].isna().all()
    assert filled[SEMANTIC].notna().all()
    # On the judge's scale and in the proxy's order.
    gap = ~labelled & (proxy > 0.1)
    np.testing.assert_allclose(filled.loc[gap, SEMANTIC], judge[gap], atol=0.2)
    order = np.argsort(proxy[~labelled])
    assert np.all(np.diff(filled.loc[~labelled, SEMANTIC].to_numpy()[order]) >= -1e-12)
    # Strictly increasing inside the fitted range: filled pairs keep the proxy's order.
    inside = ~labelled & (proxy > proxy[labelled].min()) & (proxy < proxy[labelled].max())
    assert filled.loc[inside, SEMANTIC].nunique() == inside.sum()
    assert masked[SEMANTIC].isna().sum() == (~labelled).sum()  # the input is not modified
    # A missing proxy leaves the gap; too few pairs to fit leaves the table as it was.
    holes = proxy.copy()
    holes[~labelled] = np.nan
    assert fill_judge_score(masked, holes)[SEMANTIC].isna().sum() == (~labelled).sum()
    few = mask_llm_labels(table, np.arange(n) < 10)
    assert fill_judge_score(few, proxy)[SEMANTIC].isna().sum() == n - 10
    with pytest.raises(ValueError, match="proxy"):
        fill_judge_score(masked, proxy[:10])


class CountingLLM(Annotator):
    """An LLM stand-in: grade 2 for every pair; remembers every pair it was asked."""

    backend = "counting"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @property
    def model(self) -> str:
        return "count-1"

    @property
    def prompt_version(self) -> str:
        return PROMPT_VERSION

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        self.asked += [(p.qid, p.docid) for p in pairs]
        return [Judgment(grade=2, raw="Grade: 2") for _ in pairs]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_trec_dir(
        make_collection(n_queries=40, n_docs=200, seed=5), tmp_path_factory.mktemp("c")
    )
    config = WorldConfig(
        data=DataConfig(format="trec", path=str(root), stopwords="none"),
        simulation=SimulationConfig(n_sessions=400, seed=0),
    )
    out = tmp_path_factory.mktemp("w") / "world"
    write_world(build_world(config), out)
    return out


def test_annotate_budget_records_and_extends_the_selection(world: Path, tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "ds"
    shutil.copytree(world, path)
    dataset = Dataset.read(path)
    n_pairs = len(dataset.candidates)
    judge = CountingLLM()
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        first = annotate_with_budget(dataset, judge, cache, Budget(share=0.2), "tail-first")
        dataset = dataset.update(llm_labels=first.llm_labels)
        assert len(judge.asked) == len(first.new) == round(0.2 * n_pairs)
        labels = Dataset.read(path).llm_labels
        assert labels is not None and set(labels[SELECTED_BY]) == {"tail-first"}
        assert set(labels[SELECTION_ROUND]) == {1} and labels[C.Y_LLM].eq(2).all()
        # The rarest queries were labelled first.
        freq = dataset.splits.set_index(C.QID)[C.FREQ]
        chosen_freq = freq.reindex(labels[C.QID].unique())
        assert chosen_freq.max() <= freq.reindex(
            dataset.candidates[C.QID].unique()
        ).drop(labels[C.QID].unique()).min()

        asked_before = set(judge.asked)
        second = annotate_with_budget(dataset, judge, cache, Budget(share=0.5), "random")
        dataset = dataset.update(llm_labels=second.llm_labels)
    new_asked = judge.asked[len(asked_before):]
    assert not set(new_asked) & asked_before  # never asked twice
    labels = dataset.llm_labels
    assert labels is not None and len(labels) == round(0.5 * n_pairs)
    assert labels.groupby(SELECTION_ROUND)[SELECTED_BY].first().to_dict() == {
        1: "tail-first", 2: "random"
    }  # fmt: skip
    assert not labels.duplicated([C.QID, C.DOCID]).any()
    assert second.share == pytest.approx(0.5, abs=1e-3)
    # Rows of a query stay contiguous in the candidate order.
    order = dataset.candidates.reset_index().set_index([C.QID, C.DOCID])["index"]
    pos = order.reindex(pd.MultiIndex.from_frame(labels[[C.QID, C.DOCID]])).to_numpy()
    assert (np.diff(pos) > 0).all()


class CountingScorer(CountingLLM):
    """A score-only judge stand-in (like the embedded one): a score per pair, no grade."""

    backend = "counting-scorer"
    is_llm = False

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        self.asked += [(p.qid, p.docid) for p in pairs]
        return [Judgment(grade=None, score=(len(p.document) % 13) / 13) for p in pairs]


def test_named_pairs_extend_the_labels_on_one_scale(world: Path, tmp_path: Path) -> None:
    """`annotate --candidates`: a score-only judge regrades every label as a whole (one
    calibration, whole queries' features), keeping the earlier pairs' selection records."""
    import shutil

    path = tmp_path / "ds"
    shutil.copytree(world, path)
    dataset = Dataset.read(path)
    judge = CountingScorer()
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        first = annotate_with_budget(dataset, judge, cache, Budget(share=0.2), "tail-first")
        dataset = dataset.update(llm_labels=first.llm_labels)
        before = dataset.llm_labels
        assert before is not None and set(before[SELECTED_BY]) == {"tail-first", "calibration"}
        labelled = pd.MultiIndex.from_frame(before[[C.QID, C.DOCID]])
        cand = dataset.candidates[[C.QID, C.DOCID]]
        named = cand.loc[~pd.MultiIndex.from_frame(cand).isin(labelled)].iloc[:12]
        asked = len(judge.asked)
        result = annotate_chosen(dataset, judge, cache, named.iloc[::-1])
        assert sorted(judge.asked[asked:]) == sorted(map(tuple, named.to_numpy()))  # only new
        labels = result.llm_labels
        assert len(labels) == len(before) + len(named) and not labels.duplicated([C.QID, C.DOCID]).any()
        by_pair = labels.set_index([C.QID, C.DOCID])
        kept = by_pair.loc[labelled]
        assert (kept[SELECTED_BY].to_numpy() == before[SELECTED_BY].to_numpy()).all()
        assert (kept[SELECTION_ROUND].to_numpy() == before[SELECTION_ROUND].to_numpy()).all()
        new = by_pair.loc[pd.MultiIndex.from_frame(named)]
        assert set(new[SELECTED_BY]) == {"candidates"} and set(new[SELECTION_ROUND]) == {0}
        # The same grades as judging all of them in one go: one scale for every label.
        whole = annotate_dataset(dataset, judge, cache, candidates=labels[[C.QID, C.DOCID]],
                                 progress=False).llm_labels  # fmt: skip
        np.testing.assert_array_equal(whole[C.Y_LLM].to_numpy(), labels[C.Y_LLM].to_numpy())
        # A pair the dataset lacks: its row in the named table.
        bad = pd.concat([named.iloc[:2], pd.DataFrame({C.QID: ["q?"], C.DOCID: ["d?"]})])
        with pytest.raises(DataFormatError, match="not a candidate") as info:
            annotate_chosen(dataset, judge, cache, bad)
        assert info.value.row == 2


def test_named_pairs_for_an_llm_replace_only_theirs(world: Path, tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "ds"
    shutil.copytree(world, path)
    dataset = Dataset.read(path)
    judge = CountingLLM()
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        first = annotate_with_budget(dataset, judge, cache, Budget(share=0.2), "random")
        dataset = dataset.update(llm_labels=first.llm_labels)
        before = dataset.llm_labels
        assert before is not None
        cand = dataset.candidates[[C.QID, C.DOCID]]
        labelled = pd.MultiIndex.from_frame(before[[C.QID, C.DOCID]])
        fresh = cand.loc[~pd.MultiIndex.from_frame(cand).isin(labelled)].iloc[:3]
        named = pd.concat([before[[C.QID, C.DOCID]].iloc[:2], fresh])
        asked = len(judge.asked)
        labels = annotate_chosen(dataset, judge, cache, named).llm_labels
    assert len(judge.asked) - asked == 3  # the two labelled pairs come from the cache
    assert len(labels) == len(before) + 3
    by_pair = labels.set_index([C.QID, C.DOCID])
    assert set(by_pair.loc[labelled, SELECTED_BY]) == {"random"}
    assert set(by_pair.loc[pd.MultiIndex.from_frame(fresh), SELECTED_BY]) == {"candidates"}
    # A score-only judge would regrade the LLM's labels on its own scale: refused, by the
    # labels' own record of their judge, even where the cache holds the scorer's answers for
    # the same texts (an earlier annotation of another copy of the world).
    scorer = CountingScorer()
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        annotate_dataset(Dataset.read(world), scorer, cache)
    scorer.asked.clear()
    assert set(before["llm_judge"]) == {f"{judge.backend}:{judge.model}"}
    with AnswerCache(tmp_path / "cache.sqlite") as cache, pytest.raises(
        ConfigError, match="earlier LLM labels were made by"
    ):
        annotate_chosen(dataset, scorer, cache, fresh)
    with AnswerCache(tmp_path / "cache.sqlite") as cache, pytest.raises(
        ConfigError, match="earlier LLM labels were made by"
    ):  # a budget regrades the earlier labels too
        annotate_with_budget(dataset, scorer, cache, Budget(share=0.5), "random")
    assert scorer.asked == []
    # Labels written before the record: the cache decides, as before.
    unrecorded = dataset.with_tables(llm_labels=before.drop(columns=["llm_judge"]))
    with AnswerCache(tmp_path / "other.sqlite") as cache, pytest.raises(
        ConfigError, match="not answers of this judge"
    ):
        annotate_chosen(unrecorded, scorer, cache, fresh)


def test_experiment_budget_curve(world: Path, tmp_path: Path) -> None:
    from hybridrank.ensemble import StackerConfig
    from hybridrank.pipelines import ClickTuningConfig

    dataset = Dataset.read(world)
    config = ExperimentConfig(
        seeds=(0,), sessions=(), tuning_queries=10, metrics=("ndcg@10",),
        budgets=(0.3, 1.0), budget_strategies=("tail-first", "random"),
        budget_systems=("famol", "gated_stacker"), stacker=StackerConfig(n_trials=10),
        tuning_sweep=(10, 20), neural=None,
        click_tuning=ClickTuningConfig(min_sessions=1, max_p=1.0, grid=5),
    )  # fmt: skip
    result = run_small(config, dataset, tmp_path / "exp")
    # With the head weight from held-out clicks in the main run, the curve's fully
    # labelled point is rerun with the label-tuned gate, like every other point.
    info = json.loads((tmp_path / "exp" / "info.json").read_text())
    main_run = next(iter(info["runs"].values()))  # a fixed dataset: one run
    assert "click_tuning" in main_run
    assert "base" not in info["budget"]["seed0_all_labelled"]["gate"]
    # The tuning sweep rides along: the stacker refitted on 10 and 20 labelled queries.
    sweep = pd.read_csv(tmp_path / "exp" / "report" / "tuning_sweep.csv")
    assert set(sweep["n_tuning"]) == {10, 20} and "gated_stacker" in set(sweep["system"])
    assert (tmp_path / "exp" / "report" / "tuning_sweep.png").exists()
    curve = result.budget
    assert curve is not None
    assert set(curve.summary["strategy"]) == {"tail-first", "random"}
    assert set(curve.summary["system"]) == {"famol", "gated_stacker"}
    low = curve.summary[curve.summary["budget"] == 0.3]
    assert np.allclose(low["share"], 0.3, atol=0.01)
    full = curve.summary[curve.summary["budget"] == 1.0]
    assert np.allclose(full["share"], 1.0)
    assert (tmp_path / "exp" / "report" / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "gated_stacker" in (tmp_path / "exp" / "report" / "budget_curve.md").read_text()
    assert len(curve.significance) == 2  # tail-first vs random, one row per system
    # Outside the budget the judge's score came from the local MiniLM cosine (budget_fill: dense).
    runs = json.loads((tmp_path / "exp" / "info.json").read_text())["budget"]
    budgeted = {k: r for k, r in runs.items() if not k.endswith("_all_labelled")}
    assert budgeted and all(run["judge_scores_filled"] > 0 for run in budgeted.values())


def run_small(config: ExperimentConfig, dataset: Dataset, out: Path):  # type: ignore[no-untyped-def]
    from hybridrank.pipelines import run_experiment

    return run_experiment(config, out, dataset=dataset, progress=False)


def test_dense_feature_covers_every_candidate_and_no_budget_masks_it(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from hybridrank.pipelines._dense import dense_similarity
    from hybridrank.pipelines._tables import DENSE

    dataset = Dataset.read(world)
    table = dataset.table().head(300)
    cache = tmp_path / "cache.sqlite"
    scores = dense_similarity(table, dataset, cache)
    assert scores.shape == (len(table),) and np.isfinite(scores).all()
    assert (np.abs(scores) <= 1 + 1e-6).all() and scores.std() > 0
    # A rerun reads the answer cache: nothing is encoded again.
    with caplog.at_level(logging.INFO, logger="hybridrank.pipelines._train_neural"):
        again = dense_similarity(table, dataset, cache)
    np.testing.assert_allclose(again, scores, rtol=1e-6)
    assert "300 cached, 0 new" in caplog.text
    # An LLM budget removes the judge's outputs, never the local transformer's cosine.
    table = table.assign(**{DENSE: scores, SEMANTIC: scores, C.Y_LLM: 1.0})
    masked = mask_llm_labels(table, np.zeros(len(table), dtype=bool))
    assert masked[SEMANTIC].isna().all() and masked[C.Y_LLM].isna().all()
    np.testing.assert_array_equal(masked[DENSE].to_numpy(), scores)


def test_experiment_config_reads_budgets() -> None:
    cfg = ExperimentConfig.from_dict({"budgets": [0.1, 0.3, 0.5, 1.0]})
    assert cfg.budgets == (0.1, 0.3, 0.5, 1.0)
    assert ExperimentConfig.from_dict(cfg.to_dict()).budgets == cfg.budgets
    with pytest.raises(ConfigError):
        ExperimentConfig.from_dict({"budgets": [1.5]})
    with pytest.raises(ConfigError):
        ExperimentConfig.from_dict({"budgets": [0.5], "budget_strategies": ["nope"]})
    assert cfg.budget_fill == "dense"
    off = ExperimentConfig.from_dict({"budgets": [0.3], "budget_fill": "none"})
    assert ExperimentConfig.from_dict(off.to_dict()).budget_fill == "none"
    with pytest.raises(ConfigError, match="budget_fill"):
        ExperimentConfig.from_dict({"budget_fill": "bm25"})


def test_train_gbdt_fills_the_judge_score_a_budget_left_missing(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import shutil
    from dataclasses import replace

    from hybridrank.gbdt import LambdaMARTConfig
    from hybridrank.labels.llm import make_annotator
    from hybridrank.pipelines import GBDTTrainConfig, train_gbdt
    from hybridrank.pipelines._dense import dense_similarity

    path = tmp_path / "ds"
    shutil.copytree(world, path)
    dataset = Dataset.read(path)
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        labelled = annotate_with_budget(
            dataset, make_annotator("embedding"), cache, Budget(share=0.3), "tail-first",
            progress=False,
        )  # fmt: skip
    dataset = dataset.update(llm_labels=labelled.llm_labels)
    config = GBDTTrainConfig(
        dataset=str(path), label="llm", features=("click", "dataset", "semantic"),
        gbdt=LambdaMARTConfig(n_estimators=10, min_child_samples=5, early_stopping_rounds=None),
        metrics=("ndcg@10",), judge_fill="none",
    )  # fmt: skip
    bare = train_gbdt(config, tmp_path / "none", progress=False).table
    holes = bare[SEMANTIC].isna().to_numpy()
    assert 0 < holes.mean() < 1  # the budget left pairs without a judge score
    filled = train_gbdt(replace(config, judge_fill="dense"), tmp_path / "dense", progress=False)
    table = filled.table
    assert table[SEMANTIC].notna().all() and SEMANTIC in filled.features
    # Judge scores that exist are kept; the others come from the MiniLM cosine, mapped.
    np.testing.assert_array_equal(table[SEMANTIC].to_numpy()[~holes], bare[SEMANTIC][~holes])
    expected = fill_judge_score(bare, dense_similarity(bare, dataset))[SEMANTIC].to_numpy()
    np.testing.assert_allclose(table[SEMANTIC].to_numpy(), expected, rtol=1e-6)
    assert table[C.Y_LLM].isna().sum() == bare[C.Y_LLM].isna().sum()  # labels stay missing
    saved = config.to_dict()
    assert saved["judge_fill"] == "none" and GBDTTrainConfig.from_dict(saved) == config
    # Without the judge's score as a feature the LLM-label model is warned about.
    with caplog.at_level(logging.WARNING, logger="hybridrank.pipelines._train_gbdt"):
        train_gbdt(replace(config, features=("click", "dataset")), tmp_path / "blind",
                   progress=False)  # fmt: skip
    assert "without the judge's score as a feature" in caplog.text
    with pytest.raises(ConfigError, match="judge_fill"):
        GBDTTrainConfig.from_dict({"judge_fill": "isotonic"})


def test_budget_table_keeps_a_bucket_without_evaluated_queries() -> None:
    from hybridrank.pipelines._budget import budget_curve_markdown

    summary = pd.DataFrame({"system": "stacker", "strategy": "random", "budget": [0.3, 0.3],
                            "share": [0.3, 0.3], C.BUCKET: ["low", "mid"],
                            "value": [np.nan, 0.5]})  # fmt: skip
    text = budget_curve_markdown(summary, pd.DataFrame(), "ndcg@10")  # was a KeyError on 'low'
    header = next(line for line in text.splitlines() if line.startswith("| strategy"))
    assert [c.strip() for c in header.split("|")[4:6]] == ["low", "mid"]
    assert "0.5000" in text


def test_an_experiment_without_relevant_grades_stops_before_training(
    world: Path, tmp_path: Path
) -> None:
    from hybridrank.errors import DataFormatError
    from hybridrank.pipelines import run_experiment

    dataset = Dataset.read(world)
    ungraded = dataset.with_tables(candidates=dataset.candidates.assign(**{C.Y_EXPERT: 0}))
    with pytest.raises(DataFormatError, match="no query outside the tuning set has a candidate"):
        run_experiment(ExperimentConfig(), tmp_path / "exp", dataset=ungraded, progress=False)
    assert not (tmp_path / "exp").exists()


def test_named_pairs_are_recorded_even_on_a_dataset_without_labels(
    world: Path, tmp_path: Path
) -> None:
    dataset = Dataset.read(world).with_tables(llm_labels=None)
    pairs = dataset.candidates[[C.QID, C.DOCID]].iloc[:4]
    with AnswerCache(tmp_path / "cache.sqlite") as cache:
        first = annotate_chosen(dataset, CountingLLM(), cache, pairs).llm_labels
        assert set(first[SELECTED_BY]) == {"candidates"} and set(first[SELECTION_ROUND]) == {0}
        # Labels from before any budget (no record) are `all`, round 0; new named pairs too.
        unrecorded = first.drop(columns=[SELECTED_BY, SELECTION_ROUND])
        more = dataset.candidates[[C.QID, C.DOCID]].iloc[4:6]
        labels = annotate_chosen(
            dataset.with_tables(llm_labels=unrecorded), CountingLLM(), cache, more
        ).llm_labels
    by = labels.set_index([C.QID, C.DOCID])[SELECTED_BY]
    assert set(by.loc[pd.MultiIndex.from_frame(pairs)]) == {"all"}
    assert set(by.loc[pd.MultiIndex.from_frame(more)]) == {"candidates"}
