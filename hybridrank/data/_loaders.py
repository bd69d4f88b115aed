"""Loaders for the NFCorpus release layout and a generic TREC-style layout."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hybridrank import columns as C
from hybridrank.data._collection import Collection, UnknownIds, drop_unknown_qrels
from hybridrank.data._formats import (
    LINE,
    read_docs_jsonl,
    read_id_text_tsv,
    read_queries,
    read_trec_qrels,
)
from hybridrank.data._text import text_lines
from hybridrank.errors import DataFormatError, MissingInputError

logger = logging.getLogger(__name__)

NFCORPUS_QUERY_TYPES = ("titles", "all", "vid-titles", "vid-desc", "nontopic-titles")
NFCORPUS_SPLITS = ("train", "dev", "test")
#: The query files of a TREC-layout directory, in the order they are looked for.
QUERY_FILES = ("queries.tsv", "queries.jsonl", "topics.txt")


def load_nfcorpus(
    root: str | Path,
    *,
    query_type: str = "titles",
    splits: Sequence[str] = ("dev", "test"),
    unknown_ids: UnknownIds = "drop",
    descriptions: str | None = None,
) -> Collection:
    """Load NFCorpus from its original release layout.

    Reads ``{split}.docs``, ``{split}.{query_type}.queries`` and
    ``{split}.3-2-1.qrel`` for each split and merges them. A document listed in
    several splits must have the same text in each. Queries without any judged
    document are kept (they are counted, not hidden, by every report).

    Args:
        root: Directory holding the release files (``../shared/datasets/nfcorpus``).
        query_type: One of ``titles`` (default), ``all``, ``vid-titles``,
            ``vid-desc``, ``nontopic-titles``.
        splits: Which splits to merge; default dev+test (the complete ones).
        unknown_ids: What to do with judged pairs naming documents outside the
            loaded splits: ``"drop"`` (default; the release has a few, counted and
            logged) or ``"error"``.
        descriptions: Another query type whose texts become the queries'
            ``description`` column (``vid-desc``: the video descriptions of the
            102 video queries per split); queries it does not name have none.
    """
    root = Path(root)
    if query_type not in NFCORPUS_QUERY_TYPES:
        raise DataFormatError(
            f"unknown NFCorpus query type {query_type!r}; choose from {NFCORPUS_QUERY_TYPES}",
            path=root,
        )
    if descriptions is not None and (
        descriptions not in NFCORPUS_QUERY_TYPES or descriptions == query_type
    ):
        raise DataFormatError(
            f"NFCorpus descriptions {descriptions!r}: choose another query type than "
            f"{query_type!r} from {NFCORPUS_QUERY_TYPES}, e.g. 'vid-desc'",
            path=root,
        )
    if not splits:
        raise DataFormatError("no split chosen; choose from train, dev, test", path=root)
    for split in splits:
        if split not in NFCORPUS_SPLITS:
            raise DataFormatError(
                f"unknown NFCorpus split {split!r}; choose from {NFCORPUS_SPLITS}", path=root
            )
    if not root.is_dir():
        raise MissingInputError(f"{root}: NFCorpus directory not found")

    docs_parts, query_parts, qrel_parts, desc_parts = [], [], [], []
    for split in splits:
        if descriptions is not None:
            desc = read_id_text_tsv(root / f"{split}.{descriptions}.queries", id_column=C.QID)
            desc["_source"] = f"{split}.{descriptions}.queries"
            desc_parts.append(desc)
        docs = read_id_text_tsv(root / f"{split}.docs", id_column=C.DOCID)
        docs["_source"] = f"{split}.docs"
        docs_parts.append(docs)
        queries = read_id_text_tsv(root / f"{split}.{query_type}.queries", id_column=C.QID)
        queries["_source"] = f"{split}.{query_type}.queries"
        query_parts.append(queries)
        qrels = read_trec_qrels(root / f"{split}.3-2-1.qrel")
        qrels["_source"] = f"{split}.3-2-1.qrel"
        qrel_parts.append(qrels)

    docs = _merge_splits(pd.concat(docs_parts, ignore_index=True), C.DOCID, root)
    queries = _merge_splits(pd.concat(query_parts, ignore_index=True), C.QID, root)
    if desc_parts:
        desc = _merge_splits(pd.concat(desc_parts, ignore_index=True), C.QID, root)
        text = desc.set_index(C.QID)[C.TEXT].reindex(queries[C.QID]).to_numpy(dtype=object)
        queries[C.DESCRIPTION] = [t if isinstance(t, str) else None for t in text]
        unknown = int((~desc[C.QID].isin(queries[C.QID])).sum())
        if unknown:
            logger.info("%s: %d descriptions of queries not loaded, left out", root, unknown)
    qrels = pd.concat(qrel_parts, ignore_index=True)
    qrels = qrels.drop_duplicates([C.QID, C.DOCID, C.GRADE], ignore_index=True)
    clash = qrels.duplicated([C.QID, C.DOCID], keep=False)
    if clash.any():
        bad = qrels.loc[clash].iloc[-1]
        raise DataFormatError(
            f"pair ({bad[C.QID]!r}, {bad[C.DOCID]!r}) has different grades in two splits",
            path=root / str(bad["_source"]),
            line=int(bad[LINE]),
            column=C.GRADE,
        )
    qrels = drop_unknown_qrels(
        qrels, docs[C.DOCID], queries[C.QID], source=str(root), policy=unknown_ids
    )
    # Only queries of the chosen type are kept; qrels of other query types are not.
    qrels = qrels.loc[qrels[C.QID].isin(queries[C.QID])]
    return Collection(
        name=f"nfcorpus-{query_type}",
        docs=docs.drop(columns=[LINE, "_source"]).reset_index(drop=True),
        queries=queries.drop(columns=[LINE, "_source"]).reset_index(drop=True),
        qrels=qrels[list(C.QREL_COLUMNS)].reset_index(drop=True),
    )


def _merge_splits(frame: pd.DataFrame, key: str, root: Path) -> pd.DataFrame:
    """Keep one row per id; the same id must carry the same text in every split."""
    first = frame.drop_duplicates(key, keep="first")
    repeated = frame.loc[frame.duplicated(key, keep="first")]
    if not repeated.empty:
        merged = repeated.merge(first[[key, C.TEXT]], on=key, suffixes=("", "_first"))
        differ = merged[C.TEXT] != merged[f"{C.TEXT}_first"]
        if differ.any():
            bad = merged.loc[differ].iloc[0]
            raise DataFormatError(
                f"id {bad[key]!r} appears in two splits with different text",
                path=root / str(bad["_source"]),
                line=int(bad[LINE]),
                column=C.TEXT,
            )
    return first


def load_trec(
    root: str | Path,
    *,
    name: str | None = None,
    unknown_ids: UnknownIds = "error",
    quiet: bool = False,
) -> Collection:
    """Load a TREC-style directory.

    Layout:
        * ``docs.tsv`` (``DOCID<TAB>TEXT`` or ``DOCID<TAB>TITLE<TAB>TEXT``, no
          header), ``docs.jsonl`` (``{"docid", "text"[, "title"]}``) or BEIR's
          ``corpus.jsonl`` (``{"_id", "title", "text"}``); a title is read as
          the text's first sentence;
        * ``queries.tsv`` (``QID<TAB>TEXT``), ``queries.jsonl`` (``{"qid", "text"[,
          "description"][, "narrative"]}``) or ``topics.txt`` (TREC ``<top>``
          blocks: title, description, narrative);
        * ``qrels`` or ``qrels.txt`` (TREC: ``QID 0 DOCID GRADE``), or BEIR's
          ``qrels/test.tsv`` (``query-id corpus-id score`` with its header;
          ``dev.tsv`` or ``train.tsv`` where there is no test split); with
          BEIR's qrels only the queries that split judges are kept.

    Args:
        root: The directory.
        name: Name in reports; default the directory name.
        unknown_ids: Judged pairs naming unknown ids raise (default) or are
            dropped and counted with ``"drop"``.
        quiet: Drop them without a warning (a caller applying its own policy).
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"{root}: collection directory not found")
    if (root / "docs.tsv").exists():
        docs = read_id_text_tsv(root / "docs.tsv", id_column=C.DOCID, allow_title=True)
    elif (root / "docs.jsonl").exists():
        docs = read_docs_jsonl(root / "docs.jsonl")
    elif (root / "corpus.jsonl").exists():  # BEIR
        docs = read_docs_jsonl(root / "corpus.jsonl")
    else:
        raise MissingInputError(f"{root}: none of docs.tsv, docs.jsonl, corpus.jsonl found")
    queries_path = next(
        (root / n for n in QUERY_FILES if (root / n).exists()), root / QUERY_FILES[0]
    )
    queries = read_queries(queries_path)
    qrels_path = collection_qrels_file(root)
    qrels = read_trec_qrels(qrels_path)
    if qrels_path.parent.name == "qrels":
        # BEIR: queries.jsonl holds every split's queries; the split read judges its own.
        judged = queries[C.QID].isin(set(qrels[C.QID]))
        if not judged.all():
            if not quiet:
                logger.warning(
                    "%s: %d of %d queries have no judgment in %s (another split's): left out",
                    queries_path, int((~judged).sum()), len(queries), qrels_path.name,
                )  # fmt: skip
            queries = queries.loc[judged].reset_index(drop=True)
    qrels = drop_unknown_qrels(
        qrels, docs[C.DOCID], queries[C.QID], source=str(qrels_path), policy=unknown_ids,
        quiet=quiet,
    )
    return Collection(
        name=name or root.name,
        docs=docs.drop(columns=[LINE]),
        queries=queries.drop(columns=[LINE]),
        qrels=qrels[list(C.QREL_COLUMNS)].reset_index(drop=True),
    )


