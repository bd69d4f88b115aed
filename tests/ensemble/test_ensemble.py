from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrank import columns as C
from hybridrank.ensemble import (
    BucketGate,
    DataSchedulingRanker,
    FAMOLConfig,
    FAMOLRanker,
    FrequencyGatedStacker,
    LambdaRankPairs,
    LeakageError,
    OOFScores,
    SchedulingConfig,
    SigmoidGate,
    StackerConfig,
    break_ties,
    lambdarank_gradients,
    make_gate,
    mean_of_normalised,
    out_of_fold,
    rank_per_query,
    zscore_per_query,
)
from hybridrank.errors import ConfigError
from hybridrank.evaluate import ndcg_at_k
from hybridrank.gbdt import LambdaMARTConfig, LambdaMARTRanker

from ..gbdt.conftest import make_ranking


@settings(max_examples=50, deadline=None)
@given(
    freq=st.lists(st.floats(0, 1e6), min_size=1, max_size=20),
    centre=st.floats(-2, 10),
    slope=st.floats(0, 20),
    weights=st.lists(st.floats(0, 1), min_size=3, max_size=3),
)
def test_gates_stay_in_unit_interval(freq, centre, slope, weights) -> None:
    for gate in (SigmoidGate(centre, slope), BucketGate((2, 20), weights)):
        g = gate(freq)
        assert np.all((g >= 0) & (g <= 1))
    # The sigmoid gate grows with frequency.
    f = np.sort(np.asarray(freq))
    assert np.all(np.diff(SigmoidGate(centre, slope)(f)) >= -1e-12)


def test_gate_registry_and_errors() -> None:
    assert make_gate("bucket", {"weights": [0, 0.5, 1]})(np.array([0, 5, 50])).tolist() == [
        0,
        0.5,
        1,
    ]
    with pytest.raises(ConfigError):
        make_gate("cosine")
    with pytest.raises(ConfigError):
        BucketGate((2, 20), (0.1, 2.0, 0.5))


def test_normalisers() -> None:
    s = np.array([1.0, 2.0, 3.0, 5.0, 5.0])
    q = np.array([0, 0, 0, 1, 1])
    z = zscore_per_query(s, qid=q)
    assert z[:3] == pytest.approx([-1.2247449, 0, 1.2247449]) and (z[3:] == 0).all()
    r = rank_per_query(s, qid=q)
    assert r.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 0.75, 0.75])


def test_break_ties_orders_only_tied_scores_by_the_secondary_key() -> None:
    rng = np.random.default_rng(0)
    q = np.repeat(np.arange(50), 20)
    # Few distinct values per query (a shallow click model), some gaps tiny.
    s = rng.integers(0, 4, size=q.size) * 1e-3 + q * 1e-9
    key = rng.random(q.size)
    key[::7] = np.nan
    out = break_ties(s, key, qid=q)
    for g in range(50):
        rows = q == g
        a, b, k = s[rows], out[rows], key[rows]
        # Unequal scores keep their order.
        i, j = np.meshgrid(np.arange(a.size), np.arange(a.size))
        assert (b[i] > b[j])[a[i] > a[j]].all()
        # Equal scores are ordered by the key, a missing key last.
        tied = (a[i] == a[j]) & (i != j)
        kk = np.where(np.isnan(k), -np.inf, k)
        assert ((b[i] > b[j]) == (kk[i] > kk[j]))[tied & (kk[i] != kk[j])].all()
    with pytest.raises(ValueError, match="shape"):
        break_ties(s, key[:-1], qid=q)


