"""Resolving ``device: cpu | cuda | auto`` for the GBDT engines."""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess

from hybridrank.errors import ConfigError

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")


@functools.cache
def cuda_visible() -> bool:
    """Whether an NVIDIA GPU is visible (``nvidia-smi -L`` lists one)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


@functools.cache
def xgboost_has_cuda() -> bool:
    import xgboost

    return bool(xgboost.build_info().get("USE_CUDA", False))


@functools.cache
def lightgbm_has_cuda() -> bool:
    """Try a one-row CUDA training: only CUDA builds of LightGBM accept it."""
    import lightgbm as lgb
    import numpy as np

    try:
        data = lgb.Dataset(
            np.zeros((4, 1)), label=np.array([0.0, 1.0, 0.0, 1.0]), params={"verbose": -1}
        )
        lgb.train({"device_type": "cuda", "verbose": -1, "num_iterations": 1}, data)
    except lgb.basic.LightGBMError:
        return False
    return True


def resolve_device(device: str, engine: str) -> str:
    """The device to train on: ``cpu`` or ``cuda``.

    ``auto`` picks CUDA when a GPU is visible and the engine was built with
    CUDA, else CPU. An explicit ``cuda`` that cannot be honoured is an error
    saying why, never a silent fall-back.
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    has_gpu = cuda_visible()
    built = xgboost_has_cuda() if engine == "xgboost" else (has_gpu and lightgbm_has_cuda())
    if device == "auto":
        chosen = "cuda" if has_gpu and built else "cpu"
        logger.info("device auto -> %s for %s", chosen, engine)
        return chosen
    if not has_gpu:
        raise ConfigError("device 'cuda' was asked for but no NVIDIA GPU is visible (nvidia-smi)")
    if not built:
        hint = (
            "install a CUDA build of LightGBM (pip install lightgbm --config-settings=cmake.define.USE_CUDA=ON) "
            "or use engine 'xgboost'"
            if engine == "lightgbm"
            else "install an xgboost wheel built with CUDA"
        )
        raise ConfigError(f"device 'cuda': this {engine} was built without CUDA; {hint}")
    return "cuda"
