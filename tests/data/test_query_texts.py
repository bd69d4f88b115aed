"""A query's description and narrative: the readers (TREC topics, JSON lines, NFCorpus
descriptions), the collection loaders and the dataset contract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hybridrank import columns as C
from hybridrank.data import (
    Dataset,
    load_nfcorpus,
    load_trec,
    read_queries,
    read_trec_topics,
)
from hybridrank.errors import DataFormatError

from ..conftest import write_trec_dir
from .test_loaders import _write_nfcorpus

TOPICS = """<top>

<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal
activity.

<narr> Narrative:
A relevant document must as a minimum identify the organization.

</top>

<top>
<num> Number: 302 </num>
<title> Poliomyelitis and Post-Polio </title>
<desc> Description:
Is the disease under control?
</top>
"""


def test_trec_topics(tmp_path: Path) -> None:
    path = tmp_path / "topics.txt"
    path.write_text(TOPICS)
    frame = read_queries(path)
    assert frame.drop(columns="_line").to_dict("records") == [
        {
            C.QID: "301",
            C.TEXT: "International Organized Crime",
            C.DESCRIPTION: "Identify organizations that participate in international criminal activity.",
            C.NARRATIVE: "A relevant document must as a minimum identify the organization.",
        },
        {
            C.QID: "302",
            C.TEXT: "Poliomyelitis and Post-Polio",
            C.DESCRIPTION: "Is the disease under control?",
            C.NARRATIVE: None,
        },
    ]
    assert frame["_line"].tolist() == [1, 15]


@pytest.mark.parametrize(
    ("text", "match", "line"),
    [
        ("<top>\n<num> 1\n</top>\n", "has no <title>", 1),
        ("<top>\n<title> x\n</top>\n", "without <num>", 1),
        ("<top>\n<num> 1\n<title> x\n", "not closed", 1),
        ("<top>\n<num> 1\n<title> x\n<title> y\n</top>\n", "<title> given twice", 4),
        ("<top>\n<num> 1\n<title> x\n</top>\nstray text\n", "outside a <top> field", 5),
        ("<top>\n<num> 1\n<title> x\n</top>\n<top>\n<num> 1\n<title> y\n</top>\n", "duplicate id '1'", 5),
    ],
)  # fmt: skip
def test_bad_trec_topics_name_the_line(tmp_path: Path, text: str, match: str, line: int) -> None:
    path = tmp_path / "topics.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=match) as info:
        read_trec_topics(path)
    assert info.value.line == line


def test_queries_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text(
        '{"_id": "1", "text": "green tea", "description": "Does green tea lower blood pressure?"}\n'
        '{"qid": "2", "title": "cats"}\n'
    )
    frame = read_queries(path)
    assert frame[C.DESCRIPTION].tolist() == ["Does green tea lower blood pressure?", None]
    assert C.NARRATIVE not in frame
    path.write_text('{"qid": "1", "text": "x", "narrative": 3}\n')
    with pytest.raises(DataFormatError, match="narrative must be a string"):
        read_queries(path)


def test_trec_directory_with_topics(tiny_collection, tmp_path: Path) -> None:
    root = write_trec_dir(tiny_collection, tmp_path / "trec")
    (root / "queries.tsv").unlink()
    qids = tiny_collection.queries[C.QID].tolist()
    (root / "topics.txt").write_text(
        "".join(
            f"<top>\n<num> {q}\n<title> {t}\n<desc> about {t}\n</top>\n"
            for q, t in tiny_collection.queries.itertuples(index=False)
        )
    )
    col = load_trec(root)
    assert col.queries[C.QID].tolist() == qids
    assert col.queries[C.DESCRIPTION].str.startswith("about ").all()


def test_nfcorpus_descriptions(tmp_path: Path) -> None:
    root = _write_nfcorpus(tmp_path / "nf")
    (root / "dev.vid-desc.queries").write_text("PLAIN-1\tvitamin d and bones in older adults .\n")
    (root / "test.vid-desc.queries").write_text("PLAIN-7\tnot a loaded query .\n")
    col = load_nfcorpus(root, descriptions="vid-desc")
    described = col.queries.set_index(C.QID)[C.DESCRIPTION]
    assert described["PLAIN-1"] == "vitamin d and bones in older adults ."
    assert pd.isna(described["PLAIN-2"])  # no description: missing
    assert C.DESCRIPTION not in load_nfcorpus(root).queries
    with pytest.raises(DataFormatError, match="choose another query type"):
        load_nfcorpus(root, descriptions="titles")


def test_the_dataset_keeps_and_checks_descriptions(tiny_collection, tmp_path: Path) -> None:
    from hybridrank.pipelines import build_world
    from hybridrank.pipelines._world import WorldConfig

    queries = tiny_collection.queries.assign(
        **{C.DESCRIPTION: [f"about {t}" if i % 2 else None for i, t in enumerate(tiny_collection.queries[C.TEXT])]}
    )
    collection = type(tiny_collection)(
        name="tiny", docs=tiny_collection.docs, queries=queries, qrels=tiny_collection.qrels
    )
    config = WorldConfig.from_dict({"simulation": {"n_sessions": 200}, "folds": {"tuning_queries": 0}})
    world = build_world(config, collection=collection)
    assert world.queries is not None and C.DESCRIPTION in world.queries
    written = Dataset.read(world.write(tmp_path / "world"))
    assert written.queries is not None
    pd.testing.assert_series_equal(
        written.queries[C.DESCRIPTION], world.queries[C.DESCRIPTION], check_dtype=False
    )
    bad = world.queries.assign(**{C.NARRATIVE: [1.5] + [None] * (len(world.queries) - 1)})
    with pytest.raises(DataFormatError, match=r"narrative must be text or missing, got 1\.5") as info:
        world.with_tables(queries=bad)
    assert info.value.row == 0 and info.value.column == C.NARRATIVE