def _table(n_queries: int = 40, seed: int = 0) -> pd.DataFrame:
    X, y, qid = make_ranking(n_queries=n_queries, seed=seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame[C.QID] = qid.astype(str)
    frame[C.Y_EXPERT] = y
    frame[C.FOLD] = qid % 5
    return frame


def test_out_of_fold_records_training_queries() -> None:
    table = _table()
    feats = [c for c in table.columns if c.startswith("f")]
    cfg = LambdaMARTConfig(n_estimators=10, early_stopping_rounds=None, min_child_samples=5)

    def fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        return (
            LambdaMARTRanker(cfg)
            .fit(train[feats], train[C.Y_EXPERT], qid=train[C.QID].to_numpy())
            .predict(test[feats])
        )

    oof = out_of_fold(table, "m", fit_predict, progress=False)
    assert not np.isnan(oof.scores).any()
    for f, seen in oof.trained_on.items():
        assert not seen & set(table.loc[table[C.FOLD] == f, C.QID])


def test_leak_is_detected() -> None:
    """A stacker fed in-fold predictions (a model that saw the query) is refused."""
    table = _table()
    qid = table[C.QID].to_numpy()
    everything = frozenset(qid.tolist())
    leaky = OOFScores("leaky", np.random.default_rng(0).random(len(table)), qid, table[C.FOLD].to_numpy(),
                      {f: everything for f in range(5)})  # fmt: skip
    with pytest.raises(LeakageError, match="trained on it"):
        leaky.check()
    honest = OOFScores("ok", leaky.scores, qid, leaky.fold,
                       {f: frozenset(qid[leaky.fold != f].tolist()) for f in range(5)})  # fmt: skip
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=3))
    with pytest.raises(LeakageError):
        stacker.fit(leaky, honest, freq=np.ones(len(qid)), labels=table[C.Y_EXPERT])
    with pytest.raises(TypeError, match="OOFScores only"):
        stacker.fit(leaky.scores, honest, freq=np.ones(len(qid)), labels=table[C.Y_EXPERT])  # type: ignore[arg-type]


