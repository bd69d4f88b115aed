from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.evaluate import bootstrap_ci, ips_click_metric, ips_click_report


def _log(rows: list[tuple[int, str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK])


def _golden() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    log = _log(
        [
            # s1: a clicked at 1, c clicked at 3
            (1, "q1", "a", 1, 1),
            (1, "q1", "b", 2, 0),
            (1, "q1", "c", 3, 1),
            # s2: b clicked at 2
            (2, "q1", "c", 1, 0),
            (2, "q1", "b", 2, 1),
            (2, "q1", "a", 3, 0),
            # s3: no click, not scored
            (3, "q1", "a", 1, 0),
            (3, "q1", "b", 2, 0),
            # s4: x (not in the score table) clicked at 1, y clicked at 2
            (4, "q2", "x", 1, 1),
            (4, "q2", "y", 2, 1),
        ]
    )
    scores = pd.DataFrame(
        {
            C.QID: ["q1", "q1", "q1", "q2", "q2"],
            C.DOCID: ["a", "b", "c", "y", "z"],
            # q1 ranks c, then a and b tied (pessimistic: both at rank 3)
            "score": [1.0, 1.0, 2.0, 0.5, 0.5],
        }
    )
    examination = np.array([1.0, 0.5, 0.25])
    return log, scores, examination


def test_golden_example() -> None:
    log, scores, exam = _golden()
    res = ips_click_metric(log, scores, exam, k=10)
    # s1: a at rank 3 (tie, pessimistic), weight 1 -> 1/log2(4) = 0.5;
    #     c at rank 1, weight 1/0.25 = 4 -> 4/log2(2) = 4.   total 4.5
    # s2: b at rank 3, weight 2 -> 2/log2(4) = 1.              total 1.0
    # s4: x unranked -> 0; y tied with z, rank 2, weight 2 -> 2/log2(3)
    s4 = 2 / math.log2(3)
    assert res.per_session.to_dict() == pytest.approx({1: 4.5, 2: 1.0, 4: s4})
    assert res.per_query.to_dict() == pytest.approx({"q1": 2.75, "q2": s4})
    assert res.mean == pytest.approx((2.75 + s4) / 2)
    assert res.n_sessions == 3 and res.n_queries == 2
    assert res.n_clicks == 5 and res.n_unranked_clicks == 1
    assert res.sessions_per_query.to_dict() == {"q1": 2, "q2": 1}
    assert res.name == "ips_dcg@10" and res.per_query.index.name == C.QID

    # Cut-off 2: the rank-3 documents of q1 add nothing.
    cut = ips_click_metric(log, scores, exam, k=2)
    assert cut.per_session.to_dict() == pytest.approx({1: 4.0, 2: 0.0, 4: s4})

    # Clipping: a propensity of 0.25 under clip=0.5 counts as 0.5 (weight 2).
    clipped = ips_click_metric(log, scores, exam, k=10, clip=0.5)
    assert clipped.per_session[1] == pytest.approx(0.5 + 2.0)


def test_report_per_bucket() -> None:
    log, scores, exam = _golden()
    table = scores.rename(columns={"score": "sys_a"}).assign(sys_b=[0.0, 1.0, 2.0, 1.0, 0.0])
    bucket_of = pd.Series({"q1": "head", "q2": "tail"})
    report = ips_click_report(
        log, table, ["sys_a", "sys_b"], exam, bucket_of=bucket_of, n_bootstrap=200
    )
    assert list(report["system"]) == ["sys_a"] * 3 + ["sys_b"] * 3
    assert list(report[C.BUCKET]) == ["head", "tail", "all"] * 2
    assert set(report["evaluation"]) == {"click-based, position-debiased (IPS)"}
    row = report.set_index(["system", C.BUCKET]).loc[("sys_a", "all")]
    expected = ips_click_metric(log, scores, exam).per_query
    assert row["ips_dcg@10"] == pytest.approx(expected.mean())
    low, high = bootstrap_ci(expected.to_numpy(), n_resamples=200, rng=0)
    assert (row["ips_dcg@10_ci_low"], row["ips_dcg@10_ci_high"]) == pytest.approx((low, high))
    assert row["n"] == 2 and row["n_sessions"] == 3
    head_b = report.set_index(["system", C.BUCKET]).loc[("sys_b", "head")]
    # sys_b on q1: c 1st, b 2nd, a 3rd; s1 = 1/2 + 4, s2 = 2/log2(3)
    assert head_b["ips_dcg@10"] == pytest.approx((4.5 + 2 / math.log2(3)) / 2)

    overall = ips_click_report(log, table, ["sys_a"], exam, n_bootstrap=50)
    assert list(overall[C.BUCKET]) == ["all"]


def test_validation() -> None:
    log, scores, exam = _golden()
    with pytest.raises(DataFormatError, match="'position'"):
        ips_click_metric(log.drop(columns=[C.POSITION]), scores, exam)
    with pytest.raises(DataFormatError, match="'score'"):
        ips_click_metric(log, scores.assign(score=[1.0, np.nan, 2.0, 0.5, 0.5]), exam)
    with pytest.raises(DataFormatError, match="'sys'"):
        ips_click_report(log, scores.assign(sys=np.nan), ["sys"], exam)
    with pytest.raises(DataFormatError, match="'nope'"):
        ips_click_report(log, scores, ["nope"], exam)
    with pytest.raises(ValueError, match=r"positions 1\.\.2"):
        ips_click_metric(log, scores, exam[:2])
    with pytest.raises(DataFormatError, match="'click'"):
        ips_click_metric(log.assign(click=2), scores, exam)
    with pytest.raises(DataFormatError, match="scored twice"):
        ips_click_metric(log, pd.concat([scores, scores.iloc[:1]]), exam)
    with pytest.raises(ValueError, match="clip"):
        ips_click_metric(log, scores, exam, clip=0.0)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class _Simulation:
    log: pd.DataFrame
    exam: np.ndarray
    attr: np.ndarray
    p_click: np.ndarray
    rankers: dict[str, np.ndarray]


def _simulate(rng: np.random.Generator) -> _Simulation:
    """A position-based click model: P(click at p) = exam[p] * attr(d), logged order fixed per query."""
    n_q, n_d, n_s = 60, 10, 40
    exam = 1.0 / np.arange(1, n_d + 1)
    attr = rng.choice([0.05, 0.2, 0.5, 0.9], size=(n_q, n_d))
    logged = attr + rng.normal(0, 0.3, (n_q, n_d))
    shown = np.argsort(-logged, axis=1)
    q = np.repeat(np.arange(n_q), n_s)
    docs = shown[q]
    clicks = rng.random(docs.shape) < exam * np.take_along_axis(attr[q], docs, axis=1)
    log = pd.DataFrame(
        {
            C.SESSION_ID: np.repeat(np.arange(q.size), n_d),
            C.QID: np.repeat(q, n_d),
            C.DOCID: docs.ravel(),
            C.POSITION: np.tile(np.arange(1, n_d + 1), q.size),
            C.CLICK: clicks.ravel().astype(int),
        }
    )
    p_click = 1 - np.prod(1 - exam * np.take_along_axis(attr, shown, axis=1), axis=1)
    rankers = {
        "ideal": attr + rng.normal(0, 1e-3, (n_q, n_d)),
        "logged": logged,
        "reversed": -logged,
        "random": rng.random((n_q, n_d)),
        "noisy": attr + rng.normal(0, 0.6, (n_q, n_d)),
        "noisier": attr + rng.normal(0, 1.0, (n_q, n_d)),
    }
    return _Simulation(log=log, exam=exam, attr=attr, p_click=p_click, rankers=rankers)


def _score_table(s: np.ndarray) -> pd.DataFrame:
    n_q, n_d = s.shape
    return pd.DataFrame(
        {
            C.QID: np.repeat(np.arange(n_q), n_d),
            C.DOCID: np.tile(np.arange(n_d), n_q),
            "score": s.ravel(),
        }
    )


def test_simulated_pbm_is_debiased(rng: np.random.Generator) -> None:
    sim = _simulate(rng)
    log, exam, attr, p_click, rankers = sim.log, sim.exam, sim.attr, sim.p_click, sim.rankers
    disc = 1 / np.log2(np.arange(2, attr.shape[1] + 2))

    truth, expected, ips, uniform = {}, {}, {}, {}
    for name, s in rankers.items():
        # Pessimistic rank, as the metric: the number of candidates scored >= s.
        rank0 = (s[:, None, :] >= s[:, :, None]).sum(axis=2) - 1
        dcg = (attr * disc[rank0]).sum(axis=1)
        truth[name] = dcg.mean()
        # Only clicked sessions count: per query, DCG / P(at least one click).
        expected[name] = (dcg / p_click).mean()
        table = _score_table(s)
        ips[name] = ips_click_metric(log, table, exam).mean
        uniform[name] = ips_click_metric(log, table, np.ones_like(exam)).mean

    assert ips["ideal"] > ips["logged"] > ips["reversed"]
    assert ips["ideal"] > ips["random"]
    for name in rankers:
        assert ips[name] == pytest.approx(expected[name], rel=0.05), name

    names = list(rankers)
    t = np.array([truth[n] for n in names])
    corr_true = np.corrcoef(t, [ips[n] for n in names])[0, 1]
    corr_uniform = np.corrcoef(t, [uniform[n] for n in names])[0, 1]
    assert corr_true > 0.99
    assert corr_true > corr_uniform
    # Without debiasing the logging ranker wins: the position bias the IPS weights remove.
    assert uniform["logged"] > uniform["ideal"]
