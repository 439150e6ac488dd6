"""Retraining's pure parts: the promotion decision and the challenger's config."""
import pytest

from digitforge.core import config
from digitforge.report.data import parse_ref
from digitforge.retrain.challenger import challenger_config
from digitforge.retrain.decision import decide


def scores(i, acc, loss):
    return {"id": f"m{i}", "accuracy": acc, "loss": loss, "rows": 10000}


def test_no_champion_means_the_challenger_becomes_champion():
    d = decide(None, scores(1, 0.5, 1.0), 0.0005)
    assert d["promote"] and "no champion yet" in d["reason"]


@pytest.mark.parametrize("challenger_acc, promote, words", [
    (0.9910, True, "better by at least the margin 0.0005: promoted"),
    (0.9905, True, "promoted"),                       # exactly the margin
    (0.9903, False, "by less than the margin"),
    (0.9900, False, "not better: champion kept"),     # a tie never replaces the champion
    (0.9800, False, "not better: champion kept"),
])
def test_accuracy_must_improve_by_the_margin(challenger_acc, promote, words):
    d = decide(scores(0, 0.9900, 0.03), scores(1, challenger_acc, 0.03), 0.0005)
    assert d["promote"] is promote and words in d["reason"]
    assert "m1 accuracy" in d["reason"] and "champion's 0.9900" in d["reason"] and "10000 test rows" in d["reason"]


def test_loss_metric_and_a_zero_margin():
    assert decide(scores(0, 0.99, 0.030), scores(1, 0.98, 0.029), 0.0, "loss")["promote"]
    assert not decide(scores(0, 0.99, 0.030), scores(1, 0.999, 0.030), 0.0, "loss")["promote"]
    assert not decide(scores(0, 0.99, 0.03), scores(1, 0.99, 0.03), 0.0)["promote"]
    with pytest.raises(ValueError, match="margin must be >= 0"):
        decide(scores(0, 0.99, 0.03), scores(1, 0.99, 0.03), -1)
    with pytest.raises(ValueError, match="accuracy or loss"):
        decide(scores(0, 0.99, 0.03), scores(1, 0.99, 0.03), 0, "f1")


def test_challenger_trains_like_the_champion_unless_told_otherwise():
    champion = config.load_defaults()
    champion["train"].update(architecture="lenet5", lr=0.05, epochs=7, dataset="fashion-mnist", snapshot="2020",
                             comments="old", some_removed_key=1, num_processes=8, use_gpu=True)
    cfg, notes = challenger_config(champion, ["train.epochs=2"], "mnist")
    t = cfg["train"]
    assert (t["architecture"], t["lr"], t["epochs"]) == ("lenet5", 0.05, 2)
    assert t["dataset"] == "mnist" and t["snapshot"] == "latest" and t["comments"] == ""  # the run's own keys
    assert "some_removed_key" not in t and "some_removed_key" in notes[0]
    defaults = config.load_defaults()["train"]
    assert (t["num_processes"], t["use_gpu"]) == (defaults["num_processes"], defaults["use_gpu"])  # this machine's
    assert "overridden: train.epochs=2" in notes
    fresh, notes = challenger_config(None, [], "fashion-mnist")
    assert fresh["train"]["architecture"] == config.load_defaults()["train"]["architecture"]
    assert "no champion" in notes[0]


def test_model_refs_may_name_their_dataset():
    assert parse_ref("fashion-mnist:champion", "mnist") == ("fashion-mnist", "champion")
    assert parse_ref("champion", "mnist") == ("mnist", "champion")
    uid = "0b7e4f0e-8d51-4f0a-9f5e-3f4f1d7e2a10"
    assert parse_ref(uid, "mnist") == ("mnist", uid)
