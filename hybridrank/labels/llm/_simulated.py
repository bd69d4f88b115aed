"""A judge of known quality for experiments: the collection's own grades plus seeded noise.

The click world simulates users from the expert grades; this judge simulates
an LLM judge from them the same way, so a question like "does spending the
budget on the tail pay off with a judge better than MiniLM?" or "is the
teacher what limits the transformer?" can be answered without a paid
endpoint. Every pair's score is its expert grade on the 0-3 scale plus a
Gaussian error of standard deviation ``noise``, fixed per pair; it is a score
judge like the embedded one (``is_llm = False``), so its grades come from the
same ordinal calibration on the labelled tuning queries, and every flow
(budgets, fills, the agreement report) treats it as it treats MiniLM.

Never use it to report a system's quality on a collection: it reads the very
grades the evaluation uses. It is a measuring instrument for the pipeline.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybridrank.data import read_qrels
from hybridrank.errors import ConfigError, MissingInputError
from hybridrank.labels.llm._protocol import GRADES, Annotator, Judgment, Pair, register_annotator

logger = logging.getLogger(__name__)


@register_annotator
class SimulatedJudge(Annotator):
    """Expert grade + fixed Gaussian noise per pair: a judge whose quality is a parameter.

    Example:
        >>> judge = SimulatedJudge(qrels="qrels.txt", noise=1.0)  # doctest: +SKIP
        >>> judge.annotate(pairs)[0].score  # doctest: +SKIP
        2.63

    Args:
        qrels: The TREC (or BEIR) qrels file(s) whose grades the judge imitates;
            a pair they do not list is grade 0, as in the click world.
        noise: Standard deviation of the error added to the grade, on the
            judge's 0-3 scale (0: the expert grades exactly; about 1: an
            error of one grade is common).
        seed: Seed of the errors. A pair's error depends on the seed and its
            texts only, so a rerun and the answer cache agree.
        top_grade: The qrels' top grade, mapped onto 3 (grades scale as
            ``g * 3 / top_grade``); default the largest grade in the files.

    Raises:
        MissingInputError: A qrels file does not exist.
        ConfigError: ``noise`` < 0, no qrels, or a ``top_grade`` below 1.
    """

    backend = "simulated"
    is_llm = False

    def __init__(
        self,
        *,
        qrels: str | Path | Sequence[str | Path],
        noise: float = 1.0,
        seed: int = 0,
        top_grade: int | None = None,
    ) -> None:
        paths = [Path(qrels)] if isinstance(qrels, str | Path) else [Path(p) for p in qrels]
        if not paths:
            raise ConfigError("simulated judge: qrels names no file")
        if not (isinstance(noise, int | float) and noise >= 0):
            raise ConfigError(f"simulated judge: noise must be a number >= 0, got {noise!r}")
        for path in paths:
            if not path.is_file():
                raise MissingInputError(f"{path}: qrels file of the simulated judge not found")
        frames = [read_qrels(p) for p in paths]
        grades: dict[tuple[str, str], int] = {}
        source: dict[tuple[str, str], Path] = {}
        digest = hashlib.sha256()
        for path, frame in zip(paths, frames, strict=True):
            digest.update(path.read_bytes())
            for qid, docid, grade in zip(frame["qid"], frame["docid"], frame["grade"], strict=True):
                key, value = (str(qid), str(docid)), max(int(grade), 0)
                if grades.get(key, value) != value:
                    raise ConfigError(
                        f"simulated judge: pair ({qid}, {docid}) is grade {grades[key]} in "
                        f"{source[key]} and {value} in {path}"
                    )
                grades[key], source[key] = value, path
        top = max(grades.values(), default=0) if top_grade is None else int(top_grade)
        if top < 1:
            raise ConfigError(
                f"simulated judge: top_grade must be >= 1, got {top} "
                f"({'given' if top_grade is not None else 'the largest grade in the qrels'})"
            )
        self.qrels = paths
        self.noise = float(noise)
        self.seed = int(seed)
        self.top_grade = top
        self._grades = grades
        self._queries = {q for q, _ in grades}
        self._model = f"simulated@{digest.hexdigest()[:12]}:top{top}"

    @property
    def model(self) -> str:
        return self._model

    @property
    def prompt_version(self) -> str:
        return f"grade-plus-noise-v1:sd{self.noise:g}:seed{self.seed}"

    def expert_grade(self, pair: Pair) -> float:
        """The pair's grade on the 0-3 scale (0 where the qrels do not list it)."""
        return self._grades.get((pair.qid, pair.docid), 0) * max(GRADES) / self.top_grade

    def error(self, pair: Pair) -> float:
        """The pair's fixed error: a standard normal draw seeded by the seed and its texts."""
        key = hashlib.sha256(f"{self.seed}\x00{pair.text_hash}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        return float(rng.standard_normal()) * self.noise

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        unknown = sum(p.qid not in self._queries for p in pairs)
        if unknown:
            logger.warning(
                "simulated judge: %d of %d pairs belong to queries the qrels do not judge; "
                "they are scored as grade 0 plus noise",
                unknown,
                len(pairs),
            )
        out = []
        for pair in pairs:
            grade, err = self.expert_grade(pair), self.error(pair)
            out.append(
                Judgment(grade=None, score=grade + err, raw=f"grade={grade:g} error={err:+.4f}")
            )
        return out
