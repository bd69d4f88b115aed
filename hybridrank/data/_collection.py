"""The in-memory collection: documents, queries and graded judgments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank.errors import DataFormatError

logger = logging.getLogger(__name__)

UnknownIds = Literal["error", "drop"]


@dataclass(frozen=True)
class Collection:
    """Documents, queries and expert judgments of one test collection.

    Attributes:
        name: Short name shown in reports (``"nfcorpus-titles"``).
        docs: ``docid, text[, title]``; docids unique, text non-empty.
        queries: ``qid, text[, description, narrative]``; qids unique, text
            non-empty; description and narrative text or None.
        qrels: ``qid, docid, grade`` (int grade >= 0); one row per judged pair.
            Unlisted pairs are grade 0.
    """

    name: str
    docs: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame

    def __post_init__(self) -> None:
        _check_table(self.docs, C.DOC_COLUMNS, f"{self.name} docs")
        _check_table(self.queries, C.QUERY_COLUMNS, f"{self.name} queries")
        _check_table(self.qrels, C.QREL_COLUMNS, f"{self.name} qrels")
        for table, key, what in (
            (self.docs, C.DOCID, "docs"),
            (self.queries, C.QID, "queries"),
        ):
            dup = table[key].duplicated(keep=False)
            if dup.any():
                row = int(np.flatnonzero(dup.to_numpy())[1])
                raise DataFormatError(
                    f"duplicate id {table[key].iloc[row]!r}",
                    path=f"{self.name} {what}",
                    row=row,
                    column=key,
                )
            empty = table[C.TEXT].str.strip().eq("")
            if empty.any():
                row = int(np.flatnonzero(empty.to_numpy())[0])
                raise DataFormatError(
                    f"empty text for id {table[key].iloc[row]!r}",
                    path=f"{self.name} {what}",
                    row=row,
                    column=C.TEXT,
                )
        if not pd.api.types.is_integer_dtype(self.qrels[C.GRADE]):
            raise DataFormatError(
                f"grades must be integers, got dtype {self.qrels[C.GRADE].dtype}",
                path=f"{self.name} qrels",
                column=C.GRADE,
            )
        negative = self.qrels[C.GRADE].to_numpy() < 0
        if negative.any():
            row = int(np.flatnonzero(negative)[0])
            raise DataFormatError(
                f"negative grade {self.qrels[C.GRADE].iloc[row]}",
                path=f"{self.name} qrels",
                row=row,
                column=C.GRADE,
            )
        for key, known in ((C.QID, self.queries[C.QID]), (C.DOCID, self.docs[C.DOCID])):
            unknown = ~self.qrels[key].isin(known)
            if unknown.any():
                row = int(np.flatnonzero(unknown.to_numpy())[0])
                raise DataFormatError(
                    f"qrels name {int(unknown.sum())} unknown {key}s, first {self.qrels[key].iloc[row]!r}",
                    path=f"{self.name} qrels",
                    row=row,
                    column=key,
                )

    @property
    def n_docs(self) -> int:
        return len(self.docs)

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    def summary(self) -> dict[str, int | str]:
        """Counts a user checks first: documents, queries, judged pairs."""
        return {
            "name": self.name,
            "docs": self.n_docs,
            "queries": self.n_queries,
            "qrels": len(self.qrels),
            "relevant_pairs": int((self.qrels[C.GRADE] > 0).sum()),
        }


def _check_table(table: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataFormatError(f"missing columns {missing}; have {list(table.columns)}", path=what)
    for col in required:
        if table[col].isna().any():
            row = int(np.flatnonzero(table[col].isna().to_numpy())[0])
            raise DataFormatError("missing value", path=what, row=row, column=col)


def drop_unknown_qrels(
    qrels: pd.DataFrame,
    docids: pd.Series,
    qids: pd.Series,
    *,
    source: str,
    policy: UnknownIds,
    quiet: bool = False,
) -> pd.DataFrame:
    """Apply the unknown-id policy to qrels before building a :class:`Collection`.

    With ``policy="drop"`` judged pairs naming documents or queries that the
    collection does not hold are removed, counted and logged; with ``"error"``
    the first one raises :class:`DataFormatError` naming the file and line.
    ``quiet`` logs the drop at debug level only (for a caller applying its own policy).
    """
    unknown = ~qrels[C.DOCID].isin(docids) | ~qrels[C.QID].isin(qids)
    if not unknown.any():
        return qrels
    if policy == "error":
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        bad = qrels.iloc[row]
        line = int(bad["_line"]) if "_line" in qrels.columns else None
        column = C.DOCID if bad[C.DOCID] not in set(docids) else C.QID
        raise DataFormatError(
            f"judged pair ({bad[C.QID]!r}, {bad[C.DOCID]!r}) names an unknown {column}; "
            f"{int(unknown.sum())} such rows in all (to skip them: `--unknown-ids drop` on the command line, `unknown_ids: drop` under `data:` in a YAML, or unknown_ids='drop' in Python)",
            path=source,
            line=line,
            column=column,
        )
    # quiet: a caller that applies its own policy to these rows (and says so) drops them here.
    logger.log(
        logging.DEBUG if quiet else logging.WARNING,
        "%s: dropped %d judged pairs naming unknown documents or queries", source, unknown.sum(),
    )  # fmt: skip
    return qrels.loc[~unknown].reset_index(drop=True)
