"""Ranking with trained models: one query online, or whole candidate tables in batch.

Two bundle kinds load into :class:`HybridRanker`:

* a GBDT run directory (``hybridrank train gbdt``): the click LambdaMART alone;
* a hybrid bundle (``hybridrank bundle``): the click LambdaMART, one or more
  LLM-supervised models (neural runs or GBDT runs; several are averaged as
  the experiment's ``llm_ensemble`` is), optional anchor experts (GBDT runs:
  FAMOL, the gold expert; or raw features: the mean dwell of a pair's clicks,
  read from the store) with fixed weights, and the frequency gate, fused
  by :func:`hybridrank.ensemble.fuse` as the experiment's stacker fuses them:
  ``sum_a w_a * z(anchor_a) + (1 - sum_a w_a) * [g(freq) * z(click) +
  (1 - g(freq)) * z(llm)]``, z-scored (or ranked) within the query.

Click features come from the bundle's click-feature store (the training
log's aggregates); every other feature of the model's schema must come with
the request, and a missing one is an error naming it.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from hybridrank import columns as C
from hybridrank._atomic import recover_directory, staging_directory
from hybridrank._config import read_json
from hybridrank._estimator import SklearnTags
from hybridrank.data import check_unique_pairs, id_text, ids_as_text, join_titles
from hybridrank.ensemble import (
    NORMALISERS,
    TIE_BREAKS,
    Gate,
    check_anchors,
    fuse,
    gate_from_dict,
    missing_last,
    normalised_mean,
    text_order,
)
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError, OutputExistsError
from hybridrank.features import CLICK_FEATURES, STORE_ALIASES, FeatureSchema
from hybridrank.gbdt import GBDTBundle, verify_manifest, write_manifest
from hybridrank.neural import BiEncoderRanker
from hybridrank.serve._store import ClickFeatureStore

logger = logging.getLogger(__name__)

HYBRID_META = "hybrid.json"
STORE_DIR = "click_features"
_CLICK = frozenset(CLICK_FEATURES)
#: Log features a request may leave out, read from the store under their click-feature
#: name: an imported log's mean logged position is the store's ``qd_mean_position``
#: (the same mean over the same log; NaN for a pair the log never showed).
#: Columns :meth:`HybridRanker.rank_table` adds (and ``<anchor>_score`` per anchor expert);
#: an input column of that name is an error.
OUTPUT_COLUMNS = ("score", "rank", "click_score", "llm_score", "gate")
#: The bundle layout ``hybrid.json`` describes; version 1 had one LLM model and no anchors.
HYBRID_FORMAT = 3
#: Format 3 adds raw-feature anchors; a bundle without one is written at format 2, which
#: earlier versions read.
_FORMAT_WITHOUT_RAW_ANCHORS = 2

Docs = pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Ranking:
    """One query's ranking.

    Attributes:
        docids: Documents, best first.
        scores: Final scores, aligned with ``docids`` (descending).
        components: Per-model scores aligned with ``docids`` before the
            fusion's normalisation (``click``; ``llm``: the LLM model's raw
            score, or with several LLM models the per-query mean of their
            z-scores; each anchor's raw score under its name) and the ``gate`` value.
    """

    docids: np.ndarray
    scores: np.ndarray
    components: Mapping[str, Any]

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({C.DOCID: self.docids, "score": self.scores})
        frame["rank"] = np.arange(1, len(frame) + 1)
        for name, value in self.components.items():
            frame[name] = value
        return frame


class _StoreLookup:
    """One request's click features from the store, looked up by the first member that
    needs them and shared by the others (a bundle's click model, GBDT members and raw
    anchors all read the same pairs)."""

    def __init__(self, store: ClickFeatureStore | None, qid: str, docids: np.ndarray) -> None:
        self.store = store
        self.qid = qid
        self.docids = docids
        self._found: dict[str, np.ndarray] | None = None

    def __call__(self) -> Mapping[str, np.ndarray]:
        """``{feature: values}`` for the request's documents; empty without a store."""
        if self._found is None:
            found = {} if self.store is None else self.store.lookup(self.qid, self.docids)
            for values in found.values():
                values.flags.writeable = False  # shared by every member of the request
            self._found = found
        return self._found


class _LLMScorer(Protocol):
    """The LLM-supervised side of a hybrid bundle."""

    def score(
        self,
        qid: str,
        query_text: str | None,
        docids: np.ndarray,
        columns: Mapping[str, Any],
        stored: _StoreLookup,
    ) -> np.ndarray: ...

    def score_table(self, table: pd.DataFrame, query_text: pd.Series | None) -> np.ndarray: ...


def _column(values: Any) -> np.ndarray:
    """One request column as an array; a list mixing numbers and text stays as it was sent
    (object), where ``np.asarray`` would turn every number into text."""
    array = np.asarray(values)
    mixed = (
        array.dtype.kind in "US"
        and not isinstance(values, np.ndarray)
        and any(not isinstance(v, str | bytes) for v in values)
    )
    return np.asarray(values, dtype=object) if mixed else array