def test_mean_of_normalised_averages_z_scores_and_keeps_the_leakage_record() -> None:
    table = _table()
    qid, fold = table[C.QID].to_numpy(), table[C.FOLD].to_numpy()
    rng = np.random.default_rng(3)
    honest = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    # The second model saw fewer queries (a train mask); the combination saw the union.
    fewer = {f: frozenset(list(seen)[: len(seen) // 2]) for f, seen in honest.items()}
    a = OOFScores("a", rng.normal(5, 3, len(table)), qid, fold, honest)
    b = OOFScores("b", rng.normal(0, 0.01, len(table)), qid, fold, fewer)
    both = mean_of_normalised("ab", [a, b])
    expected = (zscore_per_query(a.scores, qid=qid) + zscore_per_query(b.scores, qid=qid)) / 2
    np.testing.assert_allclose(both.scores, expected)
    assert both.name == "ab" and both.trained_on == honest
    # Each part counts as much as the other whatever its scale: a raw mean would
    # follow the wide-spread ``a`` alone.
    assert np.corrcoef(both.scores, b.scores)[0, 1] > 0.5
    assert abs(np.corrcoef((a.scores + b.scores) / 2, b.scores)[0, 1]) < 0.2
    leaky = OOFScores("leaky", b.scores, qid, fold, {f: frozenset(qid.tolist()) for f in range(5)})
    with pytest.raises(LeakageError, match="trained on it"):
        mean_of_normalised("x", [a, leaky])
    other_folds = OOFScores("c", b.scores, qid, (fold + 1) % 5, honest)
    with pytest.raises(ValueError, match="different rows or folds"):
        mean_of_normalised("x", [a, other_folds])
    with pytest.raises(ValueError, match="nothing to average"):
        mean_of_normalised("x", [])


def test_stacker_learns_the_frequency_pattern() -> None:
    """Click scores are right on head queries, LLM scores on tail ones: the gate must find it."""
    rng = np.random.default_rng(1)
    n_q, per = 120, 20
    qid = np.repeat(np.arange(n_q).astype(str), per)
    freq_q = np.where(np.arange(n_q) % 2 == 0, 200, 0)
    freq = np.repeat(freq_q, per)
    y = rng.integers(0, 4, qid.size).astype(float)
    noise = rng.normal(0, 3, qid.size)
    click = np.where(freq > 0, y, noise)
    llm = np.where(freq > 0, noise, y)
    fold = np.repeat(np.arange(n_q) % 5, per)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=60, seed=0)).fit(
        OOFScores("click", click, qid, fold, trained),
        OOFScores("llm", llm, qid, fold, trained),
        freq=freq,
        labels=y,
    )
    assert stacker.gate_(np.array([0.0]))[0] < 0.2 and stacker.gate_(np.array([200.0]))[0] > 0.8
    fused = stacker.predict(click, llm, qid=qid, freq=freq)
    best_single = max(np.nanmean(ndcg_at_k(s, y, qid=qid, k=10)) for s in (click, llm))
    assert np.nanmean(ndcg_at_k(fused, y, qid=qid, k=10)) > best_single + 0.1


def test_lambdarank_gradients_sum_to_zero_and_skip_missing_labels() -> None:
    rng = np.random.default_rng(0)
    qid = np.repeat(np.arange(30), 12)
    s = rng.normal(size=qid.size)
    y = rng.integers(0, 4, qid.size).astype(float)
    y[::3] = np.nan
    offsets = np.r_[0, np.cumsum(np.bincount(qid))]
    g, h = lambdarank_gradients(s, y, offsets)
    assert np.abs(np.add.reduceat(g, offsets[:-1])).max() < 1e-12
    assert (g[::3] == 0).all() and (h[::3] == 0).all() and (h >= 0).all()
    # Raising a relevant row's score lowers the loss: its gradient is negative when it ranks low.
    y2 = np.array([3.0, 0.0])
    g2, _ = lambdarank_gradients(np.array([0.0, 1.0]), y2, np.array([0, 2]))
    assert g2[0] < 0 < g2[1]


def _lambdarank_by_pairs(
    s: np.ndarray, y: np.ndarray, offsets: np.ndarray, row_gain: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The LambdaRank gradients pair by pair, for the vectorised version to match."""
    grad, hess = np.zeros_like(s), np.zeros_like(s)
    for a, b in itertools.pairwise(offsets):
        rows = [r for r in range(a, b) if not np.isnan(y[r])]
        order = sorted(rows, key=lambda r: -s[r])  # stable: ties keep row order
        rank = {r: i + 1 for i, r in enumerate(order)}
        gain = {r: 2.0 ** y[r] - 1 if row_gain is None else row_gain[r] for r in rows}
        ideal = sorted(gain.values(), reverse=True)
        idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
        for i in rows:
            for j in rows:
                if y[i] <= y[j] or idcg == 0:
                    continue
                rho = 1.0 / (1.0 + np.exp(s[i] - s[j]))
                delta = (
                    abs(gain[i] - gain[j])
                    * abs(1 / np.log2(rank[i] + 1) - 1 / np.log2(rank[j] + 1))
                    / idcg
                )
                grad[i] -= rho * delta
                grad[j] += rho * delta
                hess[i] += rho * (1 - rho) * delta
                hess[j] += rho * (1 - rho) * delta
    return grad, hess


@pytest.mark.parametrize("low_label", [0.0, 1.0])
def test_lambdarank_gradients_match_the_pairwise_definition(low_label: float) -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 15, 25)
    offsets = np.r_[0, np.cumsum(sizes)]
    s = np.round(rng.normal(size=offsets[-1]), 1)  # some exact ties
    y = low_label + rng.choice([0, 0, 0, 1, 2, 3], size=offsets[-1]).astype(float)
    y[rng.random(y.size) < 0.2] = np.nan
    g, h = lambdarank_gradients(s, y, offsets)
    g_ref, h_ref = _lambdarank_by_pairs(s, y, offsets)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-12)


def test_lambdarank_pairs_built_once_score_every_round() -> None:
    """A boosting loop lists the pairs once; each round's scores give the definition's
    gradients, including a row mask and a query where every row has one label."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 12, 30)
    offsets = np.r_[0, np.cumsum(sizes)]
    y = rng.choice([0, 1, 2, 3], size=offsets[-1]).astype(float)
    y[offsets[0] : offsets[1]] = 2.0  # no pair in the first query
    valid = rng.random(y.size) < 0.8
    pairs = LambdaRankPairs.build(y, offsets, valid=valid)
    assert pairs.higher.size == pairs.lower.size == pairs.weight.size > 0
    masked = np.where(valid, y, np.nan)
    for round_ in range(3):
        s = np.random.default_rng(round_).normal(size=y.size)
        g, h = pairs.gradients(s)
        g_ref, h_ref = _lambdarank_by_pairs(s, masked, offsets)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-12)
        assert (g[offsets[0] : offsets[1]] == 0).all()


def test_lambdarank_pairs_honour_sigma_and_label_gain() -> None:
    """sigma scales the scores inside the sigmoid and the gradients outside it; a label
    gain table replaces 2^l - 1 (FAMOL passes the ranker's own)."""
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 10, 20)
    offsets = np.r_[0, np.cumsum(sizes)]
    s = rng.normal(size=offsets[-1])
    y = rng.choice([0, 1, 2, 3], size=offsets[-1]).astype(float)
    table = np.array([0.0, 2.0, 5.0, 9.0])
    sigma = 2.5
    g, h = LambdaRankPairs.build(y, offsets, label_gain=table).gradients(s, sigma)
    g_ref, h_ref = _lambdarank_by_pairs(sigma * s, y, offsets, row_gain=table[y.astype(int)])
    np.testing.assert_allclose(g, sigma * g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, sigma**2 * h_ref, rtol=1e-10, atol=1e-12)
    # No rows, or no labels: no pairs and zero gradients.
    empty = LambdaRankPairs.build(np.zeros(0), np.array([0]))
    assert empty.higher.size == 0 and empty.gradients(np.zeros(0))[0].shape == (0,)
    unlabelled = LambdaRankPairs.build(np.full(5, np.nan), np.array([0, 5]))
    assert not unlabelled.gradients(np.arange(5.0))[0].any()


