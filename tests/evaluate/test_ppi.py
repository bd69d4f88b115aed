from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.errors import DataFormatError
from hybridrank.evaluate import ndcg_at_k, per_query_metric, ppi_mean, ppi_per_bucket

Z95 = NormalDist().inv_cdf(0.975)

GOLD = [0.5, 0.7, 0.9]
PRED_GOLD = [0.4, 0.7, 1.0]
PRED_UNL = [0.2, 0.6, 0.8, 0.4]


def test_golden_example() -> None:
    est = ppi_mean(GOLD, PRED_GOLD, PRED_UNL)
    # cov(y, f) = (0.2 * 0.3 + 0.2 * 0.3) / 2 = 0.06
    # all 7 predictions: sum f^2 = 2.85, sum f = 4.1 -> var = (2.85 - 4.1^2 / 7) / 6 = 3.14 / 42
    lam = 0.06 / ((1 + 3 / 4) * 3.14 / 42)
    assert est.lam == pytest.approx(lam)
    assert est.lam == pytest.approx(0.458599, abs=1e-6)
    # theta = lam * 0.5 + mean(y) - lam * mean(f_gold) = 0.7 - 0.2 lam
    assert est.estimate == pytest.approx(0.7 - 0.2 * lam)
    # var(f_unl) = 0.2 / 3; rectifier y - lam f has deviations -0.2 + 0.3 lam, 0, 0.2 - 0.3 lam
    var = lam**2 * (0.2 / 3) / 4 + 2 * (0.2 - 0.3 * lam) ** 2 / 2 / 3
    half = Z95 * math.sqrt(var)
    assert (est.ci_low, est.ci_high) == pytest.approx((est.estimate - half, est.estimate + half))
    assert half == pytest.approx(0.135847, abs=1e-6)
    # Gold only: 0.7 +- z * 0.2 / sqrt(3)
    assert est.gold_estimate == pytest.approx(0.7)
    gold_half = Z95 * 0.2 / math.sqrt(3)
    assert (est.gold_ci_low, est.gold_ci_high) == pytest.approx((0.7 - gold_half, 0.7 + gold_half))
    assert (est.n_gold, est.n_unlabelled) == (3, 4)
    assert est.width < est.gold_width


def test_lambda_zero_is_gold_only() -> None:
    est = ppi_mean(GOLD, PRED_GOLD, PRED_UNL, lam=0.0)
    assert est.lam == 0.0
    assert est.estimate == pytest.approx(est.gold_estimate)
    assert est.ci_low == pytest.approx(est.gold_ci_low)
    assert est.ci_high == pytest.approx(est.gold_ci_high)
    # Predictions unrelated to the gold values: the tuned lam is clipped at 0.
    anti = ppi_mean(GOLD, [1.0, 0.7, 0.4], PRED_UNL)
    assert anti.lam == 0.0 and anti.estimate == pytest.approx(anti.gold_estimate)


def test_classic_ppi_and_alpha() -> None:
    est = ppi_mean(GOLD, PRED_GOLD, PRED_UNL, power_tuning=False)
    assert est.lam == 1.0
    assert est.estimate == pytest.approx(0.5 + (0.7 - 0.7))
    wide = ppi_mean(GOLD, PRED_GOLD, PRED_UNL, alpha=0.01)
    assert wide.width > ppi_mean(GOLD, PRED_GOLD, PRED_UNL).width


def test_validation() -> None:
    with pytest.raises(ValueError, match="at least 2 gold"):
        ppi_mean([0.5], [0.4], PRED_UNL)
    with pytest.raises(ValueError, match="pred_unlabelled holds 1 NaN"):
        ppi_mean(GOLD, PRED_GOLD, [0.1, np.nan])
    with pytest.raises(ValueError, match="pred_gold holds"):
        ppi_mean(GOLD, [0.1, np.nan, 0.2], PRED_UNL)
    with pytest.raises(ValueError, match="one value per gold query"):
        ppi_mean(GOLD, PRED_GOLD[:2], PRED_UNL)
    with pytest.raises(ValueError, match="alpha"):
        ppi_mean(GOLD, PRED_GOLD, PRED_UNL, alpha=1.5)

    frame = pd.DataFrame(
        {
            "y": [0.5, 0.7, np.nan, 0.9],
            "f": [0.4, 0.7, 0.2, 1.0],
            "g": [True, True, False, True],
        }
    )
    ppi_per_bucket(frame, gold="y", pred="f", is_gold="g", bucket=None)  # NaN gold off-gold is fine
    with pytest.raises(DataFormatError, match="'f'"):
        ppi_per_bucket(
            frame.assign(f=[0.4, np.nan, 0.2, 1.0]), gold="y", pred="f", is_gold="g", bucket=None
        )
    with pytest.raises(DataFormatError, match=r"column 'y'.*gold queries"):
        ppi_per_bucket(frame.assign(g=True), gold="y", pred="f", is_gold="g", bucket=None)
    with pytest.raises(DataFormatError, match="'bucket'"):
        ppi_per_bucket(frame, gold="y", pred="f", is_gold="g")
    with pytest.raises(DataFormatError, match=r"'g'.*boolean"):
        ppi_per_bucket(frame.assign(g=1), gold="y", pred="f", is_gold="g", bucket=None)
    with pytest.raises(ValueError, match="at least 2 gold"):
        ppi_per_bucket(
            frame.assign(g=[True, False, False, False]),
            gold="y",
            pred="f",
            is_gold="g",
            bucket=None,
        )


