"""Inference with a registered model: safetensors weights -> an eval-mode module (checked).

Pure functions (no Cassandra, no Spark session): the registry, the predict job's executors and the
scoring on the driver all build modules with them.
"""
from __future__ import annotations

import torch

from digitforge.registry import artifacts
from digitforge.training.models import ARCHITECTURES, build_model, width_of


class UnknownArchitecture(LookupError):
    """The stored architecture is not one this code can build."""


class BadWeights(ValueError):
    """The stored weights do not load into the network of their architecture."""


def build_module(architecture: str, weights: bytes, what: str = "model") -> torch.nn.Module:
    """An eval-mode module of `architecture` holding `weights` (safetensors bytes). `what` names the
    model in errors."""
    if architecture not in ARCHITECTURES:
        raise UnknownArchitecture(f"{what}: architecture {architecture!r} is not known to this code "
                                  f"(known: {', '.join(ARCHITECTURES)})")
    try:
        state = artifacts.weights_from_bytes(weights)
        module = build_model(architecture, width_of(architecture, state))
        module.load_state_dict(state)
    except Exception as e:  # safetensors header errors, missing/unexpected keys, shape mismatches
        raise BadWeights(f"{what}: its weights do not load into a {architecture!r} network ({e})") from None
    return module.eval()
