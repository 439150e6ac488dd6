"""Artifacts as safetensors, never pickle."""
import torch

from digitforge.registry import artifacts
from digitforge.training.models import build_model, normalise


def test_weights_and_optimizer_round_trip_through_safetensors():
    model = build_model("net")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(normalise(torch.zeros(4, 784, dtype=torch.uint8))).sum().backward()
    opt.step()
    weights = artifacts.weights_from_bytes(artifacts.weights_to_bytes(model.state_dict()))
    for k, v in model.state_dict().items():
        assert torch.equal(weights[k], v)
    blob = artifacts.optimizer_to_bytes(opt.state_dict())
    assert not blob.startswith(b"\x80")  # not a pickle
    state = artifacts.optimizer_from_bytes(blob)
    opt2 = torch.optim.Adam(build_model("net").parameters(), lr=0.5)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.01
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
