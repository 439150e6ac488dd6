"""train.precision fits the hardware: `auto` picks bf16 only on a GPU or a CPU with native bf16, a forced
bf16 on a CPU without it warns with the measured cost, and no preset forces bf16."""
import logging
from pathlib import Path

import pytest
import torch

from digitforge.core import config
from digitforge.training import precision
from digitforge.training.models import build_model
from digitforge.training.precision import autocast_dtype, cpu_has_native_bf16, forced_slow_bf16, warn_if_slow_bf16

ROOT = Path(__file__).resolve().parents[2]
CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)
SAPPHIRE_RAPIDS = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512vl\n"  # AVX-512, bf16 only emulated
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(SKYLAKE)
    assert not cpu_has_native_bf16(EPYC)
    assert not cpu_has_native_bf16("")  # cannot tell: fp32, never the slow path
    assert cpu_has_native_bf16("flags : amx_bf16\n")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_picks_bf16_on_a_cpu_only_where_it_is_native(native, expected):
    assert autocast_dtype({"precision": "auto"}, CPU, native_bf16=native) is expected


def test_auto_is_bf16_on_a_gpu_and_forced_values_are_obeyed():
    assert autocast_dtype({"precision": "auto"}, GPU, native_bf16=False) is torch.bfloat16
    assert autocast_dtype({"precision": "bf16"}, CPU, native_bf16=False) is torch.bfloat16
    assert autocast_dtype({"precision": "fp32"}, GPU, native_bf16=True) is None
    assert autocast_dtype({"precision": "FP32"}, CPU) is None
    with pytest.raises(ValueError, match="unknown precision 'fp8' in train.precision"):
        autocast_dtype({"precision": "fp8"}, CPU)


def test_only_a_forced_bf16_on_a_cpu_without_it_counts_as_slow():
    assert forced_slow_bf16({"precision": "bf16"}, CPU, native_bf16=False)
    assert not forced_slow_bf16({"precision": "bf16"}, CPU, native_bf16=True)
    assert not forced_slow_bf16({"precision": "auto"}, CPU, native_bf16=False)
    assert not forced_slow_bf16({"precision": "bf16"}, GPU, native_bf16=False)


def test_forced_bf16_on_a_cpu_without_it_warns_with_the_measured_cost(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    model = build_model("mlp")
    before = [p.detach().clone() for p in model.parameters()]
    data, target = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with caplog.at_level(logging.WARNING, logger="digitforge.train"):
        slowdown = warn_if_slow_bf16({"precision": "bf16"}, CPU, model, data, target)
    assert slowdown is not None and slowdown > 0
    assert "without native bf16" in caplog.text and "ms a step against" in caplog.text and "fp32" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # measured on a copy
    assert all(p.grad is None for p in model.parameters())
    assert warn_if_slow_bf16({"precision": "auto"}, CPU, model, data, target) is None


def test_no_preset_forces_bf16():
    for preset in (ROOT / "conf" / "presets").glob("*.yaml"):
        tc = config.resolve(config.preset_overrides(preset.stem))["train"]
        assert tc["precision"] != "bf16", f"{preset.name} forces bf16: use auto"


def test_cpu_model_names_something():
    assert precision.cpu_model()
