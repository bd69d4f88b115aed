"""Resolving ``device: cpu | cuda | auto`` for the neural rankers (torch)."""

from __future__ import annotations

import logging

from hybridrank.errors import ConfigError
from hybridrank.neural._config import DEVICES

logger = logging.getLogger(__name__)


def torch_cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch is a CPU build)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_torch_device(device: str) -> str:
    """The device to train and score on: ``cpu`` or ``cuda``.

    ``auto`` picks CUDA when torch sees one, else CPU. An explicit ``cuda``
    that cannot be honoured is an error saying why, never a silent fall-back.
    """
    if device not in DEVICES:
        raise ConfigError(f"neural.device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    has_cuda = torch_cuda_available()
    if device == "auto":
        chosen = "cuda" if has_cuda else "cpu"
        logger.info("neural device auto -> %s", chosen)
        return chosen
    if not has_cuda:
        raise ConfigError(
            "neural.device 'cuda' was asked for but torch sees no CUDA device "
            "(a CPU build of torch, or no GPU); use 'auto' or 'cpu'"
        )
    return "cuda"


def bf16_supported(device: str) -> bool:
    """Whether bf16 autocast is used: on CUDA devices that support it."""
    if device != "cuda":
        return False
    import torch

    return bool(torch.cuda.is_bf16_supported())
