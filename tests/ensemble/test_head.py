"""The head gate and the head queries' click weight chosen on held-out clicks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.ensemble import (
    BucketGate,
    HeadGate,
    SigmoidGate,
    StackerConfig,
    gate_from_dict,
    load_gate,
    make_gate,
    parse_gate,
    prepare,
    tune_head_weight,
)
from hybridrank.errors import ConfigError


def test_head_gate_sets_the_head_weight_and_stays_monotone(tmp_path) -> None:
    base = SigmoidGate(centre=2.0, slope=1.5)
    gate = HeadGate(base, min_frequency=21, weight=0.6)
    freq = np.array([0, 5, 20, 21, 100, 1e5])
    g = gate(freq)
    np.testing.assert_allclose(g[:3], np.minimum(base(freq[:3]), 0.6))
    assert g[0] == pytest.approx(base(0.0)) and g[2] == pytest.approx(0.6)  # capped below
    np.testing.assert_allclose(g[3:], 0.6)  # the head queries take the weight
    for weight in (0.0, 0.3, 1.0):
        _, curve = HeadGate(base, 21, weight).curve()
        assert np.all(np.diff(curve) >= -1e-12)
    # Saved, loaded, rebuilt by kind and params: the same function.
    gate.save(tmp_path / "head.json")
    for again in (load_gate(tmp_path / "head.json"), gate_from_dict(gate.to_dict()),
                  make_gate("head", gate.params())):  # fmt: skip
        assert isinstance(again, HeadGate) and isinstance(again.base, SigmoidGate)
        np.testing.assert_array_equal(again(freq), g)
    bucket = HeadGate(BucketGate((2, 20), (0.1, 0.2, 0.3)), 21, 0.9)
    assert gate_from_dict(bucket.to_dict())(np.array([50.0]))[0] == pytest.approx(0.9)


def test_head_gate_errors() -> None:
    for kwargs, match in (
        ({"weight": 1.5}, "weight"),
        ({"min_frequency": -1}, "min_frequency"),
        ({"base": HeadGate()}, "cannot be a head gate"),
        ({"base": {"kind": "tanh", "params": {}}}, "unknown gate"),
        ({"base": {"kind": "sigmoid", "params": {"centre": 1.0}}}, "slope"),
        ({"weight": True}, "must be a number"),
        ({"min_frequency": "x"}, "must be a number"),
    ):
        with pytest.raises(ConfigError, match=match):
            HeadGate(**kwargs)
    with pytest.raises(ConfigError, match="nested base"):
        parse_gate("head:weight=0.5")
    with pytest.raises(ConfigError, match="not searched by a study"):
        HeadGate.suggest(None, StackerConfig().space)
    with pytest.raises(ConfigError, match="must be one of"):
        StackerConfig(gate="head")
    with pytest.raises(ConfigError, match="min_frequency"):
        gate_from_dict({"kind": "head", "params": {"base": SigmoidGate().to_dict(), "weight": 1}})


def _world(click_helps: bool, *, seed: int = 0, sessions: int = 40):
    """Head queries (freq 100) and rare ones (freq 1); on the head queries the held-out
    clicks go to the documents the click expert ranks first (or the LLM expert's)."""
    rng = np.random.default_rng(seed)
    n_q, per = 12, 10
    qid = np.repeat([f"q{i}" for i in range(n_q)], per)
    docid = np.array([f"d{j}" for j in range(per)] * n_q)
    freq = np.repeat(np.where(np.arange(n_q) < 8, 100.0, 1.0), per)
    click = rng.normal(size=qid.size)
    llm = rng.normal(size=qid.size)
    good = click if click_helps else llm
    rows = []
    session = 0
    for q in range(8):
        block = slice(q * per, (q + 1) * per)
        best = docid[block][np.argsort(-good[block])[:2]]
        shown = rng.permutation(docid[block])
        for _ in range(sessions):
            session += 1
            for pos, d in enumerate(shown, start=1):
                hit = d in best and rng.random() < 0.9 / pos**0.5
                rows.append((session, f"q{q}", d, pos, int(hit)))
    log = pd.DataFrame(rows, columns=[C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK])
    data = prepare(click, llm, qid=qid, freq=freq, anchors=[rng.normal(size=qid.size)])
    exam = 1.0 / np.arange(1, per + 1) ** 0.5
    return data, qid, docid, log, exam


def test_held_out_clicks_raise_the_head_weight_where_clicks_rank_better() -> None:
    data, qid, docid, log, exam = _world(click_helps=True)
    base = SigmoidGate(centre=8.0, slope=1.0)  # near 0 everywhere: the LLM expert
    tuned = tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                             min_frequency=21, grid=11)  # fmt: skip
    assert isinstance(tuned.gate, HeadGate) and tuned.weight is not None
    assert tuned.weight >= 0.5 and tuned.best_value > tuned.base_value
    assert tuned.p_value < 0.05
    assert tuned.n_queries == 8 and tuned.n_sessions > 50
    assert list(tuned.curve["weight"]) == pytest.approx(np.linspace(0, 1, 11))
    # Rare queries keep the base gate's weight.
    np.testing.assert_allclose(tuned.gate(np.array([1.0])), base(np.array([1.0])))


