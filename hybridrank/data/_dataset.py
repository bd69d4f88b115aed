"""The dataset contract: one directory layout every workflow reads, whoever produced it.

A dataset is a directory holding a manifest (``dataset.yaml``) and parquet
tables in the data model of :mod:`hybridrank.columns`:

=============  ========  =====================================================
table          needed    columns (key first)
=============  ========  =====================================================
candidates     always    qid, docid, optional feature columns, ``y_expert``
                         (the qrels grade, 0 where unjudged) when qrels exist
splits         always    qid, freq, bucket, fold, tuning (one row per query)
impressions    optional  session_id, ts, qid, docid, position, click, dwell_s
queries        optional  qid, text [, description, narrative]
docs           optional  docid, text [, title]
qrels          optional  qid, docid, grade
llm_labels     optional  qid, docid, y_llm [, llm_score, ...]
=============  ========  =====================================================

The manifest records the producer (``source``), the schema version, counts,
the feature columns, how the splits were made (folds, buckets, the labelled
tuning/calibration query set and its requested size) and the SHA-256 of every
table file, checked on read. :meth:`Dataset.write` builds the new directory
beside the target and swaps it in, so a kill at any moment leaves the previous
complete dataset or the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hybridrank import columns as C
from hybridrank._atomic import recover_directory, staged_directory
from hybridrank.data._sources import sha256_file
from hybridrank.errors import (
    ChecksumError,
    DataFormatError,
    DatasetChangedError,
    MissingInputError,
)

logger = logging.getLogger(__name__)

#: Version of the directory layout; a reader refuses a newer one.
SCHEMA_VERSION = 1
MANIFEST = "dataset.yaml"
TUNING = "tuning"


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    Attributes:
        name: Table name (the file is ``NAME.parquet``).
        required: Columns every such table must have.
        key: Columns that identify a row; duplicates are an error.
        needed: Whether every dataset has it.
        optional_text: Columns the table may have; where present they hold
            text, or nothing (None) for rows without it.
    """

    name: str
    required: tuple[str, ...]
    key: tuple[str, ...]
    needed: bool = False
    optional_text: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("candidates", (C.QID, C.DOCID), (C.QID, C.DOCID), needed=True),
        TableSpec("splits", (C.QID, C.FREQ, C.BUCKET, C.FOLD, TUNING), (C.QID,), needed=True),
        TableSpec(
            "impressions",
            (C.SESSION_ID, C.QID, C.DOCID, C.POSITION, C.CLICK),
            (C.SESSION_ID, C.POSITION),
        ),
        TableSpec("queries", (C.QID, C.TEXT), (C.QID,), optional_text=C.QUERY_CONTEXT_COLUMNS),
        TableSpec("docs", (C.DOCID, C.TEXT), (C.DOCID,)),
        TableSpec("qrels", (C.QID, C.DOCID, C.GRADE), (C.QID, C.DOCID)),
        TableSpec("llm_labels", (C.QID, C.DOCID, C.Y_LLM), (C.QID, C.DOCID)),
    )
}


@dataclass(frozen=True)
class SplitInfo:
    """How a dataset's fixed splits were made (recorded in the manifest).

    Attributes:
        n_folds: Query folds.
        fold_seed: Seed of the fold assignment.
        buckets: The frequency-bucket definition (``kind``, ``edges``, ``names``).
        tuning_requested: Labelled tuning/calibration queries asked for.
        tuning_seed: Seed of the tuning-set draw.
        tuning_chosen: Tuning queries drawn (fewer than asked where too few
            queries have a relevant grade, or rounding per bucket; None: a
            manifest written before it was recorded).
    """

    n_folds: int = 5
    fold_seed: int = 0
    buckets: Mapping[str, Any] = field(default_factory=dict)
    tuning_requested: int = 0
    tuning_seed: int = 0
    tuning_chosen: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "n_folds": self.n_folds,
            "fold_seed": self.fold_seed,
            "buckets": _plain(self.buckets),
            "tuning_requested": self.tuning_requested,
            "tuning_seed": self.tuning_seed,
        }
        if self.tuning_chosen is not None:
            out["tuning_chosen"] = self.tuning_chosen
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: Path) -> SplitInfo:
        known = {"n_folds", "fold_seed", "buckets", "tuning_requested", "tuning_seed",
                 "tuning_chosen"}  # fmt: skip
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataFormatError(f"splits: unknown keys {unknown}", path=path / MANIFEST)
        return cls(**{k: values[k] for k in known if k in values})


