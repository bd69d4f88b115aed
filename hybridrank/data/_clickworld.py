"""The click-world simulator: Zipf traffic over a collection, a production ranker, simulated clicks.

Real text and real expert grades, simulated users. Each session picks a query
by Zipf popularity, is shown the production ranker's top results (BM25 order
with small random adjacent swaps, so more than one order is logged) and
clicks according to a click model whose examination-by-rank curve is fitted
to real logs and whose attractiveness rises with the expert grade.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hybridrank import columns as C
from hybridrank._config import config_from_dict, config_to_dict
from hybridrank._grouping import offsets_from_qid
from hybridrank.errors import ConfigError, MissingColumnError

logger = logging.getLogger(__name__)

# Examination probability by rank 1..10, the mean of two real logs' curves,
# each CTR(r) / CTR(1) (monotone), as printed by
#   hybridrank world examination --clicklogs ../shared/datasets/clicklogs
# Yandex relevance-prediction sample: 1, .968, .662, .598, .412, .284, .268, .182, .197, .174
# NAVER CLARA2 beta search log:       1, .412, .203, .112, .086, .046, .036, .026, .018, .022
DEFAULT_EXAMINATION: tuple[float, ...] = (
    1.0, 0.690, 0.433, 0.355, 0.249, 0.165, 0.152, 0.104, 0.104, 0.098,
)  # fmt: skip


@dataclass(frozen=True)
class SimulationConfig:
    """Traffic and user behaviour of the click world.

    Attributes:
        n_sessions: Sessions (one query each) in the log.
        zipf_exponent: Popularity of the query at popularity rank r is
            proportional to r^-exponent; the ranks are a seeded permutation.
        seed: Seed of every random choice of the simulation.
        page_size: Results shown per session.
        swap_prob: Chance that each adjacent pair of the BM25 order is swapped
            (one top-down pass over the first ``page_size + 2`` candidates).
        click_model: ``pbm`` (position-based) or ``cascade`` (a cascade whose
            no-click continuation follows the examination curve).
        examination: Examination probability by rank 1..page_size.
        attractiveness: Click probability of an examined result by expert
            grade 0, 1, 2, 3, ... (grades above the last use the last).
        attractiveness_noise: Standard deviation, on the logit scale, of a
            fixed per (query, document) perturbation of attractiveness, so clicks
            are an imperfect proxy of the expert grade.
        satisfaction: Cascade only: chance of ending the session after a click,
            by grade.
        dwell_median_s: Median dwell time after a click, by grade (log-normal).
        dwell_sigma: Log-normal shape of dwell times.
        days: The log spans this many days; session start times are uniform.
    """

    n_sessions: int = 5000
    zipf_exponent: float = 1.0
    seed: int = 0
    page_size: int = 10
    swap_prob: float = 0.15
    click_model: str = "pbm"
    examination: tuple[float, ...] = DEFAULT_EXAMINATION
    attractiveness: tuple[float, ...] = (0.05, 0.25, 0.5, 0.8)
    attractiveness_noise: float = 0.5
    satisfaction: tuple[float, ...] = (0.1, 0.3, 0.6, 0.9)
    dwell_median_s: tuple[float, ...] = (8.0, 20.0, 45.0, 90.0)
    dwell_sigma: float = 0.8
    days: float = 30.0

    def __post_init__(self) -> None:
        if self.n_sessions < 0:
            raise ConfigError(f"simulation.n_sessions must be >= 0, got {self.n_sessions}")
        if self.seed < 0:
            raise ConfigError(f"simulation.seed must be >= 0, got {self.seed}")
        if not self.zipf_exponent >= 0 or self.zipf_exponent == float("inf"):  # NaN too
            raise ConfigError(
                f"simulation.zipf_exponent must be a number >= 0, got {self.zipf_exponent}"
            )
        if self.page_size < 1:
            raise ConfigError(f"simulation.page_size must be >= 1, got {self.page_size}")
        if len(self.examination) < self.page_size:
            raise ConfigError(
                f"simulation.examination has {len(self.examination)} values; "
                f"page_size {self.page_size} needs one per shown rank"
            )
        for name in ("examination", "attractiveness", "satisfaction"):
            values = getattr(self, name)
            if not values or any(not 0 <= v <= 1 for v in values):
                raise ConfigError(
                    f"simulation.{name} must be probabilities in [0, 1], got {values}"
                )
        if not 0 <= self.swap_prob <= 1:
            raise ConfigError(f"simulation.swap_prob must be in [0, 1], got {self.swap_prob}")
        if self.click_model not in CLICK_SIMULATORS:
            raise ConfigError(
                f"simulation.click_model {self.click_model!r} unknown; choose from {sorted(CLICK_SIMULATORS)}"
            )
        if (
            any(not v > 0 for v in self.dwell_median_s)  # NaN fails too
            or not self.dwell_sigma >= 0
            or not 0 < self.days < float("inf")
        ):
            raise ConfigError(
                "simulation: dwell medians and days must be positive, dwell_sigma >= 0"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SimulationConfig:
        return config_from_dict(cls, values, "simulation")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _by_grade(values: tuple[float, ...], grades: np.ndarray) -> np.ndarray:
    table = np.asarray(values, dtype=np.float64)
    return table[np.clip(grades, 0, table.size - 1)]


class ClickSimulator(ABC):
    """Draws clicks for a batch of sessions shown ranked lists.

    Subclasses implement :meth:`clicks` over dense ``(n_sessions, page_size)``
    grids; ``shown`` marks cells that hold a result.
    """

    name: ClassVar[str]

    @abstractmethod
    def clicks(
        self,
        attractiveness: np.ndarray,
        grades: np.ndarray,
        shown: np.ndarray,
        config: SimulationConfig,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Boolean click grid of the same shape as ``attractiveness``."""


