"""The config's schema: one pydantic model per section of conf/defaults.yaml. Unknown keys are refused,
values are type- and range-checked. To add a setting, add a field here and a default in defaults.yaml."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from digitforge.core.images import NUM_CLASSES

Port = Annotated[int, Field(ge=1, le=65535)]
KEYSPACE_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,47}$"
Consistency = Literal["ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"]


def _host_list(value):
    """`--set cassandra.hosts=10.0.0.5,10.0.0.6` (one string) or a YAML list."""
    return [h.strip() for h in value.split(",") if h.strip()] if isinstance(value, str) else value


HostList = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_host_list), Field(min_length=1)]


class Section(BaseModel):
    """A config section: exactly these keys. Numbers are accepted where text is expected
    (`--set train.comments=123`), never the other way round."""
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_default=True)


class CassandraConfig(Section):
    """cassandra: the cluster (contact points, datacenter, replication, consistency, TLS), see
    core/connection.py. Secrets are never config: they come from the environment."""
    hosts: HostList
    port: Port
    local_dc: str = Field(min_length=1)
    replication_factor: int = Field(ge=1, le=12)
    consistency: Consistency
    serial_consistency: Literal["SERIAL", "LOCAL_SERIAL"]
    connect_timeout_s: float = Field(gt=0)
    request_timeout_s: float = Field(gt=0)
    jmx_port: Port
    storage_port: Port
    ssl: bool
    ssl_ca: str
    ssl_truststore: str


class DatasetConfig(Section):
    """datasets.<name>: the keyspace, the data folder under the data dir, the class names."""
    keyspace: str = Field(pattern=KEYSPACE_NAME)
    folder: str = Field(min_length=1)
    classes: Optional[list[str]] = Field(default=None, min_length=NUM_CLASSES, max_length=NUM_CLASSES)


class IngestConfig(Section):
    """ingest: the writer, staging, the CSV split, and the connector's write settings."""
    dataset: str
    writer: Literal["auto", "sstable", "stream", "cql"]
    write_partitions: int = Field(ge=0)
    task_rows: int = Field(ge=1)
    staging_dir: str = Field(min_length=1)
    cassandra_jars: str = Field(min_length=1)
    stream_throttle_mib: int = Field(ge=0)
    split_ratio: float = Field(gt=0, le=1)
    split_seed: int
    stratify: bool
    batch_grouping_key: Literal["replica_set", "partition", "none"]
    batch_size_bytes: int = Field(ge=1)
    concurrent_writes: int = Field(ge=1)


class ConvertConfig(Section):
    """convert: where snapshots go and how each split is cut into files / row groups."""
    dataset: str
    snapshot_root: str = Field(min_length=1)
    files_per_split: int = Field(ge=1)
    file_rows: int = Field(ge=0)
    row_group_size_mb: int = Field(ge=1)


class TrainConfig(Section):
    """train: the network, optimiser, schedule, augmentation, precision, data path and ranks."""
    dataset: str
    snapshot: str = Field(min_length=1)
    architecture: Literal["net", "mlp", "lenet5", "fastcnn"]
    width: int = Field(ge=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    test_batch_size: int = Field(ge=1)
    optimizer: Literal["sgd", "adam", "adamw"]
    lr: float = Field(ge=0)
    momentum: float = Field(ge=0, lt=1)
    nesterov: bool
    weight_decay: float = Field(ge=0)
    schedule: Literal["step", "onecycle", "none"]
    gamma: float = Field(gt=0)
    warmup: float = Field(gt=0, lt=1)
    label_smoothing: float = Field(ge=0, lt=1)
    seed: int
    augment: bool
    augment_shift: int = Field(ge=0)
    augment_rotate: float = Field(ge=0, le=180)
    augment_scale: float = Field(ge=0, lt=1)
    augment_flip: bool
    augment_erase: float = Field(ge=0, le=1)
    precision: Literal["auto", "bf16", "fp32"]
    channels_last: bool
    data: Literal["memory", "stream"]
    num_processes: int = Field(ge=1)
    local_mode: bool
    use_gpu: bool
    threads_per_rank: int = Field(ge=1)
    checkpoint_dir: str
    run_id: str
    max_restarts: int = Field(ge=0)
    resume: bool
    comments: str


class RegistryConfig(Section):
    """registry: the largest artifact kept inline in the models row (bytes); retries of transient write
    errors; how old an orphan row must be before fsck counts it."""
    chunk_bytes: int = Field(ge=1)
    retry_attempts: int = Field(ge=1)
    retry_backoff_s: float = Field(ge=0)
    fsck_grace_s: float = Field(ge=0)


class PredictConfig(Section):
    """predict: which model predicts which table."""
    dataset: str
    model: str = Field(min_length=1)
    table: str = Field(min_length=1)
    keyspace: str


class RetrainConfig(Section):
    """retrain: what 'better' means, by how much, the alias, the lease's TTL."""
    dataset: str
    metric: Literal["accuracy", "loss"]
    margin: float = Field(ge=0)
    alias: str = Field(min_length=1)
    from_champion: bool
    lease_ttl_s: int = Field(ge=1)


class ReportConfig(Section):
    """report: whether jobs write reports, where, and how many misclassified images they show."""
    enabled: bool
    root: str = Field(min_length=1)
    misclassified: int = Field(ge=0)


class StorageConfig(Section):
    """storage: the S3 endpoint and region of s3:// locations (credentials never: they come from the
    environment, a profile or an instance role)."""
    s3_endpoint: Optional[str] = None
    s3_region: str = Field(default="us-east-1", min_length=1)


class Config(Section):
    """The whole resolved config (conf/defaults.yaml + presets + --set + flags)."""
    cassandra: CassandraConfig
    datasets: dict[str, DatasetConfig]
    ingest: IngestConfig
    convert: ConvertConfig
    train: TrainConfig
    registry: RegistryConfig
    predict: PredictConfig
    retrain: RetrainConfig
    report: ReportConfig
    storage: StorageConfig = Field(default_factory=StorageConfig)  # configs stored before it existed have none