def test_per_bucket_matches_ppi_mean(rng: np.random.Generator) -> None:
    n = 120
    truth = rng.beta(4, 3, n)
    frame = pd.DataFrame(
        {
            "y": truth,
            "f": np.clip(truth + 0.1 + rng.normal(0, 0.05, n), 0, 1),
            "g": rng.random(n) < 0.3,
            C.BUCKET: rng.choice(["head", "tail"], n),
        }
    )
    frame.loc[[0, 1], C.BUCKET] = "rare"
    frame.loc[[0, 1], "g"] = [True, False]
    out = ppi_per_bucket(frame, gold="y", pred="f", is_gold="g")
    assert list(out[C.BUCKET])[-1] == "all"
    assert set(out[C.BUCKET]) == {"head", "tail", "rare", "all"}
    rows = out.set_index(C.BUCKET)
    g = frame["g"].to_numpy()
    for b in ("head", "all"):
        sel = np.ones(n, bool) if b == "all" else (frame[C.BUCKET] == b).to_numpy()
        ref = ppi_mean(frame["y"][sel & g], frame["f"][sel & g], frame["f"][sel & ~g])
        assert rows.loc[b, "estimate"] == pytest.approx(ref.estimate)
        assert rows.loc[b, "ci_low"] == pytest.approx(ref.ci_low)
        assert rows.loc[b, "gold_ci_high"] == pytest.approx(ref.gold_ci_high)
        assert rows.loc[b, "n_gold"] == ref.n_gold
        assert rows.loc[b, "width"] == pytest.approx(ref.width)
    # One gold query in "rare": too few for an interval, left as NaN.
    assert np.isnan(rows.loc["rare", "estimate"]) and rows.loc["rare", "n_gold"] == 1


def test_per_query_metric() -> None:
    table = pd.DataFrame(
        {
            C.QID: ["a", "a", "a", "b", "b"],
            "s": [3.0, 2.0, 1.0, 1.0, 2.0],
            "y": [0, 1, 2, 0, 0],
        }
    )
    out = per_query_metric(table, "s", "y", metric="ndcg@10")
    ref = ndcg_at_k(table["s"], table["y"], qid=table[C.QID], k=10)
    assert out.name == "ndcg@10" and list(out.index) == ["a", "b"]
    assert out["a"] == pytest.approx(ref[0]) and np.isnan(out["b"])
    filled = per_query_metric(table, "s", "y", fill_no_relevant=0.0)
    assert filled["b"] == 0.0
    with pytest.raises(DataFormatError, match="'nope'"):
        per_query_metric(table, "nope", "y")
    with pytest.raises(DataFormatError, match="'y'"):
        per_query_metric(table.assign(y=[0, np.nan, 1, 0, 0]), "s", "y")


def test_simulated_coverage_and_width() -> None:
    gen = np.random.default_rng(2024)
    n, n_gold, n_rep = 400, 40, 200
    truth = gen.beta(4, 3, n)  # "true" per-query NDCG
    # LLM-labelled NDCG: biased upwards, noisy, correlated with the truth.
    pred = np.clip(0.1 + 0.9 * truth + gen.normal(0, 0.06, n), 0, 1)
    target = truth.mean()
    covered, widths, gold_widths, gold_covered = 0, [], [], 0
    for _ in range(n_rep):
        is_gold = np.zeros(n, bool)
        is_gold[gen.choice(n, n_gold, replace=False)] = True
        est = ppi_mean(truth[is_gold], pred[is_gold], pred[~is_gold])
        covered += est.ci_low <= target <= est.ci_high
        gold_covered += est.gold_ci_low <= target <= est.gold_ci_high
        widths.append(est.width)
        gold_widths.append(est.gold_width)
    assert covered / n_rep >= 0.90
    assert gold_covered / n_rep >= 0.90
    assert np.mean(widths) < np.mean(gold_widths)
    # The naive LLM-only mean is off by the bias the rectifier removes.
    assert abs(pred.mean() - target) > np.mean(widths) / 2