class PositionBasedSimulator(ClickSimulator):
    """PBM: a result is clicked iff examined (by rank) and attractive, independently."""

    name = "pbm"

    def clicks(
        self,
        attractiveness: np.ndarray,
        grades: np.ndarray,
        shown: np.ndarray,
        config: SimulationConfig,
        rng: np.random.Generator,
    ) -> np.ndarray:
        exam = np.asarray(config.examination[: attractiveness.shape[1]], dtype=np.float64)
        u_exam = rng.random(attractiveness.shape)
        u_attr = rng.random(attractiveness.shape)
        return shown & (u_exam < exam[None, :]) & (u_attr < attractiveness)


class CascadeSimulator(ClickSimulator):
    """Cascade with satisfaction: users scan top-down, click attractive results,
    stop after a click with a grade-dependent satisfaction probability, and,
    after a result they did not click, go on with probability
    exam(r + 1) / exam(r), so that without clicks examination follows the
    configured curve."""

    name = "cascade"

    def clicks(
        self,
        attractiveness: np.ndarray,
        grades: np.ndarray,
        shown: np.ndarray,
        config: SimulationConfig,
        rng: np.random.Generator,
    ) -> np.ndarray:
        n, width = attractiveness.shape
        exam = np.asarray(config.examination[:width], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            cont = np.where(exam[:-1] > 0, exam[1:] / np.where(exam[:-1] > 0, exam[:-1], 1), 0.0)
        satisfaction = _by_grade(config.satisfaction, grades)
        active = np.ones(n, dtype=bool)
        out = np.zeros((n, width), dtype=bool)
        for r in range(width):
            here = active & shown[:, r]
            click = here & (rng.random(n) < attractiveness[:, r])
            out[:, r] = click
            satisfied = click & (rng.random(n) < satisfaction[:, r])
            active &= shown[:, r] & ~satisfied
            if r + 1 < width:
                active &= click | (rng.random(n) < cont[r])
        return out


CLICK_SIMULATORS: dict[str, type[ClickSimulator]] = {
    PositionBasedSimulator.name: PositionBasedSimulator,
    CascadeSimulator.name: CascadeSimulator,
}


def zipf_popularity(n_queries: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Session probability per query: rank^-exponent over a random permutation of ranks."""
    ranks = rng.permutation(n_queries) + 1
    weights = ranks.astype(np.float64) ** -exponent
    return weights / weights.sum()


def simulate_click_log(
    candidates: pd.DataFrame, config: SimulationConfig | None = None
) -> pd.DataFrame:
    """Simulate an impression log over a candidate table.

    Args:
        candidates: Candidate table with ``qid, docid, bm25_rank, y_expert``,
            rows of a query contiguous and in production (BM25) order.
        config: Traffic and click model; default :class:`SimulationConfig`.

    Returns:
        Impression log ``session_id, ts, qid, docid, position, click, dwell_s``
        sorted by session and position; ``dwell_s`` is NaN where not clicked.
        The same config and candidates give the same log.
    """
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    missing = [c for c in (C.QID, C.DOCID, C.BM25_RANK, C.Y_EXPERT) if c not in candidates.columns]
    if missing:
        raise MissingColumnError(f"candidate table lacks columns {missing}")
    offsets = offsets_from_qid(candidates[C.QID].to_numpy())
    n_q = offsets.shape[0] - 1
    qids = candidates[C.QID].to_numpy()[offsets[:-1]]
    grades_all = candidates[C.Y_EXPERT].to_numpy().astype(np.int64)

    # A fixed per (query, document) attractiveness: the grade's level plus noise.
    base = np.clip(_by_grade(config.attractiveness, grades_all), 1e-4, 1 - 1e-4)
    logit = np.log(base / (1 - base)) + rng.normal(0.0, config.attractiveness_noise, base.shape)
    attractive_all = 1.0 / (1.0 + np.exp(-logit))

    popularity = zipf_popularity(n_q, config.zipf_exponent, rng)
    session_q = rng.choice(n_q, size=config.n_sessions, p=popularity)
    ts = np.sort(rng.uniform(0.0, config.days * 86_400.0, size=config.n_sessions))

    # Production order per session: the first page_size + 2 candidates, with swaps.
    window = config.page_size + 2
    lengths = np.diff(offsets)
    cols = np.arange(window)
    valid = cols[None, :] < lengths[session_q][:, None]
    rows = np.where(valid, offsets[session_q][:, None] + cols[None, :], -1)
    for i in range(window - 1):
        swap = valid[:, i + 1] & (rng.random(config.n_sessions) < config.swap_prob)
        rows[swap, i], rows[swap, i + 1] = rows[swap, i + 1], rows[swap, i].copy()
    rows = rows[:, : config.page_size]
    shown = rows >= 0
    safe = np.where(shown, rows, 0)
    attractive = np.where(shown, attractive_all[safe], 0.0)
    grades = np.where(shown, grades_all[safe], 0)

    simulator = CLICK_SIMULATORS[config.click_model]()
    clicked = simulator.clicks(attractive, grades, shown, config, rng)
    medians = _by_grade(config.dwell_median_s, grades)
    dwell = np.where(
        clicked, medians * np.exp(rng.normal(0.0, config.dwell_sigma, clicked.shape)), np.nan
    )

    sess_idx, pos_idx = np.nonzero(shown)
    flat_rows = rows[sess_idx, pos_idx]
    log = pd.DataFrame(
        {
            C.SESSION_ID: sess_idx.astype(np.int64),
            C.TS: ts[sess_idx],
            C.QID: qids[session_q[sess_idx]],
            C.DOCID: candidates[C.DOCID].to_numpy()[flat_rows],
            C.POSITION: (pos_idx + 1).astype(np.int16),
            C.CLICK: clicked[sess_idx, pos_idx].astype(np.int8),
            C.DWELL_S: dwell[sess_idx, pos_idx],
        }
    )
    logger.info(
        "simulated %d sessions over %d queries: %d impressions, %d clicks",
        config.n_sessions,
        n_q,
        len(log),
        int(log[C.CLICK].sum()),
    )
    return log
