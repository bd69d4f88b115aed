from __future__ import annotations

import itertools

import ir_measures
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_measures import ERR, RR, P, nDCG

from hybridrank.errors import DataFormatError
from hybridrank.evaluate import _metrics as metrics_module
from hybridrank.evaluate import (
    dcg_at_k,
    err_at_k,
    mrr,
    ndcg_at_k,
    offsets_from_qid,
    parse_metric,
    precision_at_k,
)

# ---------------------------------------------------------------- golden values


def test_dcg_golden_linear_and_exp() -> None:
    # Ranked labels by score: [3, 2, 0, 1].
    scores = [0.9, 0.8, 0.1, 0.5]
    labels = [3, 2, 1, 0]
    lin = 3 / 1 + 2 / np.log2(3) + 0 / 2 + 1 / np.log2(5)
    exp = 7 / 1 + 3 / np.log2(3) + 0 / 2 + 1 / np.log2(5)
    assert dcg_at_k(scores, labels, offsets=[0, 4], gain="linear")[0] == pytest.approx(
        lin, abs=1e-12
    )
    assert dcg_at_k(scores, labels, offsets=[0, 4])[0] == pytest.approx(exp, abs=1e-12)
    # Cut-off 2 keeps the first two ranks only.
    assert dcg_at_k(scores, labels, offsets=[0, 4], k=2)[0] == pytest.approx(7 + 3 / np.log2(3))


def test_ndcg_golden() -> None:
    scores = [0.1, 0.2, 0.3]
    labels = [2, 1, 0]  # ranked labels [0, 1, 2]; ideal [2, 1, 0]
    dcg = 0 + 1 / np.log2(3) + 3 / 2
    idcg = 3 + 1 / np.log2(3) + 0
    assert ndcg_at_k(scores, labels, offsets=[0, 3])[0] == pytest.approx(dcg / idcg, abs=1e-12)
    dcg_l = 0 + 1 / np.log2(3) + 2 / 2
    idcg_l = 2 + 1 / np.log2(3)
    assert ndcg_at_k(scores, labels, offsets=[0, 3], gain="linear")[0] == pytest.approx(
        dcg_l / idcg_l, abs=1e-12
    )
    # At k=1 the top row has label 0: NDCG@1 is 0.
    assert ndcg_at_k(scores, labels, offsets=[0, 3], k=1)[0] == 0.0


def test_mrr_err_precision_golden() -> None:
    scores = [4.0, 3.0, 2.0, 1.0]
    labels = [0, 0, 2, 1]
    assert mrr(scores, labels, offsets=[0, 4])[0] == pytest.approx(1 / 3)
    assert mrr(scores, labels, offsets=[0, 4], k=2)[0] == 0.0
    assert precision_at_k(scores, labels, offsets=[0, 4], k=4)[0] == pytest.approx(0.5)
    # A query with fewer rows than k still divides by k.
    assert precision_at_k(scores, labels, offsets=[0, 4], k=8)[0] == pytest.approx(2 / 8)
    # ERR with max grade 2: R = (2^g - 1) / 4 -> ranks 3 (R=3/4) and 4 (R=1/4).
    err = (1 / 3) * 0.75 + (1 / 4) * 0.25 * (1 - 0.75)
    assert err_at_k(scores, labels, offsets=[0, 4], max_grade=2)[0] == pytest.approx(err, abs=1e-12)


def test_no_relevant_queries_are_nan_for_every_metric() -> None:
    scores = [1.0, 2.0, 3.0, 1.0, 2.0]
    labels = [0, 0, 0, 1, 0]
    qid = ["a", "a", "a", "b", "b"]
    for name in ("ndcg@10", "dcg@10", "mrr", "err@10", "p@5"):
        values = parse_metric(name)(scores, labels, qid=qid)
        assert np.isnan(values[0]), name
        assert not np.isnan(values[1]), name