def test_lambdarank_gradients_take_a_gain_per_row() -> None:
    """Clicks weighted by inverse propensity: pairs from the clicks, gains from the weights."""
    rng = np.random.default_rng(2)
    sizes = rng.integers(2, 11, 40)
    offsets = np.r_[0, np.cumsum(sizes)]
    s = rng.normal(size=offsets[-1])
    click = (rng.random(offsets[-1]) < 0.3).astype(float)
    weight = np.where(click > 0, 1.0 / rng.uniform(0.1, 1.0, click.size), 0.0)
    g, h = lambdarank_gradients(s, click, offsets, gain=weight)
    g_ref, h_ref = _lambdarank_by_pairs(s, click, offsets, row_gain=weight)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-12)
    # Gains equal to the label gain table give the table's gradients.
    same, _ = lambdarank_gradients(s, click, offsets, gain=click.copy())
    np.testing.assert_allclose(same, lambdarank_gradients(s, click, offsets)[0])


@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_famol_objective_matches_the_engines_lambdarank_on_single_source(engine: str) -> None:
    """alpha = 0 (pure LLM loss) through the custom objective vs the engine's own LambdaMART."""
    X, y, qid = make_ranking(n_queries=150, seed=3)
    Xt, yt, qt = make_ranking(n_queries=60, seed=4)
    gbdt = LambdaMARTConfig(
        engine=engine, n_estimators=60, early_stopping_rounds=None, min_child_samples=5
    )
    famol = FAMOLRanker(FAMOLConfig(centre=50.0, slope=5.0, gbdt=gbdt))  # alpha ~ 0 everywhere
    famol.fit(X, np.full(y.shape, np.nan), y, qid=qid, freq=np.zeros(y.shape))
    ours = np.nanmean(ndcg_at_k(famol.predict(Xt), yt, qid=qt, k=10))
    ref = LambdaMARTRanker(gbdt).fit(X, y, qid=qid).predict(Xt)
    theirs = np.nanmean(ndcg_at_k(ref, yt, qid=qt, k=10))
    assert abs(ours - theirs) < 0.03
    assert famol.alpha(np.array([0.0, 1e6])).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_custom_objective_hook_sees_exactly_the_rows_the_engine_trains_on() -> None:
    X, y, qid = make_ranking(n_queries=40, seed=6)
    seen: list[np.ndarray] = []

    def objective(rows: np.ndarray):
        seen.append(rows)
        offsets = np.r_[0, np.flatnonzero(np.diff(qid[rows])) + 1, rows.size]
        labels = y[rows].astype(float)
        return lambda scores: lambdarank_gradients(scores, labels, offsets)

    ranker = LambdaMARTRanker(
        n_estimators=30, early_stopping_rounds=5, min_child_samples=5, min_validation_queries=0
    ).fit(X, y, qid=qid, objective=objective)
    [rows] = seen
    # The early-stopping holdout (4 of 40 queries) is out of the engine's rows.
    assert 0 < np.unique(qid).size - np.unique(qid[rows]).size == 4
    assert "valid" in ranker.evals_result_
    # Cross-validated rounds: one call per fold, then one for the refit on every row.
    seen.clear()
    LambdaMARTRanker(n_estimators=20, early_stopping_rounds=5, min_child_samples=5, cv_folds=3).fit(
        X, y, qid=qid, objective=objective
    )
    assert len(seen) == 4 and seen[-1].size == y.size
    assert sum(r.size for r in seen[:3]) == 2 * y.size
    with pytest.raises(ConfigError, match="one process"):
        LambdaMARTRanker().fit(X, y, qid=qid, objective=objective, position=np.ones(y.size))


