"""The dataset contract: write/read round trip, checksums, validation, crash-safe replacement."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank._atomic import write_parquet, write_text
from hybridrank.data import MANIFEST, Dataset, SplitInfo
from hybridrank.errors import (
    ChecksumError,
    DataFormatError,
    DatasetChangedError,
    MissingInputError,
    OutputExistsError,
    OutputNotWritableError,
)

#: A process id no process has (above Linux's largest): a killed writer's.
DEAD = 999_999_999


def small_dataset(n_queries: int = 6) -> Dataset:
    qids = [f"q{i}" for i in range(n_queries)]
    cand = pd.DataFrame(
        [(q, f"d{j}", float(j)) for q in qids for j in range(4)], columns=[C.QID, C.DOCID, "f1"]
    )
    splits = pd.DataFrame(
        {
            C.QID: qids,
            C.FREQ: np.arange(n_queries),
            C.BUCKET: ["low"] * 3 + ["high"] * (n_queries - 3),
            C.FOLD: np.arange(n_queries) % 2,
            "tuning": [True] + [False] * (n_queries - 1),
        }
    )
    log = pd.DataFrame(
        {
            C.SESSION_ID: ["s1", "s1", "s2"],
            C.TS: [0.0, 0.0, 1.0],
            C.QID: ["q0", "q0", "q1"],
            C.DOCID: ["d0", "d1", "d0"],
            C.POSITION: [1, 2, 1],
            C.CLICK: [1, 0, 0],
        }
    )
    return Dataset(
        candidates=cand,
        splits=splits,
        impressions=log,
        source={"producer": "test"},
        split_info=SplitInfo(n_folds=2, buckets={"names": ["low", "mid", "high"]}),
        features=("f1",),
    )


def test_round_trip_and_views(tmp_path: Path) -> None:
    ds = small_dataset()
    ds.write(tmp_path / "d")
    back = Dataset.read(tmp_path / "d")
    pd.testing.assert_frame_equal(back.candidates, ds.candidates)
    pd.testing.assert_frame_equal(back.impressions, ds.impressions)
    assert back.queries is None and not back.has_texts
    assert back.features == ("f1",)
    assert back.tuning_qids == {"q0"}
    assert back.bucket_names == ["low", "high"]
    table = back.table()
    assert list(table.columns[-4:]) == [C.FREQ, C.BUCKET, C.FOLD, "tuning"]
    assert back.summary()["sessions"] == 2
    assert back.bucket_table().loc["low", "queries"] == 3


def test_edited_table_is_refused(tmp_path: Path) -> None:
    small_dataset().write(tmp_path / "d")
    frame = pd.read_parquet(tmp_path / "d" / "candidates.parquet")
    frame.loc[0, "f1"] = 99.0
    frame.to_parquet(tmp_path / "d" / "candidates.parquet", index=False)
    with pytest.raises(ChecksumError, match=r"candidates\.parquet"):
        Dataset.read(tmp_path / "d")


def test_a_table_with_other_rows_than_the_manifest_says_is_refused_unverified(
    tmp_path: Path,
) -> None:
    small_dataset().write(tmp_path / "d")
    frame = pd.read_parquet(tmp_path / "d" / "candidates.parquet")
    frame.iloc[:-1].to_parquet(tmp_path / "d" / "candidates.parquet", index=False)
    with pytest.raises(DataFormatError, match=r"candidates.*rows, the manifest says"):
        Dataset.read(tmp_path / "d", verify=False)
    # Unedited, the unverified read goes through.
    small_dataset().write(tmp_path / "e")
    assert len(Dataset.read(tmp_path / "e", verify=False).candidates) == len(frame)


def test_not_a_dataset_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(MissingInputError, match="dataset import"):
        Dataset.read(tmp_path / "x")


@pytest.mark.parametrize(
    "edit, column",
    [
        (lambda d: d.candidates.__setitem__(C.DOCID, "d0"), C.DOCID),  # duplicate pairs
        (lambda d: d.impressions.__setitem__(C.POSITION, [1, 0, 1]), C.POSITION),
        (lambda d: d.impressions.__setitem__(C.CLICK, [1, 2, 0]), C.CLICK),
        (lambda d: d.splits.__setitem__(C.FREQ, [-1, 0, 0, 0, 0, 0]), C.FREQ),
    ],
)
def test_invalid_tables_name_file_row_and_column(tmp_path: Path, edit, column: str) -> None:
    ds = small_dataset()
    edit(ds)
    with pytest.raises(DataFormatError) as info:
        ds.write(tmp_path / "d")
    assert info.value.column == column and info.value.row is not None
    assert not (tmp_path / "d").exists()


def test_candidates_must_have_splits_and_be_contiguous(tmp_path: Path) -> None:
    ds = small_dataset()
    shuffled = ds.candidates.iloc[[0, 4, 1, 5, 2, 6, 3, 7, *range(8, 24)]].reset_index(drop=True)
    with pytest.raises(DataFormatError, match="contiguous"):
        ds.with_tables(candidates=shuffled)
    orphan = pd.concat([ds.candidates, pd.DataFrame({C.QID: ["zz"], C.DOCID: ["d0"], "f1": [0.0]})])
    with pytest.raises(DataFormatError, match="no row in the splits"):
        ds.with_tables(candidates=orphan.reset_index(drop=True))


def test_rewrite_replaces_whole_and_refuses_foreign_dirs(tmp_path: Path) -> None:
    ds = small_dataset()
    ds.write(tmp_path / "d")
    (tmp_path / "d" / "stale.parquet").write_text("old")
    ds.write(tmp_path / "d")
    assert not (tmp_path / "d" / "stale.parquet").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not written by hybridrank"):
        ds.write(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    # A file where a directory goes, and a directory where a file goes: refused by name.
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="a file"):
        ds.write(tmp_path / "file")
    with pytest.raises(OutputExistsError, match="is a directory"):
        write_parquet(ds.candidates, foreign)
    with pytest.raises(OutputExistsError, match="is a directory"):
        write_text(foreign, "x")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_update_adds_a_table_atomically(tmp_path: Path) -> None:
    ds = small_dataset()
    ds.write(tmp_path / "d", extra_files={"config.yaml": "world: {}\n"})
    read = Dataset.read(tmp_path / "d")
    labels = read.candidates[[C.QID, C.DOCID]].assign(**{C.Y_LLM: 1.0})
    read.update(llm_labels=labels)
    again = Dataset.read(tmp_path / "d")
    assert again.llm_labels is not None and len(again.llm_labels) == len(labels)
    assert (tmp_path / "d" / "config.yaml").read_text() == "world: {}\n"


def test_interrupted_swap_is_completed_on_read(tmp_path: Path) -> None:
    ds = small_dataset()
    ds.write(tmp_path / "d")
    # A kill between the two renames: the old one moved aside, the new one staged.
    os.replace(tmp_path / "d", tmp_path / f".d.tmp-{DEAD}")
    assert (tmp_path / f".d.tmp-{DEAD}" / MANIFEST).exists()
    back = Dataset.read(tmp_path / "d")
    assert len(back.candidates) == len(ds.candidates)
    assert (tmp_path / "d").exists()


def test_a_live_writers_staging_is_left_to_it(tmp_path: Path) -> None:
    """A reader or a second writer never finishes the swap of a writer that is still
    running (pid 1 is alive): only a killed writer's, as above."""
    small_dataset().write(tmp_path / "d")
    os.replace(tmp_path / "d", tmp_path / ".d.tmp-1")
    with pytest.raises(MissingInputError):
        Dataset.read(tmp_path / "d")
    assert (tmp_path / ".d.tmp-1" / MANIFEST).exists()