def test_held_out_clicks_lower_the_head_weight_where_the_llm_expert_ranks_better() -> None:
    data, qid, docid, log, exam = _world(click_helps=False)
    base = SigmoidGate(centre=-8.0, slope=1.0)  # near 1 everywhere: the click expert
    tuned = tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                             min_frequency=21, grid=11)  # fmt: skip
    assert isinstance(tuned.gate, HeadGate) and tuned.weight is not None and tuned.weight <= 0.5
    assert tuned.best_value > tuned.base_value and tuned.p_value < 0.05
    # Rarer queries may not trust clicks more than head queries do.
    assert tuned.gate(np.array([1.0]))[0] <= tuned.weight


def test_held_out_clicks_that_cannot_tell_the_weights_apart_keep_the_gate() -> None:
    data, qid, docid, log, exam = _world(click_helps=True)
    base = SigmoidGate()
    tuned = tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                             min_frequency=21, anchor_weights=(1.0,), grid=5)  # fmt: skip
    # The anchor takes the whole mix: every weight ranks alike.
    assert tuned.weight is None and tuned.gate is base
    assert tuned.reason is not None and "no head weight" in tuned.reason
    assert tuned.summary()["kept_base"] == tuned.reason
    assert tuned.curve.iloc[:, 1].nunique() == 1


def test_too_few_held_out_sessions_keep_the_gate() -> None:
    data, qid, docid, log, exam = _world(click_helps=True, sessions=2)
    base = SigmoidGate()
    tuned = tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                             min_frequency=21, min_sessions=50)  # fmt: skip
    assert tuned.gate is base and tuned.curve.empty and "< 50" in (tuned.reason or "")
    assert tuned.summary()["base_value"] is None and tuned.summary()["p_value"] is None
    # A gain eight head queries cannot make significant at max_p keeps the gate too.
    data, qid, docid, log, exam = _world(click_helps=True)
    strict = tune_head_weight(SigmoidGate(centre=8.0, slope=1.0), data, qid=qid, docid=docid,
                              log=log, examination=exam, min_frequency=21, grid=11,
                              max_p=0.001)  # fmt: skip
    assert strict.weight is None and isinstance(strict.gate, SigmoidGate)
    assert 0.001 <= strict.p_value < 0.05 and "p = " in (strict.reason or "")
    assert strict.curve["ips_dcg@10"].max() == strict.best_value > strict.base_value
    assert strict.best_weight is not None and strict.summary()["weight"] is None
    with pytest.raises(ValueError, match="max_p"):
        tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                         min_frequency=21, max_p=0.0)  # fmt: skip
    with pytest.raises(ValueError, match="grid"):
        tune_head_weight(base, data, qid=qid, docid=docid, log=log, examination=exam,
                         min_frequency=21, grid=1)  # fmt: skip
    with pytest.raises(ValueError, match="one value per row"):
        tune_head_weight(base, data, qid=qid[:-1], docid=docid, log=log, examination=exam,
                         min_frequency=21)  # fmt: skip