@pytest.mark.parametrize("engine", ["lightgbm", "xgboost"])
def test_famol_honours_the_rankers_engine_and_early_stopping(engine: str) -> None:
    X, y, qid = make_ranking(n_queries=80, seed=7)
    y_click = np.where(np.random.default_rng(1).random(y.size) < 0.6, y, np.nan)
    freq = np.repeat(np.arange(80) % 40, np.bincount(qid))
    gbdt = LambdaMARTConfig(
        engine=engine, n_estimators=300, learning_rate=0.3, early_stopping_rounds=5,
        min_child_samples=5, min_validation_queries=0,
    )  # fmt: skip
    famol = FAMOLRanker(FAMOLConfig(gbdt=gbdt)).fit(X, y_click, y, qid=qid, freq=freq)
    assert famol.ranker_.engine_ == engine
    assert "valid" in famol.ranker_.evals_result_
    assert famol.best_iteration_ < 300
    assert np.nanmean(ndcg_at_k(famol.predict(X), y, qid=qid, k=10)) > 0.7
    with pytest.raises(ConfigError, match=r"famol\.mode"):
        FAMOLConfig(mode="mixing")


def test_famol_label_mixing_and_data_scheduling_run() -> None:
    X, y, qid = make_ranking(n_queries=60, seed=5)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    y_click = np.where(np.random.default_rng(0).random(y.size) < 0.5, y, np.nan)
    freq = np.repeat(np.arange(60) % 30, np.bincount(qid))
    gbdt = LambdaMARTConfig(n_estimators=20, early_stopping_rounds=None, min_child_samples=5)
    mix = FAMOLRanker(FAMOLConfig(mode="label_mixing", gbdt=gbdt)).fit(
        frame, y_click, y, qid=qid, freq=freq
    )
    assert np.isfinite(mix.predict(frame)).all()
    for order in ("llm_then_click", "click_then_llm"):
        ds = DataSchedulingRanker(
            SchedulingConfig(order=order, stage1_rounds=10, stage2_rounds=5, gbdt=gbdt)
        )
        ds.fit(frame, y_click, y, qid=qid, freq=freq)
        assert ds.ranker_.best_iteration_ == 15
    with pytest.raises(ConfigError):
        SchedulingConfig(order="random")


