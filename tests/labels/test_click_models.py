from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import (
    DEFAULT_EXAMINATION,
    Collection,
    SimulationConfig,
    bm25_candidates,
    simulate_click_log,
)
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.labels import (
    CLICK_MODELS,
    CascadeModel,
    ClickModel,
    DynamicBayesianNetworkModel,
    PositionBasedModel,
    evaluate_click_model,
    make_click_model,
    split_sessions,
    validate_log,
)

EXAMINATION = np.array([1.0, 0.8, 0.65, 0.5, 0.4, 0.32, 0.25, 0.2, 0.16, 0.13])
GAMMA = 0.9
N_QUERIES, N_DOCS, N_SESSIONS = 20, 10, 30_000


@dataclass(frozen=True)
class World:
    """A simulated log and the parameters that generated it."""

    log: pd.DataFrame
    attractiveness: np.ndarray  # (N_QUERIES, N_DOCS)
    satisfaction: np.ndarray  # (N_QUERIES, N_DOCS)

    def truth(self, table: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        """True values aligned with the rows of a fitted ``qid, docid`` table."""
        q = table[C.QID].str[1:].astype(int).to_numpy()
        d = table[C.DOCID].str.split("_").str[1].astype(int).to_numpy()
        return values[q, d]


def _simulate(kind: str, seed: int) -> World:
    """200 (q, d) pairs shown in a fresh random order each session, so that
    examination and attractiveness are identifiable."""
    rng = np.random.default_rng(seed)
    attr = rng.uniform(0.05, 0.9, size=(N_QUERIES, N_DOCS))
    sat = rng.uniform(0.1, 0.9, size=(N_QUERIES, N_DOCS))
    query = rng.integers(0, N_QUERIES, N_SESSIONS)
    order = np.argsort(rng.random((N_SESSIONS, N_DOCS)), axis=1)
    a, s = attr[query[:, None], order], sat[query[:, None], order]
    if kind == "pbm":
        clicks = rng.random(a.shape) < EXAMINATION[None, :] * a
    elif kind == "cascade":  # strict: stop at the first click
        attractive = rng.random(a.shape) < a
        clicks = attractive & (np.cumsum(attractive, axis=1) == 1)
    else:  # dbn
        clicks = np.zeros(a.shape, dtype=bool)
        examining = np.ones(N_SESSIONS, dtype=bool)
        for r in range(N_DOCS):
            clicks[:, r] = examining & (rng.random(N_SESSIONS) < a[:, r])
            satisfied = clicks[:, r] & (rng.random(N_SESSIONS) < s[:, r])
            examining &= ~satisfied & (rng.random(N_SESSIONS) < GAMMA)
    sess, rank = np.indices(order.shape)
    q = query[sess].ravel().astype(str)
    log = pd.DataFrame(
        {
            C.SESSION_ID: sess.ravel(),
            C.TS: 0.0,
            C.QID: np.char.add("q", q),
            C.DOCID: np.char.add(np.char.add("d", q), np.char.add("_", order.ravel().astype(str))),
            C.POSITION: (rank.ravel() + 1).astype(np.int16),
            C.CLICK: clicks.ravel().astype(np.int8),
            C.DWELL_S: np.nan,
        }
    )
    return World(log=log, attractiveness=attr, satisfaction=sat)


@pytest.fixture(scope="module")
def pbm_world() -> World:
    return _simulate("pbm", seed=0)


@pytest.fixture(scope="module")
def cascade_world() -> World:
    return _simulate("cascade", seed=1)


@pytest.fixture(scope="module")
def dbn_world() -> World:
    return _simulate("dbn", seed=2)


def _log(rows: list[tuple[int, str, str, int, int]]) -> pd.DataFrame:
    """A small log from ``(session, qid, docid, position, click)`` rows."""
    frame = pd.DataFrame(rows, columns=[C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK])
    frame[C.TS] = 0.0
    frame[C.DWELL_S] = np.nan
    return frame[list(C.IMPRESSION_COLUMNS)]


# --------------------------------------------------------------------------- recovery


def test_pbm_recovers_examination_and_attractiveness(pbm_world: World) -> None:
    model = PositionBasedModel().fit(pbm_world.log)
    assert model.examination_.shape == (10,)
    assert model.examination_[0] == 1.0
    assert np.abs(model.examination_ - EXAMINATION).max() < 0.03
    table = model.attractiveness_
    assert list(table.columns) == [C.QID, C.DOCID, "attractiveness", "impressions", "clicks"]
    assert len(table) == N_QUERIES * N_DOCS
    assert table["impressions"].sum() == len(pbm_world.log)
    assert table["clicks"].sum() == pbm_world.log[C.CLICK].sum()
    truth = pbm_world.truth(table, pbm_world.attractiveness)
    fitted = table["attractiveness"].to_numpy()
    assert np.corrcoef(truth, fitted)[0, 1] > 0.95
    assert np.abs(truth - fitted).mean() < 0.03
    np.testing.assert_allclose(model.relevance(table), fitted)


def test_cascade_recovers_attractiveness(cascade_world: World) -> None:
    model = CascadeModel().fit(cascade_world.log)
    assert model.n_multi_click_sessions_ == 0
    table = model.attractiveness_
    truth = cascade_world.truth(table, cascade_world.attractiveness)
    fitted = table["attractiveness"].to_numpy()
    assert np.corrcoef(truth, fitted)[0, 1] > 0.95
    assert np.abs(truth - fitted).mean() < 0.03
    assert model.examination_[0] == 1.0
    assert np.all(np.diff(model.examination_) < 0)


def test_dbn_recovers_attractiveness_and_satisfaction(dbn_world: World) -> None:
    model = DynamicBayesianNetworkModel(gamma=GAMMA).fit(dbn_world.log)
    table = model.attractiveness_
    a, s = table["attractiveness"].to_numpy(), table["satisfaction"].to_numpy()
    assert np.corrcoef(dbn_world.truth(table, dbn_world.attractiveness), a)[0, 1] > 0.8
    assert np.corrcoef(dbn_world.truth(table, dbn_world.satisfaction), s)[0, 1] > 0.8
    np.testing.assert_allclose(table["relevance"], a * s)
    np.testing.assert_allclose(model.relevance(table), a * s)
    assert model.gamma_ == GAMMA
    assert model.examination_[0] == 1.0
    assert np.all(np.diff(model.examination_) < 0)


def test_dbn_estimates_gamma(dbn_world: World) -> None:
    model = DynamicBayesianNetworkModel(gamma=0.5, fit_gamma=True, n_iter=100).fit(dbn_world.log)
    assert abs(model.gamma_ - GAMMA) < 0.03


def test_pbm_on_the_click_world_log(tiny_collection: Collection) -> None:
    """Integration with the simulator: its PBM curve is recovered, and its
    cascade (several clicks per session) is fitted best by the DBN."""
    candidates = bm25_candidates(tiny_collection)
    config = SimulationConfig(n_sessions=20_000, swap_prob=0.5, seed=0)
    model = PositionBasedModel().fit(simulate_click_log(candidates, config))
    assert np.abs(model.examination_ - np.array(DEFAULT_EXAMINATION)).max() < 0.06

    log = simulate_click_log(candidates, SimulationConfig(n_sessions=10_000, click_model="cascade"))
    train, test = split_sessions(log, seed=1)
    cascade = CascadeModel().fit(train)
    assert cascade.n_multi_click_sessions_ > 0
    dbn = DynamicBayesianNetworkModel().fit(train)
    assert dbn.log_likelihood(test) > cascade.log_likelihood(test)


# --------------------------------------------------------------------------- likelihood, perplexity


def _constant_ctr(train: pd.DataFrame, test: pd.DataFrame) -> tuple[float, np.ndarray]:
    """Held-out log-likelihood and perplexity by rank of a single global CTR."""
    ctr = float(train[C.CLICK].mean())
    click = test[C.CLICK].to_numpy() > 0
    ll2 = np.log2(np.where(click, ctr, 1.0 - ctr))
    by_rank = pd.Series(ll2).groupby(test[C.POSITION].to_numpy()).mean()
    return float(ll2.mean() * np.log(2)), 2.0 ** (-by_rank.to_numpy())


@pytest.mark.parametrize(
    ("world", "best", "others"),
    [
        ("pbm_world", "pbm", ["cascade"]),
        ("cascade_world", "cascade", ["pbm"]),
        ("dbn_world", "dbn", ["pbm", "cascade"]),
    ],
)
def test_true_family_has_the_best_held_out_likelihood(
    world: str, best: str, others: list[str], request: pytest.FixtureRequest
) -> None:
    train, test = split_sessions(request.getfixturevalue(world).log, test_size=0.2, seed=0)
    scores = {
        name: make_click_model(name).fit(train).log_likelihood(test) for name in [best, *others]
    }
    constant_ll, _ = _constant_ctr(train, test)
    for name in others:
        assert scores[best] > scores[name], scores
    assert scores[best] > constant_ll
    assert all(s < 0 for s in scores.values())


def test_perplexity_beats_constant_ctr(pbm_world: World) -> None:
    train, test = split_sessions(pbm_world.log, seed=0)
    model = PositionBasedModel().fit(train)
    result = evaluate_click_model(model, test)
    by_rank = np.asarray(result["perplexity_by_rank"])
    assert by_rank.shape == (10,)
    assert np.all(np.isfinite(by_rank)) and np.all(by_rank >= 1)
    np.testing.assert_allclose(by_rank, model.perplexity(test))
    assert result["perplexity"] == pytest.approx(by_rank.mean())
    assert result["log_likelihood"] == pytest.approx(model.log_likelihood(test))
    _, constant = _constant_ctr(train, test)
    assert result["perplexity"] < constant.mean()
    assert np.all(by_rank < constant)
    assert 1 <= model.perplexity_ < constant.mean()


@pytest.mark.parametrize("name", sorted(CLICK_MODELS))
def test_click_probabilities_are_a_distribution_over_click_patterns(
    name: str, dbn_world: World
) -> None:
    """Per session, the conditional probabilities multiply to P(pattern): summed
    over all 2^3 patterns this is 1, and the marginals are P(C_r = 1)."""
    model = make_click_model(name).fit(dbn_world.log.iloc[:3000])
    patterns = np.array(list(itertools.product([0, 1], repeat=3)))
    rows = [
        (i, "q3", f"d3_{d}", r + 1, int(c))
        for i, pattern in enumerate(patterns)
        for r, (d, c) in enumerate(zip([4, 0, 7], pattern, strict=True))
    ]
    log = _log(rows)
    cond = model.click_probabilities(log).reshape(8, 3)
    prob = np.prod(np.where(patterns > 0, cond, 1 - cond), axis=1)
    # Impossible patterns (two clicks under the cascade) have P = 0 exactly here;
    # the likelihood clips them to 1e-6.
    assert prob.sum() == pytest.approx(1.0, abs=1e-9)
    marginal = model.click_probabilities(log, conditional=False).reshape(8, 3)
    np.testing.assert_allclose(marginal[0], prob @ patterns, atol=1e-9)


def test_cascade_golden_values() -> None:
    log = _log(
        [
            (0, "q", "a", 1, 0),
            (0, "q", "b", 2, 1),
            (0, "q", "c", 3, 0),
            (1, "q", "a", 1, 1),
            (1, "q", "b", 2, 0),
            (2, "q", "c", 1, 1),
            (2, "q", "a", 2, 1),
        ]
    )
    model = CascadeModel().fit(log)
    assert model.n_multi_click_sessions_ == 1
    table = model.attractiveness_.set_index(C.DOCID)
    # a: examined in sessions 0 and 1 (session 2 stops at c), first-clicked once;
    # b: examined in session 0 only (session 1 stops at a), clicked;
    # c: examined in session 2 only (session 0 stops at b), clicked.
    assert table.loc["a", "examined"] == 2 and table.loc["a", "clicks"] == 1
    assert table.loc["a", "attractiveness"] == pytest.approx(2 / 4)
    assert table.loc["b", "attractiveness"] == pytest.approx(2 / 3)
    assert table.loc["c", "attractiveness"] == pytest.approx(2 / 3)
    assert model.pair_stats_.set_index(C.DOCID).loc["a", "clicks"] == 2
    cond = model.click_probabilities(log)
    np.testing.assert_allclose(cond, [1 / 2, 2 / 3, 0, 1 / 2, 0, 2 / 3, 0])
    marginal = model.click_probabilities(log, conditional=False)
    np.testing.assert_allclose(marginal[:3], [1 / 2, 1 / 2 * 2 / 3, 1 / 2 * 1 / 3 * 2 / 3])
    # Examination by rank: 1 - attr of the result above, averaged over the sessions.
    np.testing.assert_allclose(model.examination_[:3], [1, (1 / 2 + 1 / 2 + 1 / 3) / 3, 1 / 6])
    assert np.isnan(model.examination_[3:]).all()


# --------------------------------------------------------------------------- determinism, priors


@pytest.mark.parametrize("name", sorted(CLICK_MODELS))
def test_fitting_is_deterministic_and_row_order_invariant(name: str, dbn_world: World) -> None:
    log = dbn_world.log.iloc[:20_000]
    first = make_click_model(name).fit(log)
    second = make_click_model(name).fit(log)
    pd.testing.assert_frame_equal(first.attractiveness_, second.attractiveness_)
    np.testing.assert_array_equal(first.examination_, second.examination_)
    assert first.log_likelihood_ == second.log_likelihood_

    shuffled = log.sample(frac=1.0, random_state=0)
    third = make_click_model(name).fit(shuffled)
    key = [C.QID, C.DOCID]
    pd.testing.assert_frame_equal(
        first.attractiveness_.sort_values(key).reset_index(drop=True),
        third.attractiveness_.sort_values(key).reset_index(drop=True),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        third.click_probabilities(shuffled), first.click_probabilities(log)[shuffled.index]
    )


@pytest.mark.parametrize(("name", "prior"), [("pbm", 0.4), ("cascade", 0.4), ("dbn", 0.4**2)])
def test_unseen_pairs_get_the_prior_mean(name: str, prior: float, pbm_world: World) -> None:
    model = make_click_model(name, prior_alpha=2.0, prior_beta=3.0).fit(pbm_world.log.iloc[:5000])
    pairs = pd.DataFrame({C.QID: ["q0", "unseen", "q0"], C.DOCID: ["nope", "d0_0", "d0_0"]})
    rel = model.relevance(pairs)
    assert rel[0] == pytest.approx(prior) and rel[1] == pytest.approx(prior)
    assert rel[2] != pytest.approx(prior)
    log = _log([(0, "unseen", "x", 1, 0)])
    assert model.click_probabilities(log)[0] == pytest.approx(0.4 * model.examination_[0])


def test_rare_pairs_are_smoothed_away_from_zero_and_one() -> None:
    log = _log([(0, "q", "a", 1, 1), (0, "q", "b", 2, 0), (1, "q", "b", 1, 0), (1, "q", "a", 2, 0)])
    for name in CLICK_MODELS:
        rel = make_click_model(name).fit(log).pair_stats_["relevance"].to_numpy()
        assert np.all((rel > 0) & (rel < 1)), name


# --------------------------------------------------------------------------- inputs and registry


@pytest.mark.parametrize(
    ("column", "value", "row", "match"),
    [
        (C.POSITION, 0, 3, "position"),
        (C.CLICK, 2, 4, "click must be 0 or 1"),
        (C.DOCID, None, 1, "missing value"),
        (C.SESSION_ID, np.nan, 2, "missing value"),
        (C.POSITION, 2.5, 0, "whole number"),
    ],
)
def test_validate_log_names_row_and_column(column: str, value: Any, row: int, match: str) -> None:
    log = _log([(0, "q", "a", 1, 0), (0, "q", "b", 2, 1), (1, "q", "a", 1, 0)] * 2)
    log[C.SESSION_ID] = [0, 0, 1, 2, 2, 3]
    log[column] = log[column].astype(object)
    log.loc[row, column] = value
    with pytest.raises(DataFormatError, match=match) as info:
        validate_log(log, path="clicks.parquet")
    assert info.value.row == row and info.value.column == column
    assert f"row {row}" in str(info.value) and f"column '{column}'" in str(info.value)
    assert str(info.value).startswith("clicks.parquet")
    with pytest.raises(DataFormatError):
        PositionBasedModel().fit(log)


def test_validate_log_structure_errors() -> None:
    log = _log([(0, "q", "a", 1, 0), (0, "q", "b", 2, 1)])
    with pytest.raises(DataFormatError, match=r"lacks columns \['click'\]"):
        validate_log(log.drop(columns=[C.CLICK]))
    duplicated = _log([(0, "q", "a", 1, 0), (0, "q", "b", 1, 1)])
    with pytest.raises(DataFormatError, match="two rows at position") as info:
        validate_log(duplicated)
    assert info.value.row == 1 and info.value.column == C.POSITION
    two_queries = _log([(0, "q", "a", 1, 0), (0, "r", "b", 2, 1)])
    with pytest.raises(DataFormatError, match="one query") as info:
        validate_log(two_queries)
    assert info.value.column == C.QID


def test_rows_below_max_rank_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    log = _log([(0, "q", f"d{p}", p, int(p == 7)) for p in range(1, 13)])
    with caplog.at_level(logging.INFO, logger="hybridrank.labels"):
        kept = validate_log(log, max_rank=5)
    assert len(kept) == 5 and kept[C.POSITION].max() == 5
    assert "dropped 7 of 12 log rows at positions > 5" in caplog.text
    assert validate_log(log) is log
    model = PositionBasedModel(max_rank=5).fit(log)
    assert model.examination_.shape == (5,)
    probs = model.click_probabilities(log)
    assert np.isfinite(probs[:5]).all() and np.isnan(probs[5:]).all()
    assert model.perplexity(log).shape == (5,)


def test_registry_and_factory() -> None:
    assert set(CLICK_MODELS) == {"pbm", "cascade", "dbn"}
    for name, cls in CLICK_MODELS.items():
        model = make_click_model(name, max_rank=5)
        assert isinstance(model, cls) and isinstance(model, ClickModel)
        assert model.max_rank == 5 and cls.name == name
    with pytest.raises(
        ConfigError, match=r"unknown click model 'ubm'.*\['cascade', 'dbn', 'pbm'\]"
    ):
        make_click_model("ubm")
    with pytest.raises(ConfigError, match="gamma"):
        make_click_model("pbm", gamma=0.5)


def test_parameter_and_state_errors() -> None:
    log = _log([(0, "q", "a", 1, 1)])
    with pytest.raises(RuntimeError, match="not fitted"):
        PositionBasedModel().relevance(pd.DataFrame({C.QID: ["q"], C.DOCID: ["a"]}))
    with pytest.raises(ConfigError, match="max_rank"):
        CascadeModel(max_rank=0).fit(log)
    with pytest.raises(ConfigError, match="gamma"):
        DynamicBayesianNetworkModel(gamma=0.0).fit(log)
    with pytest.raises(ConfigError, match="prior"):
        PositionBasedModel(prior_alpha=0.0).fit(log)
    with pytest.raises(DataFormatError, match="nothing to fit"):
        PositionBasedModel(max_rank=1).fit(_log([(0, "q", "a", 2, 1)]))
    model = PositionBasedModel().fit(log)
    with pytest.raises(DataFormatError, match="lack columns"):
        model.relevance(pd.DataFrame({C.QID: ["q"]}))


def test_split_sessions_is_seeded_and_disjoint(pbm_world: World) -> None:
    log = pbm_world.log.iloc[:10_000]
    train, test = split_sessions(log, test_size=0.2, seed=0)
    train_s, test_s = set(train[C.SESSION_ID]), set(test[C.SESSION_ID])
    assert not train_s & test_s
    assert train_s | test_s == set(log[C.SESSION_ID])
    assert len(test_s) == 200 and len(train) + len(test) == len(log)
    again, _ = split_sessions(log, test_size=0.2, seed=0)
    pd.testing.assert_frame_equal(train, again)
    other, _ = split_sessions(log, test_size=0.2, seed=1)
    assert set(other[C.SESSION_ID]) != train_s
    with pytest.raises(ValueError, match="test_size"):
        split_sessions(log, test_size=1.0)