#: The document files of a collection directory, in the order they are looked for.
COLLECTION_DOC_FILES = ("docs.tsv", "docs.jsonl", "corpus.jsonl")

#: BEIR's qrels splits, in the order one is chosen from a ``qrels/`` folder.
BEIR_QRELS = ("test.tsv", "dev.tsv", "train.tsv")


def collection_qrels_file(root: Path, *, warn: bool = True) -> Path:
    """``qrels`` or ``qrels.txt``; or in a ``qrels/`` folder (BEIR) its test split,
    else its dev or train split, else its one ``.tsv`` file (``warn``: log the
    splits left unread)."""
    for name in ("qrels", "qrels.txt"):
        if (root / name).is_file():
            return root / name
    folder = root / "qrels"
    if folder.is_dir():
        found = sorted(p.name for p in folder.glob("*.tsv"))
        chosen = next((n for n in BEIR_QRELS if n in found), found[0] if len(found) == 1 else None)
        if chosen is None:
            raise MissingInputError(
                f"{folder}: none of {list(BEIR_QRELS)} found"
                + (f" (it holds {found}; keep one)" if found else "")
            )
        others = [n for n in found if n != chosen]
        if others and warn:
            logger.warning(
                "%s: judgments read from %s (BEIR's evaluation split); %s not read",
                folder, chosen, ", ".join(others),
            )  # fmt: skip
        return folder / chosen
    raise MissingInputError(f"{root}: none of qrels, qrels.txt, qrels/test.tsv found")


def read_stopwords(path: str | Path) -> frozenset[str]:
    """One stop word per line (NFCorpus ``stopwords.large``)."""
    return frozenset(w.strip().lower() for _, w in text_lines(Path(path)) if w.strip())