def test_gate_hierarchy_suggests_rebuilds_parses_and_round_trips(tmp_path) -> None:
    import optuna

    from hybridrank.ensemble import GateSpace, gate_from_dict, load_gate, parse_gate

    space = GateSpace(centre_range=(0.5, 1.0), slope_range=(1.0, 2.0), bucket_edges=(3,))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for kind, cls in (("sigmoid", SigmoidGate), ("bucket", BucketGate)):
        trial = study.ask()
        gate = cls.suggest(trial, space)
        assert gate.kind == kind
        again = cls.from_params(trial.params, space)
        assert again.params() == gate.params()
        gate.save(tmp_path / f"{kind}.json")
        loaded = load_gate(tmp_path / f"{kind}.json")
        freq = np.array([0.0, 3.0, 4.0, 1e4])
        np.testing.assert_array_equal(loaded(freq), gate(freq))
        assert gate_from_dict(gate.to_dict()).params() == gate.params()
    sigmoid = parse_gate("sigmoid:centre=1.5,slope=2")
    assert sigmoid.params() == {"centre": 1.5, "slope": 2.0}
    f, g = sigmoid.curve()
    assert f[0] == 0 and np.all(np.diff(g) >= 0) and g[-1] > 0.99
    assert parse_gate("bucket:edges=2/20,weights=0.1/0.5/0.9").params()["weights"] == [
        0.1,
        0.5,
        0.9,
    ]
    for bad, match in (("sigmoid:centre", "key=value"), ("sigmoid:slope=x", "not a number"),
                       ("tanh:slope=1", "unknown gate"), ("sigmoid:centre=1,slope=-1", ">= 0"),
                       ("sigmoid:centre=nan,slope=2", "centre must be finite"),
                       ("sigmoid:centre=1,slope=inf", "slope must be finite"),
                       ("sigmoid:centre=1.6", "give slope"), ("bucket:edges=2/20", "give weights"),
                       ("bucket:edges=20/2,weights=.1/.5/.9", "rising")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            parse_gate(bad)
    # A NaN never reaches a saved gate (hybrid.json would not be JSON, every score NaN).
    with pytest.raises(ConfigError, match="finite"):
        SigmoidGate(centre=float("nan"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(Exception, match="not JSON"):
        load_gate(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="kind"):
        gate_from_dict({"params": {}})


def test_stacker_saves_and_loads(tmp_path) -> None:
    rng = np.random.default_rng(2)
    n_q, per = 40, 10
    qid = np.repeat(np.arange(n_q).astype(str), per)
    freq = np.repeat(np.where(np.arange(n_q) % 2 == 0, 100, 0), per)
    y = rng.integers(0, 4, qid.size).astype(float)
    click = np.where(freq > 0, y, rng.normal(size=qid.size))
    llm = np.where(freq > 0, rng.normal(size=qid.size), y)
    fold = np.repeat(np.arange(n_q) % 5, per)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=10)).fit(
        OOFScores("c", click, qid, fold, trained), OOFScores("l", llm, qid, fold, trained),
        freq=freq, labels=y,
    )  # fmt: skip
    stacker.save(tmp_path / "stacker.json")
    loaded = FrequencyGatedStacker.load(tmp_path / "stacker.json")
    assert loaded.get_params()["config"] == stacker.config
    np.testing.assert_allclose(
        loaded.predict(click, llm, qid=qid, freq=freq),
        stacker.predict(click, llm, qid=qid, freq=freq),
    )
    assert loaded.best_value_ == pytest.approx(stacker.best_value_)


def _experts(
    seed: int, n_noisy: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], np.ndarray, list[OOFScores]]:
    """60 queries x 12 rows: ``n_noisy`` noisy experts and one nearly the truth, as OOFScores."""
    rng = np.random.default_rng(seed)
    n_q, per = 60, 12
    qid = np.repeat(np.arange(n_q).astype(str), per)
    freq = np.repeat(rng.integers(0, 50, n_q), per)
    y = rng.integers(0, 4, qid.size).astype(float)
    noisy = [y + rng.normal(0, 3, qid.size) for _ in range(n_noisy)]
    good = y + rng.normal(0, 0.2, qid.size)
    fold = np.repeat(np.arange(n_q) % 5, per)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    oof = [OOFScores(str(i), v, qid, fold, trained) for i, v in enumerate([*noisy, good])]
    return qid, freq, y, noisy, good, oof


