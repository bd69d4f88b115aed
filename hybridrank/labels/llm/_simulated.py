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
import math
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist

from hybridrank.data import read_qrels
from hybridrank.errors import ConfigError, DataFormatError, MissingInputError
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
        DataFormatError: A qrels line is malformed, or a pair is graded differently in
            two places (naming the file and line).
        ConfigError: No qrels, a ``noise`` that is not a finite number >= 0, a seed
            that is not whole, or a ``top_grade`` below the qrels' largest grade.
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
        where = "annotate.params of the 'simulated' backend"
        files = [qrels] if isinstance(qrels, str | Path) else qrels
        if not isinstance(files, list | tuple) or not all(isinstance(p, str | Path) for p in files):
            raise ConfigError(f"{where}: qrels must be a file or a list of files, got {qrels!r}")
        paths = [Path(p) for p in files]
        if not paths:
            raise ConfigError(f"{where}: qrels names no file")
        if (
            isinstance(noise, bool)
            or not isinstance(noise, int | float)
            or not 0 <= noise < math.inf
        ):
            raise ConfigError(f"{where}: noise must be a finite number >= 0, got {noise!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{where}: seed must be a whole number, got {seed!r}")
        if top_grade is not None and (
            isinstance(top_grade, bool) or not isinstance(top_grade, int)
        ):
            raise ConfigError(
                f"{where}: top_grade must be a whole number or null, got {top_grade!r}"
            )
        for path in paths:
            if not path.is_file():
                raise MissingInputError(f"{path}: qrels file of the simulated judge not found")
        grades: dict[tuple[str, str], int] = {}
        source: dict[tuple[str, str], Path] = {}
        digest = hashlib.sha256()
        for path in paths:
            frame = read_qrels(path)
            digest.update(path.read_bytes())
            for qid, docid, grade, line in zip(
                frame["qid"], frame["docid"], frame["grade"], frame["_line"], strict=True
            ):
                key, value = (str(qid), str(docid)), max(int(grade), 0)
                if grades.get(key, value) != value:
                    raise DataFormatError(
                        f"pair ({qid}, {docid}) is grade {value} here and grade {grades[key]} "
                        f"in {source[key]}: the simulated judge needs one grade per pair",
                        path=path,
                        line=int(line),
                    )
                grades[key], source[key] = value, path
        largest = max(grades.values(), default=0)
        top = largest if top_grade is None else top_grade
        if top < max(largest, 1):
            raise ConfigError(
                f"{where}: top_grade must be >= 1 and >= the largest grade in the qrels "
                f"({largest}), got {top}"
            )
        self.qrels = paths
        self.noise = float(noise)
        self.seed = seed
        self.top_grade = top
        self._grades = grades
        self._queries = {q for q, _ in grades}
        self._warned = False
        self._model = f"simulated@{digest.hexdigest()[:12]}:top{top}"

    @property
    def model(self) -> str:
        return self._model

    @property
    def prompt_version(self) -> str:
        return f"grade-plus-noise-v2:sd{self.noise!r}:seed{self.seed}"

    def prompt_version_for(self, pair: Pair) -> str:
        """The version plus the pair's grade: two pairs with the same texts but different
        grades (a document listed twice, graded apart) are two questions, two answers."""
        return f"{self.prompt_version}:g{self._grades.get((pair.qid, pair.docid), 0)}"

    def expert_grade(self, pair: Pair) -> float:
        """The pair's grade on the 0-3 scale (0 where the qrels do not list it)."""
        return self._grades.get((pair.qid, pair.docid), 0) * max(GRADES) / self.top_grade

    def error(self, pair: Pair) -> float:
        """The pair's fixed error: a standard normal draw from a hash of the seed and the
        pair's texts (by the inverse CDF, so it does not depend on a library's generator)."""
        key = hashlib.sha256(f"{self.seed}\x00{pair.text_hash}".encode()).digest()
        u = (int.from_bytes(key[:8], "little") + 0.5) / 2.0**64  # in (0, 1)
        return NormalDist().inv_cdf(u) * self.noise

    def annotate(self, pairs: Sequence[Pair]) -> list[Judgment]:
        unknown = sum(p.qid not in self._queries for p in pairs)
        if unknown and not self._warned:
            self._warned = True
            logger.warning(
                "simulated judge: %d of %d pairs of this batch belong to queries the qrels do "
                "not judge; they are scored as grade 0 plus noise (said once)",
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
