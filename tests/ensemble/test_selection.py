"""The stacker's gate selection: a rising gate where the tuning queries cannot tell."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.ensemble import (
    FrequencyGatedStacker,
    GateCandidate,
    GateChoice,
    OOFScores,
    SigmoidGate,
    StackerConfig,
    choose_trial,
    gate_rise,
    reference_frequencies,
)
from hybridrank.errors import ConfigError, DataFormatError
from hybridrank.evaluate import ndcg_at_k

FLAT = SigmoidGate(centre=5.0, slope=0.0)  # 0.5 everywhere
RISING = SigmoidGate(centre=1.5, slope=8.0)


def test_rise_and_reference_frequencies() -> None:
    assert gate_rise(FLAT, 1.0, 40.0) == pytest.approx(0.0)
    assert gate_rise(RISING, 1.0, 40.0) > 0.9
    # The median of the lowest bucket (<= 2) and of the highest (> 20).
    assert reference_frequencies(np.array([0, 1, 2, 5, 30, 50, 70]), (2, 20)) == (1.0, 50.0)
    # A bucket without a query: the lowest or highest frequency instead.
    assert reference_frequencies(np.array([5.0, 8.0, 12.0]), (2, 20)) == (5.0, 12.0)


def _candidates(rising_gap: float, noise: float, n: int = 60) -> list[GateCandidate]:
    """Trial 0 (flat) on top; trial 1 rising, ``rising_gap`` lower on average; trial 2
    rising but far below."""
    rng = np.random.default_rng(0)
    top = rng.uniform(0.4, 0.9, n)
    near = top - rising_gap + rng.normal(0, noise, n)
    far = top - 0.3
    return [GateCandidate(0, FLAT, top), GateCandidate(1, RISING, near),
            GateCandidate(2, SigmoidGate(centre=0.5, slope=8.0), far)]  # fmt: skip


def test_a_rising_trial_within_the_noise_is_kept_over_a_flat_top_trial() -> None:
    cands = _candidates(rising_gap=0.002, noise=0.05)
    choice = choose_trial(cands, 0, rule="rising", se=1.0, low_freq=1.0, high_freq=40.0)
    assert choice.trial == 1 and choice.within == 2
    assert choice.rise > 0.9 and choice.best_rise == pytest.approx(0.0)
    assert choice.value == pytest.approx(cands[1].per_query.mean())
    assert choice.best_value == pytest.approx(cands[0].per_query.mean())
    # ``best`` keeps the top trial but still counts the trials within the noise.
    best = choose_trial(cands, 0, rule="best", se=1.0, low_freq=1.0, high_freq=40.0)
    assert best.trial == 0 and best.within == 2 and best.rule == "best"


def test_the_data_decides_when_a_rising_gate_is_clearly_worse() -> None:
    cands = _candidates(rising_gap=0.05, noise=0.01)
    choice = choose_trial(cands, 0, rule="rising", se=1.0, low_freq=1.0, high_freq=40.0)
    assert choice.trial == 0 and choice.within == 1
    # Queries without a relevant candidate (NaN) are left out of the paired difference.
    cands[0].per_query[:5] = np.nan
    cands[1].per_query[:5] = np.nan
    assert choose_trial(cands, 0, rule="rising", se=1.0, low_freq=1.0, high_freq=40.0).trial == 0
    with pytest.raises(ValueError, match="one of"):
        choose_trial(cands, 0, rule="widest", se=1.0, low_freq=1.0, high_freq=40.0)
    with pytest.raises(ValueError, match="#7"):
        choose_trial(cands, 7, rule="best", se=1.0, low_freq=1.0, high_freq=40.0)


def _fit(click: np.ndarray, llm: np.ndarray, freq: np.ndarray, y: np.ndarray, qid: np.ndarray,
         bucket: np.ndarray | None = None, **config) -> FrequencyGatedStacker:  # fmt: skip
    fold = np.repeat(np.arange(qid.size // 10) % 5, 10)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    return FrequencyGatedStacker(StackerConfig(n_trials=40, seed=0, **config)).fit(
        OOFScores("c", click, qid, fold, trained), OOFScores("l", llm, qid, fold, trained),
        freq=freq, labels=y, bucket=bucket,
    )  # fmt: skip


def _queries(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_q = 60
    qid = np.repeat(np.arange(n_q).astype(str), 10)
    freq = np.repeat(np.tile([0, 1, 5, 50], n_q // 4), 10)
    y = rng.integers(0, 4, qid.size).astype(float)
    return qid, freq, y


def test_the_stacker_keeps_a_rising_gate_when_the_experts_agree(tmp_path) -> None:
    """Both experts give the same scores, so every gate scores the same: the rising one is kept."""
    qid, freq, y = _queries()
    scores = y + np.random.default_rng(1).normal(0, 1, y.size)
    top = _fit(scores, scores, freq, y, qid, selection="best")
    kept = _fit(scores, scores, freq, y, qid)
    assert kept.selection_.within == 40 and kept.selection_.rise > 0.9
    assert kept.selection_.low_freq == 0.5 and kept.selection_.high_freq == 50.0
    assert kept.best_value_ == pytest.approx(top.best_value_)
    assert top.selection_.trial == kept.selection_.best_trial
    # One expert fused with itself ranks as that expert, whatever the gate.
    fused = kept.predict(scores, scores, qid=qid, freq=freq)
    np.testing.assert_allclose(ndcg_at_k(fused, y, qid=qid, k=10),
                               ndcg_at_k(scores, y, qid=qid, k=10))  # fmt: skip
    kept.save(tmp_path / "s.json")
    loaded = FrequencyGatedStacker.load(tmp_path / "s.json")
    assert loaded.selection_ == kept.selection_
    assert loaded.gate_.params() == kept.gate_.params()
    payload = json.loads((tmp_path / "s.json").read_text())
    del payload["selection"]["within"]
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(DataFormatError, match="within"):
        FrequencyGatedStacker.load(tmp_path / "bad.json")


def test_the_stacker_keeps_a_falling_gate_the_data_asks_for() -> None:
    """LLM scores right on frequent queries, click scores on rare ones: rising gates lose."""
    qid, freq, y = _queries(2)
    noise = np.random.default_rng(3).normal(0, 3, y.size)
    click = np.where(freq < 5, y, noise)
    llm = np.where(freq < 5, noise, y)
    stacker = _fit(click, llm, freq, y, qid)
    assert stacker.selection_.rise < 0.1
    fused = stacker.predict(click, llm, qid=qid, freq=freq)
    assert np.nanmean(ndcg_at_k(fused, y, qid=qid, k=10)) > 0.9


def test_selection_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"stacker\.selection must"):
        StackerConfig(selection="widest")
    with pytest.raises(ConfigError, match="selection_se"):
        StackerConfig(selection_se=-1.0)
    assert StackerConfig.from_dict({"selection": "best"}).selection == "best"
    with pytest.raises(ConfigError, match="fields"):
        GateChoice.from_dict({"rule": "best"}, source="x")
    good = GateChoice(rule="rising", trial=3, value=0.7, rise=0.9, best_trial=1, best_value=0.71,
                      best_rise=0.0, best_gate=FLAT.to_dict(), within=4, low_freq=1.0,
                      high_freq=50.0).to_dict()  # fmt: skip
    assert GateChoice.from_dict(dict(good), source="x").to_dict() == good
    with pytest.raises(ConfigError, match="value"):
        GateChoice.from_dict({**good, "value": "high"}, source="x")
    with pytest.raises(ConfigError, match="rule"):
        GateChoice.from_dict({**good, "rule": "widest"}, source="x")
    with pytest.raises(ConfigError, match="best_gate"):
        GateChoice.from_dict({**good, "best_gate": {"kind": "sigmoid", "params": {}}}, source="x")
    for field, bad in (("trial", -2.5), ("within", 0), ("value", 7.0), ("rise", -5.0),
                       ("high_freq", 0.5)):  # fmt: skip
        with pytest.raises(ConfigError, match=field):
            GateChoice.from_dict({**good, field: bad}, source="x")
    with pytest.raises(ConfigError, match="keeps the top trial"):
        GateChoice.from_dict({**good, "rule": "best"}, source="x")
    with pytest.raises(ConfigError, match="selection_se"):
        StackerConfig(selection_se=True)


def test_gate_table_shows_what_the_selection_passed_over() -> None:
    from hybridrank.pipelines import gate_table

    table = pd.DataFrame({C.QID: ["a", "b", "c"], C.BUCKET: ["low", "mid", "high"],
                          C.FREQ: [1.0, 10.0, 50.0]})  # fmt: skip
    choice = GateChoice(rule="rising", trial=3, value=0.70, rise=0.95, best_trial=1,
                        best_value=0.71, best_rise=0.0, best_gate=FLAT.to_dict(), within=12,
                        low_freq=1.0, high_freq=50.0)  # fmt: skip
    info = {"runs": {"seed0_sessions100": {"gate": RISING.params(), "gate_kind": "sigmoid",
                                           "gate_selection": choice.to_dict()},
                     "seed1_sessions100": {"gate": FLAT.params(), "gate_kind": "sigmoid"}}}  # fmt: skip
    out = gate_table({(0, 100): table, (1, 100): table}, info, 100, ["low", "mid", "high"])
    assert out.loc[0, "top trial's rise"] == pytest.approx(0.0)
    assert out.loc[0, "rise low->high"] > 0.9
    assert out.loc[0, "trials within SE"] == 12 and out.loc[0, "tuning: top"] == 0.71
    assert np.isnan(out.loc[1, "top trial's rise"])  # a run from before the selection


def test_the_kept_trial_is_what_the_stacker_serves_with_anchors(tmp_path) -> None:
    """gate_ and anchor_weights_ are the kept trial's, not the top trial's."""
    from hybridrank.ensemble import HeadGate, gate_from_params

    qid, freq, y = _queries(4)
    rng = np.random.default_rng(5)
    scores = y + rng.normal(0, 1, y.size)
    fold = np.repeat(np.arange(qid.size // 10) % 5, 10)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    oof = [OOFScores(n, v, qid, fold, trained)
           for n, v in (("c", scores), ("l", scores), ("a", y + rng.normal(0, 2, y.size)))]  # fmt: skip
    cfg = StackerConfig(n_trials=30, seed=0, anchors=("a",))
    kept = FrequencyGatedStacker(cfg).fit(oof[0], oof[1], freq=freq, labels=y, anchors=[oof[2]])
    choice = kept.selection_
    assert choice.trial != choice.best_trial  # the experts agree: a rising trial is kept
    params = kept.study_.trials[choice.trial].params
    assert kept.gate_.params() == gate_from_params(params, cfg).params()
    assert kept.anchor_weights_ == (params["anchor_weight"],)  # one anchor: its whole weight
    assert gate_rise(kept.gate_, choice.low_freq, choice.high_freq) == pytest.approx(choice.rise)
    # With a head gate the rise is the base gate's: the head weight is the same in every trial.
    head = FrequencyGatedStacker(cfg).fit(oof[0], oof[1], freq=freq, labels=y, anchors=[oof[2]],
                                          head=(50.0, 0.3))  # fmt: skip
    assert isinstance(head.gate_, HeadGate)
    c = head.selection_
    assert c.rise == pytest.approx(gate_rise(head.gate_.base, c.low_freq, c.high_freq))
    assert c.rise > 0.5 and gate_rise(head.gate_, c.low_freq, c.high_freq) <= 0.3
    # A stored study resumed with another number of anchors is refused, not rebuilt wrongly.
    storage = f"sqlite:///{tmp_path / 's.db'}"
    FrequencyGatedStacker(cfg).fit(oof[0], oof[1], freq=freq, labels=y, anchors=[oof[2]],
                                   storage=storage, study_name="s")  # fmt: skip
    with pytest.raises(ConfigError, match="number of anchors"):
        FrequencyGatedStacker(StackerConfig(n_trials=40, seed=0)).fit(
            oof[0], oof[1], freq=freq, labels=y, storage=storage, study_name="s"
        )


def test_the_rise_is_measured_at_the_datasets_own_buckets() -> None:
    """With ``bucket=`` the ends are the rarest and the most frequent bucket's medians,
    whatever the buckets are called and wherever their edges lie."""
    from hybridrank.ensemble import bucket_frequencies

    freq = np.array([0, 1, 4, 6, 300, 500])
    assert bucket_frequencies(freq, np.array(["tail", "tail", "torso", "torso", "head", "head"])) \
        == (0.5, 400.0)  # fmt: skip
    qid, freq_rows, y = _queries()
    scores = y + np.random.default_rng(1).normal(0, 1, y.size)
    bucket = np.where(freq_rows >= 5, "frequent", "rare")  # edges unlike the default (2, 20)
    fitted = _fit(scores, scores, freq_rows, y, qid, bucket=bucket)
    assert (fitted.selection_.low_freq, fitted.selection_.high_freq) == (0.5, 27.5)
    assert _fit(scores, scores, freq_rows, y, qid).selection_.high_freq == 50.0
