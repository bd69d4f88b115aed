from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from hybridrank import columns as C
from hybridrank.data import Dataset, SimulationConfig
from hybridrank.errors import ConfigError
from hybridrank.pipelines import (
    DataConfig,
    WorldConfig,
    build_world,
    world_config_of,
    world_summary,
    write_world,
)

from ..conftest import write_trec_dir


def _config(tmp_path: Path, tiny_collection, **sim) -> WorldConfig:
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    return WorldConfig(
        data=DataConfig(format="trec", path=str(root)),
        simulation=SimulationConfig(n_sessions=800, seed=1, **sim),
    )


def test_build_world_tables(tmp_path: Path, tiny_collection) -> None:
    world = build_world(_config(tmp_path, tiny_collection))
    cand = world.table()
    for col in (C.QID, C.DOCID, C.BM25, C.BM25_RANK, C.Y_EXPERT, C.FREQ, C.BUCKET, C.FOLD):
        assert col in cand.columns
    q = world.splits.set_index(C.QID)
    assert q[C.FREQ].sum() == world.impressions[C.SESSION_ID].nunique()
    # freq and bucket on candidate rows agree with the query table
    joined = cand.merge(q[[C.FREQ, C.BUCKET]], left_on=C.QID, right_index=True, suffixes=("", "_q"))
    assert (joined[C.FREQ] == joined[C.FREQ + "_q"]).all()
    assert (joined[C.BUCKET] == joined[C.BUCKET + "_q"]).all()
    assert set(q[C.FOLD]) == set(range(5))
    s = world_summary(world)
    assert s["sessions"] == 800
    assert sum(v["queries"] for v in s["buckets"].values()) == len(world.splits)


def test_a_world_without_traffic_is_built_with_a_warning(
    tmp_path: Path, tiny_collection, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, tiny_collection)
    config = config.replace(simulation=SimulationConfig(n_sessions=0, seed=1))
    world = build_world(config)
    assert "a world without traffic" in caplog.text
    assert (world.splits[C.FREQ] == 0).all()


def test_save_load_round_trip(tmp_path: Path, tiny_collection) -> None:
    config = _config(tmp_path, tiny_collection)
    world = build_world(config)
    run = write_world(world, tmp_path / "run")
    assert (run / "summary.json").exists()
    back = Dataset.read(run)
    pd.testing.assert_frame_equal(back.table(), world.table())
    pd.testing.assert_frame_equal(back.impressions, world.impressions)
    assert world_config_of(back) == world_config_of(world) == config
    # The saved config rebuilds the same world.
    again = build_world(WorldConfig.from_yaml(run / "config.yaml"))
    pd.testing.assert_frame_equal(again.impressions, world.impressions)


def test_config_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("world:\n  simulation:\n    n_session: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: world.simulation: unknown keys \['n_session'\]"):
        WorldConfig.from_yaml(bad)
    bad.write_text("world: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        WorldConfig.from_yaml(bad)
    bad.write_text("world:\n  nope: {}\n")
    with pytest.raises(ConfigError, match="unknown sections"):
        WorldConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match=r"data\.path"):
        DataConfig(format="trec")


def test_studies_world_yaml_is_the_default() -> None:
    path = Path(__file__).resolve().parents[2] / "studies" / "world.yaml"
    config = WorldConfig.from_yaml(path)
    assert config == WorldConfig()
    raw = yaml.safe_load(path.read_text())
    assert raw["world"]["simulation"]["n_sessions"] == 5000


def test_load_missing_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hybridrank world build"):
        Dataset.read(tmp_path)


def test_config_wrong_types_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="simulation: expected a mapping"):
        WorldConfig.from_dict({"simulation": 5})
    with pytest.raises(ConfigError, match="world config: expected a mapping"):
        WorldConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_sessions"):
        WorldConfig.from_dict({"simulation": {"n_sessions": "many"}})
