"""Model artifacts in a safe format: safetensors bytes, never pickle (unpickling runs code)."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


def weights_to_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """A state_dict as safetensors bytes (tensors moved to the CPU)."""
    return st_save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})


def weights_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """safetensors bytes back to a state_dict (no code runs: not pickle)."""
    return st_load(data)


def optimizer_to_bytes(opt_state: dict) -> bytes:
    """torch optimizer state_dict -> safetensors: tensors as `state.<param>.<name>`, the rest as JSON
    in the safetensors metadata (param_groups, scalar state)."""
    tensors, scalars = {}, {}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    meta = {"param_groups": json.dumps(opt_state["param_groups"]), "scalars": json.dumps(scalars)}
    return st_save(tensors, metadata=meta)


def optimizer_from_bytes(data: bytes) -> dict:
    """optimizer_to_bytes' output back to a torch optimizer state_dict."""
    tensors = st_load(data)
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for key, value in json.loads(meta.get("scalars", "{}")).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}
