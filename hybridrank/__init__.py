"""hybridrank: learning to rank from user clicks and LLM relevance labels.

Subpackages, lowest layer first: ``data`` and ``evaluate``; ``labels`` and
``features``; ``gbdt`` (with ``distributed``, its Dask trainers: the two import
each other lazily) and ``neural``; ``ensemble``; ``tuning``; ``serve``; ``cli``.
Lower layers never import higher ones.
"""

from __future__ import annotations

from hybridrank._estimator import Ranker

__version__ = "0.1.0"

__all__ = ["Ranker", "__version__"]
