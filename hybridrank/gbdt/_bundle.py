"""The production model bundle: a run directory holding everything needed to serve and audit a model.

Layout::

    RUN_DIR/
      model/             native model (model.txt | model.json + model.ubj), model_dump.json, ranker.json
      schema.json        feature names, dtypes, version hash
      config.yaml        the config the run used
      metrics.json       per-bucket metrics of the cross-validated predictions
      report/            the per-bucket report (markdown, CSV, JSON, PNG)
      curves.png         training and validation NDCG@k by boosting round
      train_table.parquet  rows the final model was trained and explained on
      manifest.json      SHA-256 of every file above; checked on load
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridrank._atomic import recover_directory, write_text
from hybridrank._config import read_json
from hybridrank.errors import DataFormatError, MissingInputError
from hybridrank.features import CLICK_FEATURES, STORE_ALIASES, FeatureSchema
from hybridrank.gbdt._lambdamart import LambdaMARTRanker

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Folders written into a bundle after it is finished (by ``hybridrank importance``).
ADDED_LATER = ("importance/",)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(run_dir: Path) -> Path:
    """Record the SHA-256 of every file of the bundle (except the manifest)."""
    files = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(run_dir)): _sha256(p) for p in files}
    path = run_dir / MANIFEST
    write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def verify_manifest(run_dir: Path) -> None:
    """Raise :class:`DataFormatError` naming every file that changed or went missing."""
    path = run_dir / MANIFEST
    if not path.exists():
        raise DataFormatError(
            "no manifest.json: not a hybridrank bundle, or an unfinished run", path=run_dir
        )
    manifest = read_json(path, "manifest")
    if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
        raise DataFormatError("must map each file to its SHA-256", path=path)
    problems = []
    for name, expected in manifest.items():
        f = run_dir / name
        if not f.exists():
            problems.append(f"{name} is missing")
        elif _sha256(f) != expected:
            problems.append(f"{name} was modified")
    # A file dropped in later (a store, embeddings, a gate) would change what is served.
    for f in sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        name = str(f.relative_to(run_dir))
        if name not in manifest and not name.startswith(ADDED_LATER):
            problems.append(f"{name} was added after the bundle was written")
    if problems:
        raise DataFormatError(
            "bundle integrity check failed: "
            + "; ".join(problems)
            + ". Retrain or restore the files.",
            path=run_dir,
        )


@dataclass(frozen=True)
class GBDTBundle:
    """A loaded production bundle.

    Attributes:
        ranker: The fitted LambdaMART model.
        schema: The features it expects.
        config: The run's config as a plain mapping.
        path: Where it was loaded from.
    """

    ranker: LambdaMARTRanker
    schema: FeatureSchema
    config: dict[str, Any]
    path: Path

    @classmethod
    def load(cls, run_dir: str | Path, *, verify: bool = True) -> GBDTBundle:
        import yaml

        d = Path(run_dir)
        recover_directory(d, MANIFEST)  # a retrain killed between its two renames
        if not d.is_dir():
            raise MissingInputError(f"{d}: no such run directory")
        lacking = [n for n in ("schema.json", "model") if not (d / n).exists()]
        if lacking and not _listed(d, lacking):  # a run's own missing file: the manifest says
            kind = " (a hybrid bundle)" if (d / "hybrid.json").exists() else ""
            raise MissingInputError(
                f"{d}: not a `hybridrank train gbdt` run{kind}: it has no {' or '.join(lacking)}"
            )
        if verify:
            verify_manifest(d)
        schema = FeatureSchema.load(d / "schema.json")
        ranker = LambdaMARTRanker.load(d / "model")
        if list(schema.names) != list(ranker.feature_names_):
            raise DataFormatError("schema.json and the model name different features", path=d)
        config = (
            yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").exists() else {}
        )
        return cls(ranker=ranker, schema=schema, config=config or {}, path=d)

    def predict(self, table: pd.DataFrame, *, source: str = "data") -> np.ndarray:
        """Score rows of a table holding the schema's features (by name; extra columns ignored).

        The table brings every feature, click features included: this is the
        model alone. To have click features looked up in the run's
        click-feature store, rank with ``HybridRanker.load(run_dir)``.

        Raises:
            DataFormatError: Missing or non-numeric features, naming them (and
                ``HybridRanker`` where the missing ones are in the run's store).
        """
        missing = [n for n in self.schema.names if n not in table.columns]
        stored = [n for n in missing if n in CLICK_FEATURES or n in STORE_ALIASES]
        if stored and (self.path / "click_features").is_dir():
            raise DataFormatError(
                f"{len(missing)} features the model was trained on are missing: {missing[:10]}; "
                f"the click features among them ({len(stored)}) are in the run's click-feature "
                f"store, which predict() does not read: rank with "
                f"hybridrank.serve.HybridRanker.load({str(self.path)!r}).rank_table(table)",
                path=source,
            )
        X = self.schema.matrix(table, source=source)
        return self.ranker.predict(X)


def _listed(run_dir: Path, names: list[str]) -> bool:
    """Whether the folder's manifest lists any of ``names`` (a file or a folder's files):
    then they belong to this run and their absence is tampering, reported by the manifest."""
    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        return False
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(entries, dict) and any(
        key == name or key.startswith(f"{name}/") for key in entries for name in names
    )
