"""The typed config: an unknown key, a wrong type or an out-of-range value is one ConfigError naming the
dotted key; jobs and the CLI exit 2 on it before any Spark or Cassandra work."""
import subprocess
import sys

import pytest

from conftest import ROOT
from digitforge.core import config


def test_the_defaults_and_every_preset_pass_the_schema():
    cfg = config.resolve()
    assert cfg["cassandra"]["hosts"] == ["127.0.0.1"] and cfg["cassandra"]["port"] == 9042
    assert cfg["cassandra"]["consistency"] == "LOCAL_QUORUM" and cfg["cassandra"]["serial_consistency"] == "LOCAL_SERIAL"
    for preset in (ROOT / "conf" / "presets").glob("*.yaml"):
        config.resolve(config.preset_overrides(preset.stem))


def test_an_unknown_key_is_named_with_the_keys_of_its_section():
    cfg = config.load_defaults()
    cfg["train"]["epoch"] = 3  # e.g. a typo in defaults.yaml or a stored config
    with pytest.raises(config.ConfigError, match=r"unknown config key 'train.epoch' \(known in this section: .*epochs"):
        config.validate(cfg)
    cfg = config.load_defaults()
    cfg["datasets"]["mnist"]["keyspce"] = "x"
    with pytest.raises(config.ConfigError, match=r"unknown config key 'datasets.mnist.keyspce' \(known in this "
                                                 r"section: classes, folder, keyspace\)"):
        config.validate(cfg)


def test_a_wrong_type_is_named():
    with pytest.raises(config.ConfigError, match=r"config key 'train.epochs': input should be a valid integer.*'abc'"):
        config.resolve(["train.epochs=abc"])
    with pytest.raises(config.ConfigError, match=r"config key 'cassandra.port': input should be a valid integer "
                                                 r"\(got \[1, 2\]\)"):
        config.resolve(["cassandra.port=[1,2]"])
    with pytest.raises(config.ConfigError, match=r"config key 'train.optimizer': input should be 'sgd', 'adam' or 'adamw'"):
        config.resolve(["train.optimizer=rmsprop"])


def test_an_out_of_range_value_is_named():
    with pytest.raises(config.ConfigError, match=r"config key 'cassandra.port': input should be less than or equal "
                                                 r"to 65535 \(got 70000\)"):
        config.resolve(["cassandra.port=70000"])
    with pytest.raises(config.ConfigError, match=r"config key 'ingest.split_ratio': input should be greater than 0"):
        config.resolve(["ingest.split_ratio=0"])
    with pytest.raises(config.ConfigError, match=r"config key 'train.epochs': input should be greater than or equal to 1"):
        config.resolve(["train.epochs=0"])


def test_values_take_their_schema_types_and_text_keys_take_numbers():
    cfg = config.resolve(["train.lr=1", "train.comments=123"])
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)
    assert cfg["train"]["comments"] == "123"


@pytest.mark.parametrize("command", [
    [sys.executable, "jobs/convert.py", "--set", "cassandra.port=[1,2]"],
    [sys.executable, "jobs/ingest.py", "--set", "train.epochs=abc"],
    [sys.executable, "jobs/predict.py", "--set", "train.epochz=1"],
    [sys.executable, "jobs/train.py", "--set", "train.lr=-1"],
    [sys.executable, "jobs/retrain.py", "--set", "retrain.margin=-1"],
    [sys.executable, "-m", "digitforge.cli", "--set", "cassandra.port=0", "schema", "apply"],
])
def test_jobs_and_the_cli_exit_2_naming_the_key_before_any_spark_or_cassandra_work(command):
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "config key '" in proc.stderr
    assert "SparkContext" not in proc.stderr and "cassandra.cluster" not in proc.stderr


def test_overrides_parse_yaml_scalars_and_reject_unknown_keys():
    cfg = config.resolve(["train.lr=0.05", "train.use_gpu=true"], **{"train.epochs": 3, "train.seed": None})
    assert cfg["train"]["lr"] == 0.05 and cfg["train"]["use_gpu"] is True and cfg["train"]["epochs"] == 3
    with pytest.raises(config.ConfigError, match="unknown config key 'train.lrr'"):
        config.resolve(["train.lrr=1"])
    with pytest.raises(config.ConfigError, match="not of the form"):
        config.resolve(["train.lr"])


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(config.ConfigError, match="known datasets: fashion-mnist, mnist"):
        config.dataset_info(config.resolve(), "cifar")


def test_hosts_take_a_comma_separated_list_and_the_ring_overlay(monkeypatch):
    assert config.resolve(["cassandra.hosts=10.0.0.5, 10.0.0.6"])["cassandra"]["hosts"] == ["10.0.0.5", "10.0.0.6"]
    monkeypatch.setenv(config.CLUSTER_ENV, "ring")
    ring = config.resolve()["cassandra"]
    assert ring["hosts"] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"] and ring["replication_factor"] == 3
    assert config.resolve(["cassandra.replication_factor=2"])["cassandra"]["replication_factor"] == 2  # --set wins
    monkeypatch.setenv(config.CLUSTER_ENV, "nope")
    with pytest.raises(config.ConfigError, match=r"unknown cluster \(DIGITFORGE_CASSANDRA\) 'nope'.*ring"):
        config.resolve()


def test_a_bad_consistency_level_is_named():
    with pytest.raises(config.ConfigError, match="config key 'cassandra.consistency'"):
        config.resolve(["cassandra.consistency=LOCAL_QUORUMX"])
