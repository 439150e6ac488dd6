"""Config: defaults in conf/defaults.yaml, overridden by flags; the resolved dict is stored with models.

`--set train.lr=0.01` overrides any key; values are parsed as YAML scalars (numbers, booleans, lists).
The resolved config is checked against core/schema.py (unknown keys, types, ranges): a bad value is one
ConfigError naming the dotted key, which jobs turn into exit 2 before any Spark or Cassandra work.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class ConfigError(ValueError):
    """A config key or value that is not allowed; the message names the dotted key."""


def conf_dir() -> Path:
    """The conf/ folder ($DIGITFORGE_CONF_DIR, else the checkout's)."""
    return Path(os.environ.get("DIGITFORGE_CONF_DIR", PROJECT_ROOT / "conf"))


def load_defaults(path: str | Path | None = None) -> dict:
    """conf/defaults.yaml (or `path`) as a dict, not yet validated."""
    path = Path(path) if path else conf_dir() / "defaults.yaml"
    with open(path) as f:
        return yaml.safe_load(f)


def set_key(cfg: dict, dotted: str, value: Any) -> None:
    """Set an existing key (`section.key`, or deeper as in datasets.mnist.keyspace) in place."""
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise ConfigError(f"unknown config section {'.'.join(keys[:-1])!r} in {dotted!r}")
        node = node[k]
    if keys[-1] not in node:
        raise ConfigError(f"unknown config key {dotted!r} (known in this section: {', '.join(sorted(node))})")
    node[keys[-1]] = value


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of cfg with `key.path=value` overrides applied."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, raw = item.split("=", 1)
        set_key(cfg, key.strip(), yaml.safe_load(raw) if raw != "" else "")
    return cfg


CLUSTER_ENV = "DIGITFORGE_CASSANDRA"


def cluster_overrides(names: str | None = None) -> list[str]:
    """`section.key=value` overrides from conf/clusters/<name>.yaml for each name in $DIGITFORGE_CASSANDRA
    (comma-separated, e.g. `ring,secure`): which cluster the jobs talk to, applied before --set."""
    names = os.environ.get(CLUSTER_ENV, "") if names is None else names
    out: list[str] = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        out += _overlay_overrides(conf_dir() / "clusters", name, f"cluster ({CLUSTER_ENV})")
    return out


def _overlay_overrides(folder: Path, name: str, what: str) -> list[str]:
    """The keys of folder/<name>.yaml (`section: {key: value}`) as `section.key=value` overrides."""
    import json

    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ConfigError(f"unknown {what} {name!r} ({path} missing); known: {known}")
    with open(path) as f:
        overlay = yaml.safe_load(f) or {}
    out = []
    for section, values in overlay.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section!r} must be a section of keys, e.g. train: {{lr: 0.01}}")
        out += [f"{section}.{key}={json.dumps(value)}" for key, value in values.items()]
    return out


def resolve(overrides: Iterable[str] = (), **named: Any) -> dict:
    """Defaults + the cluster overlay ($DIGITFORGE_CASSANDRA) + `--set` overrides + named flags (given as
    dotted keys, None means not given), validated (see `validate`)."""
    cfg = apply_overrides(load_defaults(), [*cluster_overrides(), *(overrides or ())])
    for key, value in named.items():
        if value is not None:
            set_key(cfg, key, value)
    global _last_resolved
    _last_resolved = validate(cfg)
    return _last_resolved


_last_resolved: dict | None = None


def last_resolved() -> dict | None:
    """The config this process resolved last (core/failures names its hosts in a one-line error)."""
    return _last_resolved


def validate(cfg: dict) -> dict:
    """The config checked against core/schema.py: returns it with its values in their schema types
    (e.g. lr 1 -> 1.0); raises ConfigError naming every bad key (unknown, wrong type, out of range)."""
    from pydantic import ValidationError

    from digitforge.core.schema import Config

    from digitforge.core import storage

    try:
        valid = Config.model_validate(cfg).model_dump()
    except ValidationError as e:
        raise ConfigError("; ".join(_describe(err, Config) for err in e.errors())) from None
    storage.configure(valid)  # this process's s3:// locations use this config's endpoint and region
    return valid


def _describe(err: dict, schema) -> str:
    """One pydantic error as `config key 'section.key': problem (got value)`."""
    dotted = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        known = _known_keys(schema, err["loc"][:-1])
        return f"unknown config key {dotted!r}" + (f" (known in this section: {', '.join(known)})" if known else "")
    if err["type"] == "missing":
        return f"config key {dotted!r} is missing"
    return f"config key {dotted!r}: {err['msg'][0].lower()}{err['msg'][1:]} (got {err['input']!r})"


def _known_keys(model, loc: tuple) -> list[str]:
    """The keys the schema allows at `loc` (a section, or an entry of datasets:)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:  # the entry name under a dict[str, Section] (datasets.<name>)
            continue
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = annotation if hasattr(annotation, "model_fields") else (args[-1] if args else None)
        if not hasattr(model, "model_fields"):
            return []
    return sorted(model.model_fields)


def resolve_or_exit(overrides: Iterable[str] = (), **named: Any) -> dict:
    """`resolve` for a job's main(): a bad config is logged (naming the key) and the job exits 2, before
    any Spark or Cassandra work."""
    try:
        return resolve(overrides, **named)
    except ConfigError as e:
        logging.getLogger("digitforge.config").error("%s", e)
        raise SystemExit(2) from None


def dataset_info(cfg: dict, name: str) -> dict:
    """The `datasets:` entry of a dataset (keyspace, data folder, class names)."""
    try:
        return cfg["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(cfg["datasets"]))
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {known} (conf/defaults.yaml)") from None


def project_path(p: str | Path) -> Path:
    """Relative paths in the config are relative to the project root."""
    p = Path(p)
    return p if p.is_absolute() else PROJECT_ROOT / p


def project_location(p: str | Path) -> str:
    """A stored-data location from the config: a URL as it is, a relative path under the project root."""
    from digitforge.core.storage import is_url

    return str(p) if is_url(p) else str(project_path(p))


def use_keyspace(cfg: dict, dataset: str, keyspace: str | None) -> dict:
    """`--keyspace KS`: the keyspace that holds the dataset's raw tables and registry. It becomes
    datasets.<dataset>.keyspace, so every module that asks the config finds it, and the config stored
    with a model says where it lives. No keyspace: cfg as it is."""
    if not keyspace:
        return cfg
    cfg = copy.deepcopy(cfg)
    dataset_info(cfg, dataset)["keyspace"] = keyspace
    return validate(cfg)  # the name is checked like any keyspace in the config


def add_keyspace_flag(p) -> None:
    """The one --keyspace flag of every job and `digitforge` subcommand."""
    p.add_argument("--keyspace", metavar="KS",
                   help="the keyspace that holds the raw tables and the registry (default: the dataset's, "
                        "datasets.<name>.keyspace)")


def job_parser(description: str):
    """The flags every job takes: --dataset, --keyspace and --set section.key=value."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dataset", help="dataset name from conf/defaults.yaml (mnist, fashion-mnist, ...)")
    add_keyspace_flag(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr=0.01 (repeatable)")
    return p


def preset_overrides(name: str) -> list[str]:
    """`section.key=value` overrides from conf/presets/<name>.yaml, applied before --set flags."""
    return _overlay_overrides(conf_dir() / "presets", name, "preset")