def _plain(value: Any) -> Any:
    """YAML-safe copy: tuples to lists, numpy scalars to Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Dataset:
    """A dataset in memory; :meth:`read` and :meth:`write` move it to and from disk.

    Attributes:
        candidates: One row per (qid, docid) to rank, rows of a query contiguous.
        splits: One row per query: ``qid, freq, bucket, fold, tuning``.
        impressions: The click log, if any.
        queries: Query texts, if any.
        docs: Document texts, if any.
        qrels: Expert grades, if any.
        llm_labels: LLM (or semantic-judge) labels, if any.
        source: Who produced it and from what (free-form, YAML-safe).
        split_info: How the splits were made.
        features: Feature columns of ``candidates`` (models may use them).
        path: Where it was read from or last written.
    """

    candidates: pd.DataFrame
    splits: pd.DataFrame
    impressions: pd.DataFrame | None = None
    queries: pd.DataFrame | None = None
    docs: pd.DataFrame | None = None
    qrels: pd.DataFrame | None = None
    llm_labels: pd.DataFrame | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    split_info: SplitInfo = field(default_factory=SplitInfo)
    features: tuple[str, ...] = ()
    path: Path | None = None
    #: SHA-256 of the manifest it was read from: :meth:`update` refuses to write over a
    #: dataset another process rewrote meanwhile (its changes would be lost).
    manifest_sha256: str | None = field(default=None, compare=False, repr=False)

    # ----------------------------------------------------------------- views

    def table_frame(self, name: str) -> pd.DataFrame | None:
        """The table called ``name`` (see :data:`TABLES`), or None when absent."""
        if name not in TABLES:
            raise KeyError(f"no table {name!r} in the dataset contract; tables: {sorted(TABLES)}")
        frame: pd.DataFrame | None = getattr(self, name)
        return frame

    def has(self, name: str) -> bool:
        """Whether the dataset holds table ``name``."""
        return self.table_frame(name) is not None

    @property
    def has_texts(self) -> bool:
        return self.queries is not None and self.docs is not None

    @property
    def tuning_qids(self) -> set[str]:
        """The labelled tuning/calibration queries (left out of every evaluation)."""
        s = self.splits
        return set(s.loc[s[TUNING].to_numpy(dtype=bool), C.QID].astype(str))

    @property
    def bucket_names(self) -> list[str]:
        """Bucket names in their defined order (those present in the splits)."""
        present = set(self.splits[C.BUCKET].astype(str))
        names = [str(n) for n in self.split_info.buckets.get("names", ())]
        return [n for n in names if n in present] + sorted(present - set(names))

    def table(self) -> pd.DataFrame:
        """The candidate table with ``freq, bucket, fold, tuning`` joined from the splits."""
        per_q = self.splits.set_index(C.QID)
        keys = self.candidates[C.QID]
        out = self.candidates.drop(
            columns=[c for c in (C.FREQ, C.BUCKET, C.FOLD, TUNING) if c in self.candidates]
        ).copy()
        out[C.FREQ] = per_q[C.FREQ].reindex(keys).to_numpy()
        out[C.BUCKET] = per_q[C.BUCKET].reindex(keys).to_numpy()
        out[C.FOLD] = per_q[C.FOLD].reindex(keys).to_numpy()
        out[TUNING] = per_q[TUNING].reindex(keys).to_numpy(dtype=bool)
        return out

    def with_tables(self, **tables: pd.DataFrame | None) -> Dataset:
        """A copy with some tables replaced (validated)."""
        unknown = sorted(set(tables) - set(TABLES))
        if unknown:
            raise KeyError(f"unknown tables {unknown}; tables: {sorted(TABLES)}")
        out = replace(self, **tables)  # type: ignore[arg-type]
        out.validate()
        return out

    # ------------------------------------------------------------ validation

    def validate(self, where: Path | None = None) -> None:
        """Check every table against the contract.

        Raises:
            DataFormatError: Naming the table file, the row and the column.
        """
        root = where or self.path
        for spec in TABLES.values():
            frame = self.table_frame(spec.name)
            path = (root / spec.file) if root is not None else Path(spec.file)
            if frame is None:
                if spec.needed:
                    raise DataFormatError(f"the dataset has no {spec.name} table", path=path)
                continue
            _check_table(frame, spec, path)
        cand = self.candidates
        qid = cand[C.QID].to_numpy()
        if len(qid):
            starts = np.r_[True, qid[1:] != qid[:-1]]
            if len(np.unique(qid[starts])) != int(starts.sum()):
                raise DataFormatError(
                    "rows of a query must be contiguous (sort the candidates by qid)",
                    path=_file(root, "candidates"),
                )
        known = set(self.splits[C.QID])
        missing = ~cand[C.QID].isin(known).to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataFormatError(
                f"query {cand[C.QID].iloc[row]!r} has no row in the splits table",
                path=_file(root, "candidates"),
                row=row,
                column=C.QID,
            )
        folds = self.splits[C.FOLD].to_numpy()
        if len(folds) and (folds.min() < 0 or folds.max() >= self.split_info.n_folds):
            raise DataFormatError(
                f"fold ids must lie in [0, {self.split_info.n_folds})",
                path=_file(root, "splits"),
                column=C.FOLD,
            )
        absent = [f for f in self.features if f not in cand.columns]
        if absent:
            raise DataFormatError(
                f"feature columns {absent} are declared in the manifest but not in the table",
                path=_file(root, "candidates"),
            )

    # ---------------------------------------------------------------- summary

    def summary(self) -> dict[str, Any]:
        """Counts of what the dataset holds (the manifest's ``counts``)."""
        counts: dict[str, Any] = {
            "queries": len(self.splits),
            "queries_with_candidates": int(self.candidates[C.QID].nunique()),
            "candidates": len(self.candidates),
            "tuning_queries": len(self.tuning_qids),
        }
        if self.impressions is not None:
            log = self.impressions
            counts.update(
                sessions=int(log[C.SESSION_ID].nunique()),
                impressions=len(log),
                clicks=int(log[C.CLICK].sum()),
            )
        for name in ("queries", "docs", "qrels", "llm_labels"):
            frame = self.table_frame(name)
            if frame is not None:
                counts[f"{name}_rows"] = len(frame)
        return counts

    def bucket_table(self) -> pd.DataFrame:
        """Per bucket: queries, sessions, queries with candidates and with a relevant one."""
        s = self.splits.copy()
        with_cand = set(self.candidates[C.QID])
        s["with_candidates"] = s[C.QID].isin(with_cand)
        if C.Y_EXPERT in self.candidates:
            rel = self.candidates.groupby(C.QID, sort=False)[C.Y_EXPERT].max() > 0
            s["with_relevant"] = rel.reindex(s[C.QID], fill_value=False).to_numpy()
        agg: dict[str, Any] = {
            "queries": (C.QID, "size"),
            "sessions": (C.FREQ, "sum"),
            "with_candidates": ("with_candidates", "sum"),
            "tuning": (TUNING, "sum"),
        }
        if "with_relevant" in s:
            agg["with_relevant_candidate"] = ("with_relevant", "sum")
        out = s.groupby(C.BUCKET, sort=False).agg(**agg)
        return out.reindex(self.bucket_names).fillna(0).astype(int)

    # -------------------------------------------------------------------- I/O

    def write(self, out_dir: str | Path, *, extra_files: Mapping[str, str] | None = None) -> Path:
        """Write the dataset to ``out_dir``, replacing what is there as a whole.

        The new directory is built beside the target (``.NAME.tmp-PID``), its
        manifest written last, then swapped in by rename; a kill at any moment
        leaves the previous complete dataset (or none) or the new one.

        Args:
            out_dir: Target directory.
            extra_files: Small text files to write beside the tables
                (for example the world config a simulator used).
        """
        self.validate(Path(out_dir))
        out = Path(out_dir)
        with staged_directory(out, markers=(MANIFEST,)) as tmp:
            entries: dict[str, Any] = {}
            for spec in TABLES.values():
                frame = self.table_frame(spec.name)
                if frame is None:
                    continue
                frame.to_parquet(tmp / spec.file, index=False)
                entries[spec.name] = {
                    "file": spec.file,
                    "rows": len(frame),
                    "sha256": sha256_file(tmp / spec.file),
                }
            for name, text in (extra_files or {}).items():
                if "/" in name or name in (MANIFEST,) or name.endswith(".parquet"):
                    raise ValueError(f"extra file name {name!r} is not allowed")
                (tmp / name).write_text(text)
            manifest = {
                "hybridrank_dataset": SCHEMA_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": _plain(self.source),
                "counts": self.summary(),
                "features": list(self.features),
                "splits": self.split_info.to_dict(),
                "tables": entries,
                "extra_files": sorted(extra_files or {}),
            }
            (tmp / MANIFEST).write_text(
                "# hybridrank dataset manifest: written last; every table's SHA-256 is checked on read.\n"
                + yaml.safe_dump(manifest, sort_keys=False)
            )
        return out

    @classmethod
    def read(cls, path: str | Path, *, verify: bool = True) -> Dataset:
        """Read and validate a dataset directory.

        Raises:
            FileNotFoundError: No dataset there (the message says how to make one).
            ChecksumError: A table file was changed after it was written.
            DataFormatError: A table breaks the contract (file, row, column named).
        """
        root = Path(path)
        recover_directory(root, MANIFEST)
        manifest_path = root / MANIFEST
        if not manifest_path.exists():
            hint = (
                " (it looks like a world written by an older hybridrank: rebuild it with "
                "`hybridrank world build`)"
                if (root / "candidates.parquet").exists()
                else ""
            )
            raise MissingInputError(
                f"{root}: not a hybridrank dataset, no {MANIFEST}{hint}; make one with "
                "`hybridrank dataset import` or `hybridrank world build`"
            )
        try:
            manifest = yaml.safe_load(manifest_path.read_text())
        except yaml.YAMLError as exc:
            raise DataFormatError(f"not valid YAML ({exc})", path=manifest_path) from None
        if not isinstance(manifest, dict) or "hybridrank_dataset" not in manifest:
            raise DataFormatError("not a hybridrank dataset manifest", path=manifest_path)
        version = manifest["hybridrank_dataset"]
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise DataFormatError(
                f"dataset schema version {version!r}; this hybridrank reads up to "
                f"{SCHEMA_VERSION}: upgrade hybridrank",
                path=manifest_path,
            )
        entries = manifest.get("tables") or {}
        unknown = sorted(set(entries) - set(TABLES))
        if unknown:
            raise DataFormatError(f"unknown tables {unknown}", path=manifest_path)
        tables: dict[str, pd.DataFrame] = {}
        for name, entry in entries.items():
            file = root / TABLES[name].file
            if not file.exists():
                raise DataFormatError(
                    f"table {name!r} is listed in the manifest but its file is missing",
                    path=file,
                )
            if verify and sha256_file(file) != entry.get("sha256"):
                raise ChecksumError(
                    f"{file}: changed after the dataset was written (SHA-256 differs from "
                    f"{MANIFEST}); rebuild or re-import the dataset"
                )
            tables[name] = _read_parquet(file)
            # Without the checksum (verify=False) the row count still catches a table swapped
            # for another or cut short by a copy.
            rows = entry.get("rows")
            if rows is not None and (not isinstance(rows, int) or rows != len(tables[name])):
                raise DataFormatError(
                    f"table {name!r} has {len(tables[name])} rows, the manifest says {rows!r}; "
                    "rebuild or re-import the dataset",
                    path=file,
                )
        for spec in TABLES.values():
            if spec.needed and spec.name not in tables:
                raise DataFormatError(f"the manifest lists no {spec.name} table", path=manifest_path)
        split_info = SplitInfo.from_dict(manifest.get("splits") or {}, root)
        dataset = cls(
            candidates=tables["candidates"],
            splits=tables["splits"],
            impressions=tables.get("impressions"),
            queries=tables.get("queries"),
            docs=tables.get("docs"),
            qrels=tables.get("qrels"),
            llm_labels=tables.get("llm_labels"),
            source=manifest.get("source") or {},
            split_info=split_info,
            features=tuple(manifest.get("features") or ()),
            path=root,
            manifest_sha256=sha256_file(manifest_path),
        )
        dataset.validate(root)
        return dataset

    def update(self, **tables: pd.DataFrame | None) -> Dataset:
        """Replace tables of the dataset on disk (at :attr:`path`), atomically.

        The whole directory is rewritten beside the old one and swapped in, so
        a kill leaves the old dataset or the new one.
        """
        if self.path is None:
            raise ValueError("update() needs a dataset that was read from or written to disk")
        manifest_path = self.path / MANIFEST
        if self.manifest_sha256 is not None and (
            not manifest_path.exists() or sha256_file(manifest_path) != self.manifest_sha256
        ):
            raise DatasetChangedError(
                f"{self.path}: rewritten by another process since this one read it; nothing "
                "written (its changes are kept): run the command again (LLM answers are cached)"
            )
        new = self.with_tables(**tables)
        extra = {}
        manifest = yaml.safe_load((self.path / MANIFEST).read_text())
        for name in manifest.get("extra_files") or ():
            if (self.path / name).exists():
                extra[name] = (self.path / name).read_text()
        new.write(self.path, extra_files=extra)
        return replace(new, path=self.path, manifest_sha256=sha256_file(manifest_path))


def _file(root: Path | None, table: str) -> Path:
    name = TABLES[table].file
    return root / name if root is not None else Path(name)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataFormatError(
            f"not a readable parquet file: {type(exc).__name__}: {exc}", path=path
        ) from None
    return frame


def _check_table(frame: pd.DataFrame, spec: TableSpec, path: Path) -> None:
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{spec.name}: missing columns {missing}; it has {list(frame.columns)}", path=path
        )
    for col in spec.key:
        if col in (C.QID, C.DOCID, C.SESSION_ID):
            bad = frame[col].isna().to_numpy()
            if bad.any():
                raise DataFormatError(
                    f"{spec.name}: missing id", path=path, row=int(np.flatnonzero(bad)[0]), column=col
                )
    for col in spec.optional_text:
        if col in frame.columns:
            values = frame[col]
            bad = ~values.map(lambda v: v is None or isinstance(v, str)).to_numpy(dtype=bool)
            bad &= values.notna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                value = values.iloc[row]
                value = value.item() if isinstance(value, np.generic) else value
                raise DataFormatError(
                    f"{spec.name}: {col} must be text or missing, got {value!r}",
                    path=path, row=row, column=col,
                )  # fmt: skip
    dup = frame.duplicated(list(spec.key)).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        key = ", ".join(f"{k}={frame[k].iloc[row]!r}" for k in spec.key)
        raise DataFormatError(
            f"{spec.name}: duplicate row for ({key})", path=path, row=row, column=spec.key[-1]
        )
    if spec.name == "impressions":
        pos = frame[C.POSITION].to_numpy()
        if len(pos) and (not np.issubdtype(pos.dtype, np.number) or (pos < 1).any()):
            row = int(np.flatnonzero(~(pd.to_numeric(frame[C.POSITION], errors="coerce") >= 1))[0])
            raise DataFormatError(
                "impressions: positions are 1-based whole numbers", path=path, row=row,
                column=C.POSITION,
            )
        click = frame[C.CLICK].to_numpy()
        bad = ~np.isin(click, (0, 1))
        if bad.any():
            raise DataFormatError(
                "impressions: click must be 0 or 1", path=path, row=int(np.flatnonzero(bad)[0]),
                column=C.CLICK,
            )
    if spec.name == "splits":
        freq = pd.to_numeric(frame[C.FREQ], errors="coerce").to_numpy()
        bad = ~(freq >= 0)
        if bad.any():
            raise DataFormatError(
                "splits: freq must be a count >= 0", path=path, row=int(np.flatnonzero(bad)[0]),
                column=C.FREQ,
            )


__all__ = ["MANIFEST", "SCHEMA_VERSION", "TABLES", "TUNING", "Dataset", "SplitInfo", "TableSpec"]
