"""The schema template read as tables and columns, and the one error a keyspace that needs
`digitforge schema apply` gives. Pure: no node."""
import pytest

from digitforge.core import config
from digitforge.core.cql import statements
from digitforge.core.tables import describe, table_columns


def test_the_template_is_the_whole_current_schema_without_alters():
    tables = table_columns("ks")
    assert {"raw_train", "raw_test", "raw_predict", "models", "model_chunks", "models_by_date", "models_by_accuracy",
            "models_by_loss", "model_classes", "aliases", "predictions", "leases", "retrain_runs"} <= set(tables)
    models = tables["models"]
    # the original demo's five columns first, then everything digitforge added (chunk columns included)
    assert list(models)[:5] == ["id", "network", "optimizer", "upload_date", "comments"]
    assert {"dataset", "network_sha256", "network_size", "network_chunks", "optimizer_chunks"} <= set(models)
    assert models["network_size"] == "bigint" and tables["aliases"]["model_id"] == "uuid STATIC"
    assert tables["predictions"]["probabilities"] == "frozen<list<float>>"
    assert not [s for s in statements("ks") if s.upper().startswith("ALTER")]  # apply diffs: no ALTERs to keep


def test_the_error_names_keyspace_missing_tables_and_columns_and_the_command():
    message = describe("old_ks", {"aliases": [], "models": ["dataset", "network_sha256"]})
    assert "keyspace old_ks" in message and "tables aliases" in message
    assert "columns models.dataset, models.network_sha256" in message
    assert "`digitforge schema apply --keyspace old_ks`" in message


def test_keyspace_flag_sets_the_datasets_keyspace_and_checks_the_name():
    cfg = config.use_keyspace(config.resolve(), "fashion-mnist", "my_digits")
    assert cfg["datasets"]["fashion-mnist"]["keyspace"] == "my_digits"
    assert cfg["datasets"]["mnist"]["keyspace"] == "mnist_digits"
    assert config.use_keyspace(cfg, "mnist", None) is cfg
    with pytest.raises(config.ConfigError, match="datasets.mnist.keyspace"):
        config.use_keyspace(cfg, "mnist", "bad-name")