def test_ties_broken_by_row_order() -> None:
    scores = [1.0, 1.0, 1.0]
    assert mrr(scores, [1, 0, 0], offsets=[0, 3])[0] == 1.0
    assert mrr(scores, [0, 0, 1], offsets=[0, 3])[0] == pytest.approx(1 / 3)
    # Also when the tie straddles the cut-off (argpartition path).
    s = np.array([5.0, 2.0, 2.0, 2.0, 1.0, 0.0])
    y = np.array([0, 0, 0, 1, 0, 0])
    assert precision_at_k(s, y, offsets=[0, 6], k=3)[0] == 0.0
    assert precision_at_k(s, y, offsets=[0, 6], k=4)[0] == 0.25


def test_qid_must_be_contiguous() -> None:
    with pytest.raises(DataFormatError, match="not contiguous"):
        offsets_from_qid(["a", "a", "b", "a"])
    assert offsets_from_qid(["b", "b", "a"]).tolist() == [0, 2, 3]


def test_parse_metric_errors() -> None:
    assert parse_metric("NDCG@5").name == "ndcg@5"
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric("map@10")
    with pytest.raises(ValueError, match="positive integer"):
        parse_metric("ndcg@0")
    with pytest.raises(ValueError, match="cut-off"):
        parse_metric("p")


def test_nan_scores_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k([np.nan, 1.0], [1, 0], offsets=[0, 2])


# ------------------------------------------------------ cross-check, ir_measures


def _random_grouped(rng: np.random.Generator, n_q: int = 300):
    sizes = rng.integers(1, 40, n_q)
    qid = np.repeat(np.arange(n_q), sizes)
    scores = rng.normal(size=qid.size)  # continuous: no ties
    labels = rng.integers(0, 4, qid.size) * (rng.random(qid.size) < 0.5)
    return qid, scores, labels


def _ir_measures(measures, qid, scores, labels):
    qrels = [
        ir_measures.Qrel(str(q), f"d{i}", int(y))
        for i, (q, y) in enumerate(zip(qid, labels, strict=True))
    ]
    run = [
        ir_measures.ScoredDoc(str(q), f"d{i}", float(s))
        for i, (q, s) in enumerate(zip(qid, scores, strict=True))
    ]
    out: dict[str, dict[str, float]] = {}
    for m in ir_measures.iter_calc(measures, qrels, run):
        out.setdefault(str(m.measure), {})[m.query_id] = m.value
    return out


def test_cross_check_against_ir_measures(rng: np.random.Generator) -> None:
    qid, scores, labels = _random_grouped(rng)
    exp_gain = nDCG(gains={0: 0, 1: 1, 2: 3, 3: 7})
    measures = [nDCG @ 10, exp_gain @ 10, nDCG, RR, P @ 5, P @ 20]
    # One call per measure: ir_measures mixes up nDCG variants with different
    # gains when they share one call (the linear one sometimes gets the other's values).
    ref: dict[str, dict[str, float]] = {}
    for m in measures:
        ref.update(_ir_measures([m], qid, scores, labels))
    ours = {
        str(nDCG @ 10): ndcg_at_k(scores, labels, qid=qid, k=10, gain="linear"),
        str(exp_gain @ 10): ndcg_at_k(scores, labels, qid=qid, k=10, gain="exp"),
        str(nDCG): ndcg_at_k(scores, labels, qid=qid, gain="linear"),
        str(RR): mrr(scores, labels, qid=qid),
        str(P @ 5): precision_at_k(scores, labels, qid=qid, k=5),
        str(P @ 20): precision_at_k(scores, labels, qid=qid, k=20),
    }
    qids = np.unique(qid)
    for name, values in ours.items():
        theirs = np.array([ref[name].get(str(q), 0.0) for q in qids])
        has_rel = ~np.isnan(values)
        assert has_rel.sum() > 200
        np.testing.assert_allclose(
            values[has_rel], theirs[has_rel], atol=1e-9, rtol=0, err_msg=name
        )