def test_stacker_with_an_anchor_expert_tunes_its_weight_and_requires_its_scores(tmp_path) -> None:
    qid, freq, y, noisy, anchor, oof = _experts(3, n_noisy=2)  # the anchor is nearly the truth
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=40, anchors=("a",))).fit(
        oof[0], oof[1], freq=freq, labels=y, anchors=[oof[2]]
    )
    assert len(stacker.anchor_weights_) == 1 and stacker.anchor_weights_[0] > 0.7
    fused = stacker.predict(noisy[0], noisy[1], qid=qid, freq=freq, anchors=[anchor])
    assert np.nanmean(ndcg_at_k(fused, y, qid=qid, k=10)) > 0.9
    with pytest.raises(ValueError, match="anchor"):
        stacker.predict(noisy[0], noisy[1], qid=qid, freq=freq)
    stacker.save(tmp_path / "s.json")
    loaded = FrequencyGatedStacker.load(tmp_path / "s.json")
    np.testing.assert_allclose(
        loaded.predict(noisy[0], noisy[1], qid=qid, freq=freq, anchors=[anchor]), fused
    )
    # A stacker saved before several anchors (one "anchor_weight") still loads.
    old = json.loads((tmp_path / "s.json").read_text())
    old["anchor_weight"] = old.pop("anchor_weights")[0]
    old["config"]["anchor"] = old["config"].pop("anchors")[0]
    (tmp_path / "old.json").write_text(json.dumps(old))
    np.testing.assert_allclose(
        FrequencyGatedStacker.load(tmp_path / "old.json").predict(
            noisy[0], noisy[1], qid=qid, freq=freq, anchors=[anchor]
        ),
        fused,
    )
    with pytest.raises(ConfigError, match="anchor_weight_range"):
        StackerConfig(anchor_weight_range=(0.5, 1.5))
    with pytest.raises(ConfigError, match="twice"):
        StackerConfig(anchors=("a", "a"))
    assert StackerConfig.from_dict({"anchor": None}).anchors == ()
    assert StackerConfig.from_dict({"anchor": "famol"}).anchors == ("famol",)


def test_stacker_with_two_anchors_splits_their_weight() -> None:
    qid, freq, y, noisy, good, oof = _experts(4, n_noisy=3)
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=60, anchors=("bad", "good"))).fit(
        oof[0], oof[1], freq=freq, labels=y, anchors=[oof[2], oof[3]]
    )
    weak, strong = stacker.anchor_weights_
    assert strong > weak and strong > 0.5 and weak + strong <= 1.0 + 1e-12
    fused = stacker.predict(noisy[0], noisy[1], qid=qid, freq=freq, anchors=[noisy[2], good])
    assert np.nanmean(ndcg_at_k(fused, y, qid=qid, k=10)) > 0.9


def test_an_engine_failure_names_the_model_and_the_fold() -> None:
    from hybridrank.ensemble import out_of_fold
    from hybridrank.gbdt import EngineError

    table = pd.DataFrame({C.QID: ["a", "a", "b", "b"], C.FOLD: [0, 0, 1, 1], "x": [1, 2, 3, 4]})

    def fails(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        raise EngineError("lightgbm failed to train: Check failed")

    with pytest.raises(EngineError, match=r"famol, fold 0 \(1 training queries\): lightgbm failed"):
        out_of_fold(table, "famol", fails, progress=False)