def test_stacker_tunes_the_rest_of_the_gate_around_a_fixed_head_weight(tmp_path) -> None:
    from hybridrank.ensemble import FrequencyGatedStacker, OOFScores

    rng = np.random.default_rng(1)
    n_q, per = 80, 10
    qid = np.repeat(np.arange(n_q).astype(str), per)
    freq = np.repeat(np.where(np.arange(n_q) % 2 == 0, 200, 0), per)
    y = rng.integers(0, 4, qid.size).astype(float)
    noise = rng.normal(0, 3, qid.size)
    click = np.where(freq > 0, y, noise)
    llm = np.where(freq > 0, noise, y)
    fold = np.repeat(np.arange(n_q) % 5, per)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    stacker = FrequencyGatedStacker(StackerConfig(n_trials=30, seed=0)).fit(
        OOFScores("click", click, qid, fold, trained), OOFScores("llm", llm, qid, fold, trained),
        freq=freq, labels=y, head=(21.0, 0.7),
    )  # fmt: skip
    gate = stacker.gate_
    assert isinstance(gate, HeadGate) and gate.weight == 0.7 and gate.min_frequency == 21.0
    assert gate(np.array([200.0]))[0] == pytest.approx(0.7)
    assert gate(np.array([0.0]))[0] < 0.2  # the labelled rare queries still pull it down
    stacker.save(tmp_path / "s.json")
    loaded = FrequencyGatedStacker.load(tmp_path / "s.json")
    np.testing.assert_array_equal(
        loaded.predict(click, llm, qid=qid, freq=freq), stacker.predict(click, llm, qid=qid, freq=freq)
    )


def test_a_resumed_stacker_study_must_share_its_head_weight(tmp_path) -> None:
    from hybridrank.ensemble import FrequencyGatedStacker, OOFScores

    rng = np.random.default_rng(0)
    qid = np.repeat(np.arange(20).astype(str), 5)
    fold = np.repeat(np.arange(20) % 5, 5)
    trained = {f: frozenset(qid[fold != f].tolist()) for f in range(5)}
    oof = [OOFScores(n, rng.normal(size=qid.size), qid, fold, trained) for n in ("c", "l")]
    kwargs = {"freq": np.repeat(np.arange(20) * 3.0, 5), "labels": rng.integers(0, 3, qid.size),
              "storage": f"sqlite:///{tmp_path / 's.db'}", "study_name": "gate"}  # fmt: skip
    config = StackerConfig(n_trials=3)
    FrequencyGatedStacker(config).fit(*oof, head=(21.0, 0.5), **kwargs)
    again = FrequencyGatedStacker(config).fit(*oof, head=(21.0, 0.5), **kwargs)
    assert len(again.study_.trials) == 3 and isinstance(again.gate_, HeadGate)
    for other in (None, (21.0, 0.7)):
        with pytest.raises(ConfigError, match="head weight"):
            FrequencyGatedStacker(config).fit(*oof, head=other, **kwargs)


def test_gate_table_reports_head_and_plain_gates_side_by_side() -> None:
    from hybridrank.pipelines import gate_table

    table = pd.DataFrame({C.QID: ["a", "b", "c"], C.BUCKET: ["low", "mid", "high"],
                          C.FREQ: [1.0, 10.0, 50.0]})  # fmt: skip
    head = HeadGate(SigmoidGate(centre=5.0, slope=1.0), 21, 0.7)
    plain = SigmoidGate(centre=2.0, slope=2.0)
    info = {"runs": {"seed0_sessions100": {"gate": head.params(), "gate_kind": "head"},
                     "seed1_sessions100": {"gate": plain.params(), "gate_kind": "sigmoid"}}}  # fmt: skip
    out = gate_table({(0, 100): table, (1, 100): table}, info, 100, ["low", "mid", "high"])
    assert list(out["gate"]) == ["head(sigmoid)", "sigmoid"]
    assert out.loc[0, "head weight"] == 0.7 and np.isnan(out.loc[1, "head weight"])
    assert out.loc[0, "g(high)"] == pytest.approx(0.7)
    assert out.loc[0, "rise low->high"] == pytest.approx(0.7 - head(np.array([1.0]))[0])
    assert out.loc[1, "centre"] == 2.0 and out.loc[0, "centre"] == 5.0
