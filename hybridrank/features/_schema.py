"""The feature schema that travels with every model: names, dtypes and a version hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrank._atomic import write_text
from hybridrank.errors import DataFormatError

#: Bumped whenever the meaning of a feature changes (not just its presence).
FEATURE_VERSION = "1"


@dataclass(frozen=True)
class FeatureSchema:
    """Ordered feature names with dtypes.

    Attributes:
        names: Feature columns in model order.
        dtypes: One numpy dtype string per name.
        version: :data:`FEATURE_VERSION` when the schema was made.
    """

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    version: str = FEATURE_VERSION

    @property
    def hash(self) -> str:
        """SHA-256 prefix over version, names and dtypes: equal hashes, same inputs."""
        payload = json.dumps([self.version, list(self.names), list(self.dtypes)])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, names: Sequence[str]) -> FeatureSchema:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise DataFormatError(f"missing feature columns {missing}")
        return cls(names=tuple(names), dtypes=tuple(str(frame[n].dtype) for n in names))

    def check(self, frame: pd.DataFrame, *, source: str = "data") -> None:
        """Raise unless ``frame`` holds every feature with a compatible (numeric) dtype."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise DataFormatError(
                f"{len(missing)} features the model was trained on are missing: {missing[:10]}"
                f" (schema {self.hash})",
                path=source,
            )
        bad = [n for n in self.names if not pd.api.types.is_numeric_dtype(frame[n])]
        if bad:
            raise DataFormatError(f"features must be numeric; not numeric: {bad[:10]}", path=source)

    def matrix(self, frame: pd.DataFrame, *, source: str = "data") -> Any:
        """The feature matrix in schema order, float32 (NaN kept as missing)."""
        self.check(frame, source=source)
        return frame[list(self.names)].to_numpy(dtype="float32")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "hash": self.hash,
            "names": list(self.names),
            "dtypes": list(self.dtypes),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "schema") -> FeatureSchema:
        try:
            schema = cls(
                names=tuple(values["names"]),
                dtypes=tuple(values["dtypes"]),
                version=str(values["version"]),
            )
        except (KeyError, TypeError) as exc:
            raise DataFormatError(f"not a feature schema ({exc})", path=source) from None
        if "hash" in values and values["hash"] != schema.hash:
            raise DataFormatError(
                f"schema hash {values['hash']} does not match its contents ({schema.hash}); the file was edited",
                path=source,
            )
        if len(schema.names) != len(schema.dtypes):
            raise DataFormatError("names and dtypes differ in length", path=source)
        return schema

    def save(self, path: str | Path) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSchema:
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()), source=str(p))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON ({exc.msg})", path=p, line=exc.lineno) from None