def test_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path: Path) -> None:
    ds = small_dataset()
    # A file writer killed mid-write, and a first dataset write killed before its rename.
    (tmp_path / f".out.parquet.tmp-{DEAD}").write_bytes(b"PAR1 half")
    (tmp_path / ".out.parquet.tmp-1").write_bytes(b"a live writer's")
    (tmp_path / f".d.tmp-{DEAD}").mkdir()
    (tmp_path / f".d.tmp-{DEAD}" / "candidates.parquet").write_bytes(b"half")
    write_parquet(ds.candidates, tmp_path / "out.parquet")
    ds.write(tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.parquet.tmp-1", "d", "out.parquet"]


def test_update_refuses_a_dataset_rewritten_meanwhile(tmp_path: Path) -> None:
    """Two commands that read, label and write one dataset: the second to write must not
    drop the first one's labels."""
    small_dataset().write(tmp_path / "d")
    first, second = Dataset.read(tmp_path / "d"), Dataset.read(tmp_path / "d")
    labels = first.candidates[[C.QID, C.DOCID]].assign(**{C.Y_LLM: 1.0})
    first = first.update(llm_labels=labels)
    with pytest.raises(DatasetChangedError, match="rewritten by another process"):
        second.update(llm_labels=labels.assign(**{C.Y_LLM: 2.0}))
    assert (Dataset.read(tmp_path / "d").llm_labels[C.Y_LLM] == 1.0).all()
    first.update(llm_labels=labels.assign(**{C.Y_LLM: 3.0}))  # its own write: the new state


def test_an_unwritable_output_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as a read-only disk answers
    with pytest.raises(OutputNotWritableError, match="cannot write in"):
        small_dataset().write(tmp_path / "new" / "d")
    with pytest.raises(OutputNotWritableError):
        write_text(tmp_path / "x.txt", "x")
