"""train.precision: which autocast dtype a rank trains in, chosen to fit the hardware.

`auto` picks bf16 only where it is fast: on a GPU, or on a CPU with native bf16 arithmetic (AVX512-BF16 or
AMX-BF16). Elsewhere autocast emulates bf16 and is several times slower than fp32 (a 2-core EPYC without
AVX-512: 679 s against 84 s to 99% with the same preset), so `auto` stays in fp32 there. A forced `bf16` on
such a CPU is obeyed but logs a warning with the cost measured on the run's own model.

Why the cpuinfo flags and not torch: torch.ops.mkldnn._is_mkldnn_bf16_supported() is also true on plain
AVX-512 CPUs (Skylake), where oneDNN emulates bf16 with fp32 instructions, so it says "runs", not "fast".
The flags name the instructions themselves; where /proc/cpuinfo is unreadable (not Linux) we cannot tell,
and fp32 is never the trap, so `auto` means fp32 there. Timing both ways at every start-up would cost
seconds on every run and is noisy on a shared machine; it is spent only on the forced case, to say how much.
"""
from __future__ import annotations

import copy
import functools
import logging
import time

import torch
import torch.nn.functional as F

log = logging.getLogger("digitforge.train")

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISIONS = ("auto", "bf16", "fp32")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo's text (all cores of a machine share them)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); False when it does not or
    when we cannot tell. `cpuinfo`: /proc/cpuinfo's text (default: this machine's)."""
    text = _proc_cpuinfo() if cpuinfo is None else cpuinfo
    return bool(text) and any(flag in cpu_flags(text) for flag in NATIVE_BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (for benchmark output), or the platform's processor string."""
    for line in (_proc_cpuinfo() or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def autocast_dtype(tc: dict, device: torch.device, native_bf16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype for train.precision on `device` (None: fp32, no autocast).
    auto: bf16 on GPUs and on CPUs with native bf16, fp32 elsewhere; bf16 / fp32 force it either way.
    `native_bf16` overrides the CPU check (tests)."""
    precision = str(tc["precision"]).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} in train.precision; known: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else None


def forced_slow_bf16(tc: dict, device: torch.device, native_bf16: bool | None = None) -> bool:
    """True when train.precision forces bf16 on a CPU without native bf16 (the case that warns)."""
    native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    return str(tc["precision"]).lower() == "bf16" and device.type == "cpu" and not native


def step_seconds(model, data: torch.Tensor, target: torch.Tensor, dtype: torch.dtype | None, steps: int = 3) -> float:
    """Median seconds of one forward + backward of `model` on (data, target) under `dtype` autocast
    (None: fp32), after one untimed warm-up step. Works on a copy: the model's weights and grads are untouched."""
    probe = copy.deepcopy(model).train()
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast(data.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(probe(data), target)
        loss.backward()
        probe.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def warn_if_slow_bf16(tc: dict, device: torch.device, model, data: torch.Tensor, target: torch.Tensor) -> float | None:
    """For a forced bf16 on a CPU without native bf16: time a few steps both ways on this batch and log a
    warning with the cost. Returns bf16's slowdown (bf16 s / fp32 s), or None when there is nothing to warn about."""
    if not forced_slow_bf16(tc, device):
        return None
    fp32_s, bf16_s = step_seconds(model, data, target, None), step_seconds(model, data, target, torch.bfloat16)
    slowdown = bf16_s / fp32_s
    log.warning("train.precision=bf16 on a CPU without native bf16 (%s; no avx512_bf16/amx_bf16): bf16 autocast is "
                "emulated, %.1f ms a step against %.1f ms in fp32 (%.1fx slower) on this model and batch; "
                "use train.precision=auto or fp32", cpu_model(), 1000 * bf16_s, 1000 * fp32_s, slowdown)
    return slowdown