def _as_columns(docs: Docs, keep: frozenset[str]) -> dict[str, Any]:
    """Request documents as ``{column: array}`` (a DataFrame, a list of records or a mapping).

    Only the ``keep`` columns of a DataFrame are converted (the others cost time, not use).
    """
    if isinstance(docs, pd.DataFrame):
        twice = sorted(set(docs.columns[docs.columns.duplicated()]) & keep)
        if twice:
            raise DataFormatError(f"docs name the columns {twice} twice")
        return {c: docs[c].to_numpy() for c in docs.columns if c in keep}
    if isinstance(docs, Mapping):
        columns = {k: _column(v) for k, v in docs.items()}
        lengths = {k: (v.shape[0] if v.ndim else 1) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataFormatError(
                f"the columns of docs differ in length: {lengths}; each needs one value per "
                "document"
            )
        return columns
    if isinstance(docs, str | bytes) or not isinstance(docs, Iterable):
        raise DataFormatError(
            f"docs must be a DataFrame, a list of mappings or a mapping of columns, "
            f"got {type(docs).__name__}"
        )
    records = list(docs)
    if not records:
        return {C.DOCID: np.array([], dtype=object)}
    if records and not all(isinstance(r, Mapping) for r in records):
        raise DataFormatError(
            "docs must be a DataFrame, a list of mappings or a mapping of columns"
        )
    keys = [k for k in dict.fromkeys(k for r in records for k in r) if k in keep]
    for i, record in enumerate(records):
        # A missing title is no title; any other missing value must not become NaN
        # ("no evidence") silently.
        absent = [k for k in keys if k not in record and k != C.TITLE]
        if absent:
            raise DataFormatError(f"document record {i} lacks {absent}; others have them", row=i)
    return {k: _column([r.get(k, "") for r in records]) for k in keys}


def _with_titles(columns: dict[str, Any], source: str) -> dict[str, Any]:
    """A request's ``title`` joined into its ``text`` as at import (title, then body)."""
    if C.TITLE not in columns:
        return columns
    frame = pd.DataFrame(
        {c: np.asarray(columns[c], dtype=object).ravel() for c in (C.TITLE, C.TEXT) if c in columns}
    )
    if C.TEXT not in frame:
        frame[C.TEXT] = ""
    out = {k: v for k, v in columns.items() if k != C.TITLE}
    out[C.TEXT] = join_titles(frame)[C.TEXT].to_numpy()
    return out


def _as_numbers(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float values, mask of entries to refuse); numbers already pass without
    parsing (the online fast path).

    Text (``"3.5"``) and booleans are not numbers, online as in batch: a model
    is trained on numbers, and a string that parses is a sign of a column read
    as text. The mask holds the entries that are no number at all where there
    are any (the word that made a CSV column text is the one to name), else
    the numbers given as text; every masked entry's value is NaN.
    """
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64), np.zeros(raw.shape[0], dtype=bool)
    if raw.dtype.kind == "b":
        return np.full(raw.shape[0], np.nan), np.ones(raw.shape[0], dtype=bool)
    series = pd.Series(raw.ravel(), dtype=object)
    kinds = series.map(type)
    boolean = kinds.map(lambda t: issubclass(t, bool | np.bool_)).to_numpy(bool)
    text = kinds.map(lambda t: issubclass(t, str | bytes)).to_numpy(bool)
    present = series.notna().to_numpy()
    parsed = pd.to_numeric(series.where(~boolean), errors="coerce").to_numpy(dtype=np.float64)
    unparsable = (np.isnan(parsed) & present) | boolean
    values = np.where(text, np.nan, parsed)
    # A CSV column with one word in it is read as text whole: the word is the entry to name
    # first, not the column's first (valid) number.
    return values, unparsable if unparsable.any() else text


def check_frequencies(values: npt.ArrayLike, *, source: str) -> np.ndarray:
    """Query frequencies as given to the gate: numbers >= 0, never NaN.

    Raises:
        DataFormatError: Naming ``source``, the first bad row and the value.
    """
    raw = np.asarray(values)
    freq, unparsed = _as_numbers(raw)
    bad = unparsed | ~np.isfinite(freq) | (freq < 0)
    if bad.any():
        row = int(np.flatnonzero(unparsed if unparsed.any() else bad)[0])  # a word first
        value = raw[row].item() if isinstance(raw[row], np.generic) else raw[row]
        raise DataFormatError(
            f"frequency {value!r} is not a number >= 0 (sessions of the query; 0 for a "
            "query the log never saw)",
            path=source,
            row=row,
            column=C.FREQ,
        )
    return freq


def _feature_matrix(
    names: Sequence[str],
    columns: Mapping[str, Any],
    click: Mapping[str, np.ndarray],
    n: int,
    *,
    source: str,
) -> np.ndarray:
    missing = [f for f in names if f not in click and f not in columns]
    if missing:
        raise DataFormatError(
            f"{len(missing)} features the model needs are missing: {missing[:10]}. Click features "
            "come from the bundle's store; every other feature must be a column of the request",
            path=source,
        )
    X = np.empty((n, len(names)), dtype=np.float32)
    for j, f in enumerate(names):
        # A click feature sent with the request (a fresher log) wins over the store.
        value = columns[f] if f in columns else click[f]
        try:
            X[:, j] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataFormatError(f"feature {f!r} is not numeric", path=source) from None
    return X


class _GBDTScorer:
    def __init__(self, bundle: GBDTBundle, store: ClickFeatureStore | None) -> None:
        self.bundle = bundle
        self.store = store
        self.names = list(bundle.schema.names)
        self.needs_click = any(f in _CLICK or f in STORE_ALIASES for f in self.names)

    def score(
        self,
        qid: str,
        query_text: str | None,
        docids: np.ndarray,
        columns: Mapping[str, Any],
        stored: _StoreLookup,
    ) -> np.ndarray:
        click = stored() if self.needs_click else {}
        for alias, name in STORE_ALIASES.items():
            if alias in self.names and alias not in columns and name in click:
                click = {**click, alias: click[name]}
        X = _feature_matrix(self.names, columns, click, docids.shape[0], source="request")
        return self.bundle.ranker.predict(X)

    def score_table(self, table: pd.DataFrame, query_text: pd.Series | None) -> np.ndarray:
        missing_click = [f for f in self.names if f in _CLICK and f not in table.columns]
        aliased = [f for f in self.names if f in STORE_ALIASES and f not in table.columns]
        if (missing_click or aliased) and self.store is not None:
            joined = self.store.join(table)
            # As online: a click feature the request brings wins over the store.
            for f in self.names:
                if f in _CLICK and f in table.columns:
                    joined[f] = table[f].to_numpy()
            for f in aliased:
                joined[f] = joined[STORE_ALIASES[f]].to_numpy()
            table = joined
        # The model alone (GBDTBundle.predict would point a user to the store, read here).
        return self.bundle.ranker.predict(self.bundle.schema.matrix(table, source="candidates"))


class _FeatureScorer:
    """A raw feature as an expert: its value times its sign, a missing one below every
    present one of its query (:func:`~hybridrank.ensemble.missing_last`), as the experiment
    scores its raw baselines."""

    def __init__(self, feature: RawFeature, store: ClickFeatureStore | None) -> None:
        self.feature = feature
        self.store = store
        self.names = [feature.column]

    def _missing(self, source: str) -> DataFormatError:
        return DataFormatError(
            f"the anchor on feature {self.feature.column!r} needs it: give it as a column of "
            "the request (this bundle has no click-feature store that holds it)",
            path=source,
            column=self.feature.column,
        )

    def _numbers(self, raw: Any, source: str) -> np.ndarray:
        """The request's values of the feature: numbers, NaN where missing; inf refused."""
        given = np.asarray(raw).ravel()
        values, unparsed = _as_numbers(given)
        bad = unparsed | np.isinf(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"not a finite number: {given[row]!r}",
                path=source, row=row, column=self.feature.column,
            )  # fmt: skip
        return values

    def score(
        self,
        qid: str,
        query_text: str | None,
        docids: np.ndarray,
        columns: Mapping[str, Any],
        stored: _StoreLookup,
    ) -> np.ndarray:
        column = self.feature.column
        if column in columns:  # sent with the request (a fresher log) wins, as for the models
            values = self._numbers(columns[column], f"query {qid!r}")
        else:
            found = stored()
            if column not in found:
                raise self._missing(f"query {qid!r}")
            values = found[column]
        return missing_last(values, sign=self.feature.sign, offsets=np.array([0, docids.shape[0]]))

    def score_table(self, table: pd.DataFrame, query_text: pd.Series | None) -> np.ndarray:
        column = self.feature.column
        if column in table.columns:
            values = self._numbers(table[column].to_numpy(), "candidates")
        elif self.store is not None and column in _CLICK:
            values = self.store.join(table[[C.QID, C.DOCID]])[column].to_numpy(dtype=np.float64)
        else:
            raise self._missing("candidates")
        return missing_last(values, sign=self.feature.sign, qid=table[C.QID].to_numpy())


class _NeuralScorer:
    def __init__(self, ranker: Any, embeddings: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.ranker = ranker
        self.doc_row: dict[str, int] = {}
        self.doc_emb: np.ndarray | None = None
        if embeddings is not None:
            ids, emb = embeddings
            self.doc_row = {str(d): i for i, d in enumerate(ids)}
            self.doc_emb = emb

    def _doc_vectors(self, docids: np.ndarray, texts: Any) -> np.ndarray:
        rows = [self.doc_row.get(str(d), -1) for d in docids]
        if self.doc_emb is not None and all(r >= 0 for r in rows):
            return self.doc_emb[rows]
        if texts is None:
            unknown = [str(d) for d, r in zip(docids, rows, strict=True) if r < 0][:5]
            raise DataFormatError(
                f"documents {unknown} have no stored embedding and the request has no `text` column"
            )
        vectors = np.asarray(self.ranker.encode_documents([str(t) for t in texts]))
        if self.doc_emb is not None:
            known = np.asarray(rows) >= 0
            vectors[known] = self.doc_emb[np.asarray(rows)[known]]
        return vectors

    def score(
        self,
        qid: str,
        query_text: str | None,
        docids: np.ndarray,
        columns: Mapping[str, Any],
        stored: _StoreLookup,
    ) -> np.ndarray:
        if query_text is None:
            raise DataFormatError(
                "the neural model needs the query text: pass context={'text': ...}"
            )
        return self._pairs([query_text], np.zeros(docids.shape[0], dtype=np.int64), docids,
                           columns.get(C.TEXT))  # fmt: skip

    def score_table(self, table: pd.DataFrame, query_text: pd.Series | None) -> np.ndarray:
        if query_text is None:
            raise DataFormatError(
                "the neural model needs query texts: a `query` column or --queries FILE"
            )
        # One batched pass over the table: each distinct query text encoded once.
        codes, uniques = pd.factorize(query_text.astype(str))
        texts = table[C.TEXT].to_numpy() if C.TEXT in table.columns else None
        docids = table[C.DOCID].astype(str).to_numpy()
        return self._pairs(list(uniques), codes, docids, texts)

    def _pairs(
        self, queries: list[str], query_of_row: np.ndarray, docids: np.ndarray, texts: Any
    ) -> np.ndarray:
        """Scores of rows pairing ``queries[query_of_row[i]]`` with document ``i``."""
        if isinstance(self.ranker, BiEncoderRanker):  # the query tower too
            docs = self._doc_vectors(docids, texts)
            q = np.asarray(self.ranker.encode_queries(queries))[query_of_row]
            return np.einsum("ij,ij->i", q, docs).astype(np.float64)
        if texts is None:
            raise DataFormatError("the cross-encoder needs the documents' `text` column")
        pairs = [(queries[i], str(t)) for i, t in zip(query_of_row, texts, strict=True)]
        return np.asarray(self.ranker.predict(pairs), dtype=np.float64)


def _load_neural(directory: Path, device: str | None) -> Any:
    from hybridrank.neural import RANKERS

    meta = directory / "ranker.json"
    if not meta.exists():
        raise MissingInputError(f"{meta}: missing; is {directory} a saved neural model?")
    kind = json.loads(meta.read_text()).get("architecture")
    if kind not in RANKERS:
        raise DataFormatError(f"unknown neural architecture {kind!r}", path=meta)
    return RANKERS[kind].load(directory, device=device)


@dataclass(frozen=True)
class RawFeature:
    """A raw input feature served as an expert (the experiment's ``raw_dwell``, ...).

    Attributes:
        column: The feature: a click feature of the bundle's store, or a column
            every request brings.
        sign: 1: higher ranks first; -1: lower ranks first.
    """

    column: str
    sign: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ConfigError(f"a raw feature needs a column name, got {self.column!r}")
        if self.sign not in (1.0, -1.0):
            raise ConfigError(
                f"raw feature {self.column!r}: sign must be 1 or -1, got {self.sign!r}"
            )


@dataclass(frozen=True)
class Anchor:
    """An anchor expert of a fused bundle, mixed into the score with a fixed weight: a GBDT
    run, or a raw feature.

    Attributes:
        name: What it is called (``famol``, ``gold_gbdt``, ``raw_dwell``);
            ``rank_table`` adds ``<name>_score``.
        bundle: The GBDT run (None for a raw feature).
        weight: Its share of the fused score, in [0, 1].
        feature: The raw feature (None for a GBDT run).
    """

    name: str
    bundle: GBDTBundle | None
    weight: float
    feature: RawFeature | None = None

    def __post_init__(self) -> None:
        if (self.bundle is None) == (self.feature is None):
            raise ConfigError(
                f"anchor {self.name!r}: give a GBDT run or a raw feature, one of them"
            )


class HybridRanker(SklearnTags):
    """Scores candidates with a trained bundle: GBDT alone or the frequency-gated fusion.

    Example:
        >>> ranker = HybridRanker.load("runs/hybrid")  # doctest: +SKIP
        >>> ranker.rank("q17", docs, {"text": "vitamin d and bone health"}).to_frame()  # doctest: +SKIP

    Attributes:
        click: The click LambdaMART bundle.
        store: Click features of the training log (None: the request brings them).
        llm: The LLM-supervised scorers (None: GBDT-only); several are combined
            as their per-query normalised mean (the experiment's ``llm_ensemble``).
        anchors: Anchor experts mixed in with fixed weights (empty: none).
        gate: g(freq), the click model's weight within the gated mix (None: GBDT-only).
        normalisation: Per-query score normalisation of the fusion.
        tie_break: ``text``: documents with exactly the same score are ranked
            by the text order (the mean of the request's ``semantic_similarity``
            and ``bm25`` within-query percentiles, those it has), as the
            experiment and ``train gbdt``'s report rank them; ``none``: in
            request order. Scores are never changed.
        path: Where the bundle was loaded from.
    """

    def __init__(
        self,
        click: GBDTBundle,
        *,
        store: ClickFeatureStore | None = None,
        llm: _LLMScorer | Sequence[_LLMScorer] | None = None,
        gate: Gate | None = None,
        anchors: Sequence[Anchor] = (),
        normalisation: str = "zscore",
        tie_break: str = "text",
        path: Path | None = None,
    ) -> None:
        if (llm is None) != (gate is None):
            raise ConfigError("a fused ranker needs both an LLM model and a gate")
        if anchors and llm is None:
            raise ConfigError("anchor experts need a fused ranker (an LLM model and a gate)")
        if normalisation not in NORMALISERS:
            raise ConfigError(f"normalisation must be one of {sorted(NORMALISERS)}")
        if tie_break not in TIE_BREAKS:
            raise ConfigError(f"tie_break must be one of {list(TIE_BREAKS)}, got {tie_break!r}")
        scorers = None if llm is None else tuple(llm) if isinstance(llm, Sequence) else (llm,)
        if scorers is not None and not scorers:
            raise ConfigError("a fused ranker needs at least one LLM model")
        check_anchors([(a.name, a.weight) for a in anchors], source="HybridRanker")
        self.click = click
        self.store = store
        self.llm = scorers
        self.gate = gate
        self.anchors = tuple(anchors)
        self.normalisation = normalisation
        self.tie_break = tie_break
        self.path = path
        self._click = _GBDTScorer(click, store)
        self._anchors = [
            _GBDTScorer(a.bundle, store) if a.bundle is not None
            else _FeatureScorer(cast(RawFeature, a.feature), store)
            for a in self.anchors
        ]  # fmt: skip
        names = set(click.schema.names)
        for scorer in [*(scorers or ()), *self._anchors]:
            if isinstance(scorer, _GBDTScorer | _FeatureScorer):
                names |= set(scorer.names)
        # The text scores travel too: they order exact ties (tie_break: text).
        self._request_columns = frozenset({C.DOCID, C.TEXT, C.TITLE, C.SEMANTIC, C.BM25, *names})
        self.output_columns = (*OUTPUT_COLUMNS, *(f"{a.name}_score" for a in self.anchors))

    @property
    def fused(self) -> bool:
        return self.llm is not None

    # --------------------------------------------------- the ranker contract

    #: Built from trained models: ready to predict from construction on.
    _requires_fit = False
    #: The constructor's arguments: ``get_params`` returns them as stored.
    _PARAMS = ("click", "store", "llm", "gate", "anchors", "normalisation", "tie_break", "path")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments (scikit-learn style; ``clone`` rebuilds from them)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> HybridRanker:
        """Replace constructor arguments; the ranker is rebuilt and checked as a new one
        (an invalid value raises and leaves it unchanged)."""
        unknown = sorted(set(params) - set(self._PARAMS))
        if unknown:
            raise ValueError(
                f"HybridRanker has no parameters {unknown}; its parameters are {list(self._PARAMS)}"
            )
        values = {**self.get_params(), **params}
        # Built and checked first: an invalid value leaves this ranker as it was.
        fresh = type(self)(values.pop("click"), **values)
        self.__dict__.update(fresh.__dict__)
        return self

    def fit(self, *args: Any, **kwargs: Any) -> HybridRanker:
        """Nothing to learn: a HybridRanker is built from trained models and is fitted
        from construction on (like scikit-learn's ``FrozenEstimator``). Returns the ranker."""
        return self

    def predict(self, candidates: pd.DataFrame, **options: Any) -> np.ndarray:
        """One score per row of a candidate table (:meth:`rank_table`'s ``score``; the same
        options)."""
        return self.rank_table(candidates, **options)["score"].to_numpy()

    # ------------------------------------------------------------------ load

    @classmethod
    def load(
        cls, path: str | Path, *, verify: bool = True, device: str | None = None
    ) -> HybridRanker:
        """Load a GBDT run directory or a hybrid bundle (checksums checked unless ``verify=False``).

        Args:
            path: The bundle directory.
            verify: Check every file against the bundle's manifest first.
            device: Device of a neural model (``cpu``, ``cuda``); default its saved config.
        """
        d = Path(path)
        recover_directory(d, "manifest.json")  # a retrain killed between its two renames
        if not d.is_dir():
            raise MissingInputError(f"{d}: no such bundle directory")
        if not (d / HYBRID_META).exists():
            bundle = GBDTBundle.load(d, verify=verify)
            store = ClickFeatureStore.load(d / STORE_DIR) if (d / STORE_DIR).is_dir() else None
            tie = str(bundle.config.get("tie_break", "none"))  # runs before tie_break: none
            return cls(bundle, store=store, tie_break=tie, path=d)
        if verify:
            verify_manifest(d)
        meta_path = d / HYBRID_META
        meta = _read_meta(meta_path)
        click = GBDTBundle.load(d / "click", verify=False)
        store = ClickFeatureStore.load(d / STORE_DIR) if (d / STORE_DIR).is_dir() else None
        llm: list[_LLMScorer] = []
        for member in _llm_members(meta, meta_path):
            if member["kind"] == "gbdt":
                llm.append(_GBDTScorer(GBDTBundle.load(d / member["dir"], verify=False), store))
                continue
            emb = None
            ids_file, emb_file = _embedding_files(member["dir"])
            if (d / emb_file).exists():
                ids = np.asarray(json.loads((d / ids_file).read_text()), dtype=object)
                emb = (ids, np.load(d / emb_file))
            llm.append(_NeuralScorer(_load_neural(d / member["dir"], device), emb))
        anchors = [
            Anchor(a["name"], None, float(a["weight"]), RawFeature(a["feature"], float(a["sign"])))
            if "feature" in a
            else Anchor(a["name"], GBDTBundle.load(d / a["dir"], verify=False), float(a["weight"]))
            for a in _anchor_members(meta, meta_path)
        ]
        try:
            gate = gate_from_dict(meta.get("gate"), source="gate")
        except ConfigError as exc:
            raise DataFormatError(str(exc), path=meta_path, column="gate") from None
        return cls(
            click, store=store, llm=llm, gate=gate, anchors=anchors,
            normalisation=meta["normalisation"], tie_break=meta.get("tie_break", "none"),
            path=d,
        )  # fmt: skip

    # ------------------------------------------------------------------ rank

    def _fuse(
        self,
        g: np.ndarray,
        click: np.ndarray,
        llm: list[np.ndarray],
        anchors: list[np.ndarray],
        offsets: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fused score and the LLM side's one score (several models: their normalised mean)."""
        norm = NORMALISERS[self.normalisation]
        side = llm[0] if len(llm) == 1 else normalised_mean(llm, offsets=offsets)
        fused = fuse(
            g,
            norm(click, offsets=offsets),
            norm(side, offsets=offsets),
            anchors=[norm(a, offsets=offsets) for a in anchors],
            anchor_weights=[a.weight for a in self.anchors],
        )
        return fused, side

    def rank(
        self,
        query: str,
        docs: Docs,
        context: Mapping[str, Any] | None = None,
        *,
        on_missing: str = "error",
    ) -> Ranking:
        """Rank one query's documents.

        Args:
            query: The query id (the key of the click-feature store).
            docs: The candidates: a DataFrame, a list of records or a mapping of
                columns, with ``docid``, the model's non-click features and, for
                a neural model, ``text`` (unless the bundle stores the
                document's embedding).
            context: ``text``: the query text (neural models); ``freq``: the
                query's frequency (a number >= 0), overriding the store's count.
            on_missing: A missing (NaN) feature value: ``error`` or ``keep``
                (the GBDT's missing-value branch), as in :meth:`rank_table`.

        Returns:
            :class:`Ranking`, best first; its components hold the raw
            ``click`` and ``llm`` scores, the ``gate`` value and each anchor's
            raw score under its name.

        Raises:
            DataFormatError: No ``docid``, a document given twice, a NaN
                (with ``on_missing="error"``) or infinite feature, or a
                frequency that is not a number >= 0; as batch ranking checks.
        """
        if on_missing not in ("error", "keep"):
            raise ConfigError(f"on_missing must be 'error' or 'keep', got {on_missing!r}")
        if context is not None and not isinstance(context, Mapping):
            raise ConfigError(
                f"context must be a mapping ({{'text': ..., 'freq': ...}}), got "
                f"{type(context).__name__}"
            )
        if query is None or (isinstance(query, float) and np.isnan(query)):
            raise DataFormatError("missing query id", column=C.QID)
        as_text = id_text(query)  # ids are text, as the store's and the CLI's: 7 is "7"
        if as_text is None:
            raise DataFormatError(
                f"query id must be text or a whole number, got {type(query).__name__} {query!r}",
                column=C.QID,
            )
        query = as_text
        ctx = dict(context or {})
        unknown = sorted(map(str, set(ctx) - CONTEXT_KEYS))
        if unknown:  # a misspelt "freq" would silently give the store's count
            raise ConfigError(
                f"context keys {unknown} are not read; the context takes {sorted(CONTEXT_KEYS)}"
            )
        source = f"query {query!r}"
        columns = _with_titles(_as_columns(docs, self._request_columns), source)
        if C.DOCID not in columns:
            raise DataFormatError("docs need a `docid` column", path=source)
        raw_ids = pd.Series(np.asarray(columns[C.DOCID], dtype=object).ravel())
        if raw_ids.isna().any():
            raise DataFormatError(
                "missing id", path=source, row=int(np.flatnonzero(raw_ids.isna())[0]),
                column=C.DOCID,
            )  # fmt: skip
        docids = raw_ids.to_numpy().astype(str)
        if docids.shape[0] == 0:  # an empty ranking, with the columns of any other
            empty = np.array([], dtype=np.float64)
            if self.llm is None or self.gate is None:
                return Ranking(docids, empty, {})
            g = float(self.gate(np.array([self._request_frequency(query, ctx, source)]))[0])
            parts: dict[str, Any] = {"click": empty, "llm": empty, "gate": g}
            parts.update({anchor.name: empty for anchor in self.anchors})
            return Ranking(docids, empty, parts)
        unique, counts = np.unique(docids, return_counts=True)
        if (counts > 1).any():
            twice = unique[counts > 1]
            raise DataFormatError(
                f"documents {twice[:5].tolist()} are given {int(counts.max())} times: a document "
                "would take two places in the ranking",
                path=source,
                row=int(np.flatnonzero(docids == twice[0])[1]),
                column=C.DOCID,
            )
        self._check_feature_values(columns, on_missing, source)
        stored = _StoreLookup(self.store, query, docids)
        click = self._click.score(query, None, docids, columns, stored)
        text = self._text(columns, np.zeros(docids.shape[0], dtype=np.int64))
        if self.llm is None or self.gate is None:
            order = np.lexsort((-text, -click))
            return Ranking(docids[order], click[order], {})
        freq = self._request_frequency(query, ctx, source)
        llm = [m.score(query, ctx.get("text"), docids, columns, stored) for m in self.llm]
        anchors = [a.score(query, None, docids, columns, stored) for a in self._anchors]
        g = float(self.gate(np.array([freq]))[0])
        offsets = np.array([0, docids.shape[0]])
        fused, side = self._fuse(np.full(docids.shape[0], g), click, llm, anchors, offsets)
        order = np.lexsort((-text, -fused))
        components: dict[str, Any] = {"click": click[order], "llm": side[order], "gate": g}
        for anchor, scores in zip(self.anchors, anchors, strict=True):
            components[anchor.name] = scores[order]
        return Ranking(docids[order], fused[order], components)

    def _text(self, columns: Mapping[str, Any] | pd.DataFrame, qid: np.ndarray) -> np.ndarray:
        """The secondary ranking key: the text order with ``tie_break: text``, else zeros
        (a stable sort then keeps the request order)."""
        present = [c for c in (C.SEMANTIC, C.BM25) if c in columns]
        if self.tie_break != "text" or not present:
            return np.zeros(qid.shape[0])
        values = []
        for c in present:
            v = pd.to_numeric(pd.Series(np.asarray(columns[c]).ravel()), errors="coerce")
            values.append(v.to_numpy(dtype=np.float64))
        return text_order(values, qid=qid)

    def _request_frequency(self, query: str, ctx: Mapping[str, Any], source: str) -> float:
        """The request's ``freq`` (a number, not a bool or a string), else the store's count."""
        if "freq" not in ctx:
            return self._frequency(query)
        value = ctx["freq"]
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise DataFormatError(
                f"context freq must be a number >= 0 (the query's sessions), got "
                f"{type(value).__name__} {value!r}",
                path=source,
                column=C.FREQ,
            )
        return float(check_frequencies(np.array([value], dtype=object), source=source)[0])

    def _frequency(self, qid: str) -> float:
        if self.store is None:
            raise DataFormatError(
                f"query {qid!r}: the gate needs the query's frequency, and this bundle has no "
                "click-feature store to count it; pass context={'freq': ...}"
            )
        # A query the log never showed has frequency 0: the LLM side leads.
        return self.store.frequency(qid)

    def _check_request_table(
        self, table: pd.DataFrame, on_missing: str, click_features_from: str, source: str
    ) -> None:
        if on_missing not in ("error", "keep"):
            raise ConfigError(f"on_missing must be 'error' or 'keep', got {on_missing!r}")
        if click_features_from not in ("store", "input"):
            raise ConfigError(
                f"click_features_from must be 'store' or 'input', got {click_features_from!r}"
            )
        clash = [c for c in self.output_columns if c in table.columns]
        if clash:
            raise DataFormatError(
                f"input columns {clash} have the names of the ranker's outputs and would be "
                "overwritten; rename them",
                path=source,
                column=clash[0],
            )
        check_unique_pairs(table, why="take two places in the ranking", path=source)
        self._check_model_features(table, source)
        names = self._feature_names
        if click_features_from == "store" and self.store is not None:
            stored = [f for f in names if f in _CLICK and f in table.columns]
            if stored:
                raise DataFormatError(
                    f"input columns {stored} are click features the bundle's store provides; "
                    "drop them, or rank with --click-features-from input to use yours",
                    path=source,
                    column=stored[0],
                )
        self._check_feature_values(table, on_missing, source)

    def _check_model_features(self, table: pd.DataFrame, source: str) -> None:
        """Every GBDT member's features are in the request table, but the click features its
        store holds; the error names the member and, where known, where a feature comes from."""
        for role, scorer in self._members():
            if not isinstance(scorer, _GBDTScorer):
                continue
            stored = scorer.store is not None  # it fills the click features a request lacks
            missing = [
                f for f in scorer.names
                if f not in table.columns and not (stored and (f in _CLICK or f in STORE_ALIASES))
            ]  # fmt: skip
            if missing:
                origins = [C.FEATURE_ORIGINS[f] for f in missing if f in C.FEATURE_ORIGINS]
                raise DataFormatError(
                    f"{len(missing)} feature(s) {role} was trained on missing: {missing[:10]}"
                    + "".join(f"; {o}" for o in origins),
                    path=source,
                    column=missing[0],
                )

    @property
    def _feature_names(self) -> list[str]:
        """The features of every GBDT member and raw-feature anchor, in first-seen order."""
        return list(dict.fromkeys(
            n for _, scorer in self._members()
            if isinstance(scorer, _GBDTScorer | _FeatureScorer) for n in scorer.names
        ))  # fmt: skip

    def _members(self) -> list[tuple[str, object]]:
        """Every scoring member with the name errors give it: the click model, the LLM
        models, the anchors."""
        return [
            ("the click model", self._click),
            *((f"LLM model {i + 1}", m) for i, m in enumerate(self.llm or ())),
            *((f"anchor {a.name!r}", s) for a, s in zip(self.anchors, self._anchors, strict=True)),
        ]

    def _check_feature_values(
        self, columns: Mapping[str, Any] | pd.DataFrame, on_missing: str, source: str
    ) -> None:
        """Every model feature the request brings is a number, finite, and not missing
        unless ``on_missing`` is ``keep``; the error names the column and the first row."""
        for f in self._feature_names:
            if f not in columns:
                continue
            raw = np.asarray(columns[f])
            values, unparsed = _as_numbers(raw)
            if unparsed.any():
                row = int(np.flatnonzero(unparsed)[0])
                value = raw.ravel()[row]
                value = value.item() if isinstance(value, np.generic) else value
                as_text = isinstance(value, str) and not np.isnan(
                    pd.to_numeric(value, errors="coerce")
                )
                what = "a number given as text" if as_text else "not a number"
                raise DataFormatError(f"{what}: {value!r}", path=source, row=row, column=f)
            inf = np.isinf(values)
            if inf.any():
                raise DataFormatError(
                    "infinite value", path=source, row=int(np.flatnonzero(inf)[0]), column=f
                )
            missing = np.isnan(values)
            if missing.any() and on_missing == "error":
                raise DataFormatError(
                    f"{int(missing.sum())} missing values in this column, the first here; fill "
                    "them, or rank with --on-missing keep (on_missing='keep') to send them down "
                    "the model's missing-value branch",
                    path=source,
                    row=int(np.flatnonzero(missing)[0]),
                    column=f,
                )

    def rank_table(
        self,
        candidates: pd.DataFrame,
        *,
        queries: pd.DataFrame | None = None,
        on_missing: str = "error",
        click_features_from: str = "store",
        source: str = "candidates",
    ) -> pd.DataFrame:
        """Score a whole candidate table; rows of a query must be contiguous.

        Adds ``score`` and ``rank`` (1 = best within the query) and, when
        fused, ``click_score``, ``llm_score``, ``gate`` and ``<name>_score``
        per anchor expert; an input column with one of those names is an
        error, never overwritten. ``queries``
        (``qid, text``) supplies query texts where the table has no ``query`` column.

        Args:
            candidates: The table to rank.
            queries: Query texts for a neural model.
            on_missing: A NaN in a feature column of the input: ``error``
                (naming the column and the first row) or ``keep`` (the
                GBDT's missing-value branch, as for never-shown pairs).
                An infinite value is always an error.
            click_features_from: ``store`` (the bundle's click-feature store;
                an input column named like a stored click feature is an
                error) or ``input`` (the input's columns win: a fresher log).
            source: Name of the input in error messages (its file).

        Raises:
            DataFormatError: Missing ids, duplicate (qid, docid) rows, an
                output-named or store-named input column, NaN or infinite
                features; each naming the column and the first row.
        """
        table = _text_ids(candidates.reset_index(drop=True), source)
        self._check_request_table(table, on_missing, click_features_from, source)
        from hybridrank._grouping import offsets_from_qid

        offsets = offsets_from_qid(table[C.QID].to_numpy())
        click = self._click.score_table(table, None)
        out = table.copy()
        # The models read a document's title and body as one text, as at import.
        table = join_titles(table)
        if self.llm is None or self.gate is None:
            out["score"] = click
        else:
            query_text = None
            if "query" in table.columns:
                blank = table["query"].isna().to_numpy()
                if blank.any():
                    raise DataFormatError(
                        "missing query text", path=source, row=int(np.flatnonzero(blank)[0]),
                        column="query",
                    )  # fmt: skip
                query_text = table["query"].astype(str)
            elif queries is not None:
                lookup = dict(zip(queries[C.QID].astype(str), queries[C.TEXT], strict=True))
                query_text = table[C.QID].astype(str).map(lookup)
                if query_text.isna().any():
                    bad = table.loc[query_text.isna(), C.QID].iloc[0]
                    raise DataFormatError(f"query {bad!r} has no text in the queries table")
            llm = [m.score_table(table, query_text) for m in self.llm]
            anchors = [a.score_table(table, None) for a in self._anchors]
            if C.FREQ in table.columns:
                freq = check_frequencies(table[C.FREQ].to_numpy(), source=source)
            elif self.store is not None:
                freq = self.store.frequencies(table[C.QID].to_numpy())
            else:
                raise DataFormatError(
                    f"the gate needs each query's frequency: give a {C.FREQ!r} column (this "
                    "bundle has no click-feature store to count it)",
                    path=source,
                    column=C.FREQ,
                )
            g = self.gate(freq)
            fused, side = self._fuse(g, click, llm, anchors, offsets)
            out["click_score"], out["llm_score"], out["gate"] = click, side, g
            out["score"] = fused
            for anchor, scores in zip(self.anchors, anchors, strict=True):
                out[f"{anchor.name}_score"] = scores
        gid = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
        text = self._text(table, table[C.QID].to_numpy())
        order = np.lexsort((-text, -out["score"].to_numpy(), gid))
        ranks = np.empty(len(out), dtype=np.int64)
        ranks[order] = np.arange(len(out)) - offsets[gid[order]] + 1
        out["rank"] = ranks
        return out


#: What a request's context may hold: the query text and the query's frequency.
CONTEXT_KEYS = frozenset({"text", "freq"})


def _text_ids(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """``qid`` and ``docid`` present, none missing, as text (the store's and the CLI's ids
    are text: an integer id 7 is the query ``"7"``)."""
    for col in (C.QID, C.DOCID):
        if col not in table.columns:
            raise DataFormatError(f"the candidate table has no {col!r} column", path=source)
        bad = table[col].isna().to_numpy()
        if bad.any():
            raise DataFormatError(
                "missing id", path=source, row=int(np.flatnonzero(bad)[0]), column=col
            )
    if all(pd.api.types.is_string_dtype(table[c]) for c in (C.QID, C.DOCID)):
        return table
    converted = {
        col: ids_as_text(table[col], column=col, path=source)
        for col in (C.QID, C.DOCID)
        if not pd.api.types.is_string_dtype(table[col])
    }
    return table.assign(**converted)


def _read_meta(path: Path) -> dict[str, Any]:
    """``hybrid.json``, checked: a mapping of a format this version reads, a known normalisation."""
    meta = read_json(path, "hybrid bundle description")
    if not isinstance(meta, dict):
        raise DataFormatError("expected a JSON object", path=path)
    version = meta.get("format", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > HYBRID_FORMAT:
        raise DataFormatError(
            f"bundle format {version!r}: this hybridrank reads formats 1 to {HYBRID_FORMAT}; "
            "upgrade hybridrank",
            path=path,
            column="format",
        )
    if meta.get("tie_break", "none") not in TIE_BREAKS:
        raise DataFormatError(
            f"tie_break must be one of {list(TIE_BREAKS)}, got {meta.get('tie_break')!r}",
            path=path,
            column="tie_break",
        )
    if meta.get("normalisation") not in NORMALISERS:
        raise DataFormatError(
            f"normalisation must be one of {sorted(NORMALISERS)}, "
            f"got {meta.get('normalisation')!r}",
            path=path,
            column="normalisation",
        )
    return meta


def _member_dir(value: Any, path: Path, column: str) -> str:
    """A member's folder inside the bundle: relative, never leaving it."""
    parts = Path(value).parts if isinstance(value, str) else ()
    if not parts or Path(value).is_absolute() or ".." in parts:
        raise DataFormatError(
            f"must be a folder inside the bundle, got {value!r}", path=path, column=column
        )
    return str(value)


def _store_digest(run: Path) -> dict[str, str]:
    """The SHA-256 of each click-feature store file, from a GBDT run's manifest ({} without)."""
    manifest = run / "manifest.json"
    if not manifest.is_file():
        return {}
    entries = read_json(manifest, "manifest")
    if not isinstance(entries, dict):
        raise DataFormatError("must map each file to its SHA-256", path=manifest)
    return {k: v for k, v in entries.items() if k.startswith(f"{STORE_DIR}/")}


def _embedding_files(member_dir: str) -> tuple[str, str]:
    """Where a bi-encoder member's stored document embeddings live (ids, vectors)."""
    if member_dir == "llm":  # the one LLM model of a format-1 bundle
        return "doc_ids.json", "doc_embeddings.npy"
    return f"doc_ids_{member_dir}.json", f"doc_embeddings_{member_dir}.npy"


def _llm_members(meta: Mapping[str, Any], source: Path) -> list[dict[str, str]]:
    """The LLM models ``hybrid.json`` lists: ``[{"kind": "gbdt"|"neural", "dir": ...}]``."""
    raw = meta.get("llm")
    members = [{"kind": raw, "dir": "llm"}] if isinstance(raw, str) else raw  # format 1
    if not isinstance(members, list) or not members:
        raise DataFormatError("must list the bundle's LLM models", path=source, column="llm")
    for i, m in enumerate(members):
        if not isinstance(m, Mapping) or m.get("kind") not in ("gbdt", "neural"):
            raise DataFormatError(
                f"must be {{'kind': 'gbdt' or 'neural', 'dir': ...}}, got {m!r}",
                path=source,
                column=f"llm[{i}]",
            )
        _member_dir(m.get("dir"), source, f"llm[{i}].dir")
    return [dict(m) for m in members]


def _anchor_members(meta: Mapping[str, Any], source: Path) -> list[dict[str, Any]]:
    """The anchor experts ``hybrid.json`` lists: ``{name, dir, weight}`` for a GBDT run,
    ``{name, feature, sign, weight}`` for a raw feature; none in format 1."""
    members = meta.get("anchors", [])
    if not isinstance(members, list) or not all(
        isinstance(m, Mapping)
        and ({"name", "dir", "weight"} <= set(m) or {"name", "feature", "sign", "weight"} <= set(m))
        for m in members
    ):
        raise DataFormatError(
            "must be a list of {'name', 'dir', 'weight'} (a GBDT run) or "
            "{'name', 'feature', 'sign', 'weight'} (a raw feature)",
            path=source,
            column="anchors",
        )
    try:
        check_anchors([(m["name"], m["weight"]) for m in members], source="anchors")
    except ConfigError as exc:
        raise DataFormatError(str(exc), path=source, column="anchors") from None
    for i, m in enumerate(members):
        if "feature" in m:
            try:
                RawFeature(m["feature"], m["sign"])
            except ConfigError as exc:
                raise DataFormatError(str(exc), path=source, column=f"anchors[{i}]") from None
        else:
            _member_dir(m["dir"], source, f"anchors[{i}].dir")
    return [dict(m) for m in members]


def llm_run_kind(run: str | Path) -> str:
    """``gbdt`` for a ``train gbdt`` run directory (it has ``schema.json``), else ``neural``."""
    return "gbdt" if (Path(run) / "schema.json").exists() else "neural"


def build_hybrid_bundle(
    click_run: str | Path,
    llm_run: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    gate: Gate,
    anchors: Sequence[tuple[str, str | Path | RawFeature, float]] = (),
    normalisation: str = "zscore",
    tie_break: str = "text",
    docs: pd.DataFrame | None = None,
    device: str | None = None,
) -> Path:
    """Assemble a hybrid bundle from a click GBDT run and LLM-supervised runs.

    Args:
        click_run: A ``hybridrank train gbdt`` run directory (its click-feature
            store travels along).
        llm_run: A ``hybridrank train neural`` run directory (its ``model/``) or
            a GBDT run directory; or several of them, served as the per-query
            mean of their normalised scores (the experiment's ``llm_ensemble``:
            ``[llm_gbdt_run, neural_run]``).
        out: The new bundle directory (must not exist).
        gate: The tuned gate (for example a stacker study's best parameters).
        anchors: ``(name, gbdt_run, weight)`` per anchor expert (the
            experiment's ``famol`` and ``gold_gbdt``, with the weights its
            stacker tuned), or ``(name, RawFeature(column, sign), weight)`` for a
            raw feature (the experiment's ``raw_dwell``: read from the click
            run's store, or from each request); the weights sum to at most 1.
        normalisation: ``zscore`` or ``rank``.
        tie_break: ``text`` or ``none`` (see :class:`HybridRanker`).
        docs: ``docid, text`` of the collection: with a bi-encoder, their
            embeddings are computed now and stored, so serving encodes only queries.
        device: Device for computing those embeddings.
    """
    click_dir, dest = Path(click_run), Path(out)
    llm_dirs = [Path(llm_run)] if isinstance(llm_run, (str, Path)) else [Path(r) for r in llm_run]
    if dest.exists():
        raise OutputExistsError(f"{dest} exists; choose a new bundle directory")
    if not llm_dirs:
        raise ConfigError("a hybrid bundle needs at least one LLM model run")
    if normalisation not in NORMALISERS:
        raise ConfigError(f"normalisation must be one of {sorted(NORMALISERS)}")
    if tie_break not in TIE_BREAKS:
        raise ConfigError(f"tie_break must be one of {list(TIE_BREAKS)}, got {tie_break!r}")
    check_anchors([(name, weight) for name, _, weight in anchors], source="bundle")
    GBDTBundle.load(click_dir)  # checks its manifest before anything is copied
    members: list[tuple[str, Path, Path]] = []  # (kind, run, the files to copy)
    for llm_dir in llm_dirs:
        recover_directory(llm_dir, "folds.json")  # a `train neural` rerun killed mid-swap
        neural_dir = llm_dir / "model" if (llm_dir / "model" / "ranker.json").exists() else llm_dir
        if llm_run_kind(llm_dir) == "gbdt":
            GBDTBundle.load(llm_dir)
            members.append(("gbdt", llm_dir, llm_dir))
        elif (neural_dir / "ranker.json").exists():
            members.append(("neural", llm_dir, neural_dir))
        else:
            raise MissingInputError(f"{llm_dir} is neither a GBDT run nor a neural model")
    runs = [(name, Path(run)) for name, run, _ in anchors if not isinstance(run, RawFeature)]
    for name, run in runs:
        if not (run / "schema.json").exists():
            raise MissingInputError(f"anchor {name!r}: {run} is not a `hybridrank train gbdt` run")
        GBDTBundle.load(run)
    features = [(name, f) for name, f, _ in anchors if isinstance(f, RawFeature)]
    click_store = click_dir / STORE_DIR
    for name, feature in features:
        if feature.column in CLICK_FEATURES and not click_store.is_dir():
            raise MissingInputError(
                f"anchor {name!r} reads the click feature {feature.column!r}, and {click_dir} "
                "has no click-feature store to serve it from"
            )
    # Every GBDT member reads its click features from the click run's store at serving time.
    store = _store_digest(click_dir)
    for run in [r for kind, r, _ in members if kind == "gbdt"] + [r for _, r in runs]:
        own = _store_digest(run)
        reads_store = any(
            n in CLICK_FEATURES or n in STORE_ALIASES
            for n in FeatureSchema.load(run / "schema.json").names
        )
        if reads_store and own and store and own != store:
            raise ConfigError(
                f"{run} was trained on another click log than {click_dir} (their click-feature "
                "stores differ); serving looks every model's click features up in the click "
                "run's store, so train them on the same dataset"
            )
    tmp = staging_directory(dest)  # per process: two builds never share one
    gbdt_only = shutil.ignore_patterns("train_table.parquet", "report", STORE_DIR, "manifest.json")
    try:
        shutil.copytree(click_dir, tmp / "click")
        (tmp / "click" / "manifest.json").unlink(missing_ok=True)
        if (click_dir / STORE_DIR).is_dir():
            shutil.move(str(tmp / "click" / STORE_DIR), str(tmp / STORE_DIR))
        for bulky in ("train_table.parquet", "report"):
            p = tmp / "click" / bulky
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        llm_meta: list[dict[str, str]] = []
        embedded = False
        for i, (kind, _, files) in enumerate(members):
            member_dir = "llm" if i == 0 else f"llm_{i + 1}"
            llm_meta.append({"kind": kind, "dir": member_dir})
            if kind == "gbdt":
                shutil.copytree(files, tmp / member_dir, ignore=gbdt_only)
                continue
            shutil.copytree(files, tmp / member_dir)
            ranker = _load_neural(tmp / member_dir, device)
            if docs is not None and isinstance(ranker, BiEncoderRanker):
                embedded = True
                emb = ranker.encode_documents(
                    docs[C.TEXT].astype(str).tolist(), show_progress_bar=True
                )
                ids_file, emb_file = _embedding_files(member_dir)
                np.save(tmp / emb_file, np.asarray(emb, dtype=np.float32))
                (tmp / ids_file).write_text(json.dumps(docs[C.DOCID].astype(str).tolist()))
        if docs is not None and not embedded:
            kinds = sorted({kind for kind, _, _ in members})
            logger.warning(
                "docs are given but no LLM model of this bundle is a bi-encoder (its LLM side: "
                "%s): no document embeddings are stored, the texts are not used",
                ", ".join(kinds) or "none",
            )
        anchor_meta: list[dict[str, Any]] = []
        for name, member, weight in anchors:
            if isinstance(member, RawFeature):
                anchor_meta.append({"name": name, "feature": member.column, "sign": member.sign,
                                    "weight": float(weight)})  # fmt: skip
                continue
            shutil.copytree(Path(member), tmp / "anchors" / name, ignore=gbdt_only)
            anchor_meta.append({"name": name, "dir": f"anchors/{name}", "weight": float(weight)})
        meta = {
            "format": HYBRID_FORMAT
            if any(isinstance(m, RawFeature) for _, m, _ in anchors)
            else _FORMAT_WITHOUT_RAW_ANCHORS,
            "llm": llm_meta,
            "anchors": anchor_meta,
            "gate": gate.to_dict(),
            "normalisation": normalisation,
            "tie_break": tie_break,
            "sources": {
                "click": str(click_dir),
                "llm": [str(r) for _, r, _ in members],
                "anchors": {
                    name: f"raw feature {m.column}" if isinstance(m, RawFeature) else str(m)
                    for name, m, _ in anchors
                },
            },
        }
        (tmp / HYBRID_META).write_text(json.dumps(meta, indent=2) + "\n")
        write_manifest(tmp)
        if dest.exists():
            raise OutputExistsError(f"{dest}: another process wrote a bundle there meanwhile")
        try:
            tmp.rename(dest)  # the bundle appears whole or not at all
        except OSError as exc:  # a bundle renamed into place between the check and here
            raise OutputExistsError(
                f"{dest}: could not move the bundle into place: {exc}"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # no half-built bundle left behind
        raise
    return dest