def test_err_against_gdeval_and_reference_loop(rng: np.random.Generator) -> None:
    qid, scores, labels = _random_grouped(rng, n_q=120)
    ours = err_at_k(scores, labels, qid=qid, k=20, max_grade=4)
    # gdeval (through ir_measures) prints 5 decimals.
    ref = _ir_measures([ERR @ 20], qid, scores, labels)[str(ERR @ 20)]
    qids = np.unique(qid)
    ok = ~np.isnan(ours)
    theirs = np.array([ref.get(str(q), 0.0) for q in qids])
    np.testing.assert_allclose(ours[ok], theirs[ok], atol=1e-5)
    # A plain loop, written from the definition, agrees to 1e-12.
    loop = []
    for q in qids:
        order = np.argsort(-scores[qid == q], kind="stable")[:20]
        g = labels[qid == q][order]
        p, total = 1.0, 0.0
        for r, grade in enumerate(g, start=1):
            stop = (2.0**grade - 1) / 2.0**4
            total += p * stop / r
            p *= 1 - stop
        loop.append(total)
    np.testing.assert_allclose(ours[ok], np.array(loop)[ok], atol=1e-12)


@pytest.mark.filterwarnings("ignore::Warning")
def test_ndcg_against_ranx(rng: np.random.Generator) -> None:
    from ranx import Qrels, Run, evaluate

    qid, scores, labels = _random_grouped(rng, n_q=100)
    qrels = Qrels(
        {
            str(q): {f"d{i}": int(y) for i in np.flatnonzero(qid == q) if (y := labels[i]) > 0}
            for q in np.unique(qid)
        }
    )
    run = Run(
        {
            str(q): {f"d{i}": float(scores[i]) for i in np.flatnonzero(qid == q)}
            for q in np.unique(qid)
        }
    )
    ours = ndcg_at_k(scores, labels, qid=qid, k=10, gain="exp")
    per_q = evaluate(qrels, run, "ndcg_burges@10", return_mean=False)
    theirs = dict(zip(run.keys(), per_q, strict=True))
    for q, value in zip(np.unique(qid), ours, strict=True):
        if not np.isnan(value):
            assert value == pytest.approx(theirs[str(q)], abs=1e-9)


# --------------------------------------------------------------- laws (hypothesis)

grouped = st.integers(min_value=1, max_value=8).flatmap(
    lambda n_q: st.lists(st.integers(min_value=1, max_value=25), min_size=n_q, max_size=n_q)
)


@settings(max_examples=60, deadline=None)
@given(sizes=grouped, seed=st.integers(0, 10_000), k=st.integers(1, 30))
def test_ndcg_in_unit_interval(sizes: list[int], seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    scores = rng.normal(size=n).round(1)  # rounding creates ties on purpose
    labels = rng.integers(0, 5, n)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    for gain in ("exp", "linear"):
        v = ndcg_at_k(scores, labels, offsets=offsets, k=k, gain=gain)
        v = v[~np.isnan(v)]
        assert np.all((v >= 0) & (v <= 1 + 1e-12))
    e = err_at_k(scores, labels, offsets=offsets, k=k)
    assert np.all((e[~np.isnan(e)] >= 0) & (e[~np.isnan(e)] <= 1))


@settings(max_examples=60, deadline=None)
@given(sizes=grouped, seed=st.integers(0, 10_000), k=st.integers(1, 30))
def test_invariant_to_row_order_within_query(sizes: list[int], seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    scores = rng.permutation(n).astype(float)  # distinct scores: order is well defined
    labels = rng.integers(0, 4, n)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    perm = np.concatenate(
        [rng.permutation(np.arange(a, b)) for a, b in itertools.pairwise(offsets)]
    )
    for name in (f"ndcg@{k}", f"err@{k}", "mrr", f"p@{k}", f"dcg_lin@{k}"):
        m = parse_metric(name)
        np.testing.assert_array_equal(
            m(scores, labels, offsets=offsets), m(scores[perm], labels[perm], offsets=offsets)
        )


def test_flat_path_matches_padded_path(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    qid, scores, labels = _random_grouped(rng, n_q=80)
    scores = scores.round(1)  # ties too
    expected = {k: ndcg_at_k(scores, labels, qid=qid, k=k) for k in (1, 5, 10, None)}
    monkeypatch.setattr(metrics_module, "_MAX_PAD_RATIO", -1e9)
    for k, want in expected.items():
        np.testing.assert_array_equal(ndcg_at_k(scores, labels, qid=qid, k=k), want)


def test_empty_input() -> None:
    assert ndcg_at_k([], [], offsets=[0], k=10).shape == (0,)
