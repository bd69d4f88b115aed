"""The ranker contract every model shares: fit, predict, scikit-learn parameters, not-fitted errors."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from hybridrank.errors import NotFittedError


@runtime_checkable
class Ranker(Protocol):
    """What every hybridrank ranker offers (LambdaMART, FAMOL, data scheduling, the
    stacker, the meta-ranker, the serving ``HybridRanker``).

    ``fit`` takes the ranker's own inputs (features and labels grouped by
    ``qid``; two label sources and ``freq`` for the hybrids; out-of-fold
    scores for the stacker) and returns the ranker; ``predict`` returns one
    score per row, higher first, and raises :class:`NotFittedError` before
    ``fit``. ``get_params`` / ``set_params`` follow scikit-learn, so
    ``sklearn.base.clone`` gives an unfitted copy with the same parameters.
    """

    def fit(self, *args: Any, **kwargs: Any) -> Any: ...

    def predict(self, *args: Any, **kwargs: Any) -> np.ndarray: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    def set_params(self, **params: Any) -> Any: ...


class SklearnTags:
    """scikit-learn's estimator tags, so its utilities (``check_is_fitted``) accept a ranker.

    A ranker needs ``fit`` before ``predict`` (``requires_fit``); a frozen one,
    built from trained models, sets ``_requires_fit = False``. Whether a ranker
    is fitted is decided as scikit-learn decides it for its own estimators: an
    attribute ending in ``_`` set by ``fit``.
    """

    _requires_fit: bool = True

    def __sklearn_is_fitted__(self) -> bool:
        """scikit-learn's fitted check (every version that has ``check_is_fitted``)."""
        if not self._requires_fit:
            return True
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import Tags, TargetTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=self._requires_fit),
            requires_fit=self._requires_fit,
        )


class ConfigParams(SklearnTags):
    """``get_params`` / ``set_params`` of a ranker whose one constructor argument is ``config``."""

    config: Any

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"config": self.config}

    def set_params(self, **params: Any) -> Any:
        unknown = sorted(set(params) - {"config"})
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameters {unknown}; its one parameter is config"
            )
        if "config" in params:
            self.config = params["config"]
        return self

    def check_fitted(self, attribute: str) -> None:
        """Raise :class:`NotFittedError` unless ``fit`` set ``attribute``."""
        if not hasattr(self, attribute):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")


__all__ = ["ConfigParams", "Ranker", "SklearnTags"]
