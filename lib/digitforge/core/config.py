"""Config: defaults in conf/defaults.yaml, overridden by flags; the resolved dict is stored with models.

`--set train.lr=0.01` overrides any key; values are parsed as YAML scalars (numbers, booleans, lists).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class ConfigError(ValueError):
    pass


def conf_dir() -> Path:
    return Path(os.environ.get("DIGITFORGE_CONF_DIR", PROJECT_ROOT / "conf"))


def load_defaults(path: str | Path | None = None) -> dict:
    path = Path(path) if path else conf_dir() / "defaults.yaml"
    with open(path) as f:
        return yaml.safe_load(f)


def set_key(cfg: dict, dotted: str, value: Any) -> None:
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


def resolve(overrides: Iterable[str] = (), **named: Any) -> dict:
    """Defaults + `--set` overrides + named flags (given as dotted keys, None means not given)."""
    cfg = apply_overrides(load_defaults(), overrides)
    for key, value in named.items():
        if value is not None:
            set_key(cfg, key, value)
    return cfg


def dataset_info(cfg: dict, name: str) -> dict:
    try:
        return cfg["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(cfg["datasets"]))
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {known} (conf/defaults.yaml)") from None


def project_path(p: str | Path) -> Path:
    """Relative paths in the config are relative to the project root."""
    p = Path(p)
    return p if p.is_absolute() else PROJECT_ROOT / p


def job_parser(description: str):
    """The flags every job takes: --dataset and --set section.key=value."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dataset", help="dataset name from conf/defaults.yaml (mnist, fashion-mnist, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr=0.01 (repeatable)")
    return p


def preset_overrides(name: str) -> list[str]:
    """`section.key=value` overrides from conf/presets/<name>.yaml, applied before --set flags."""
    import json

    path = conf_dir() / "presets" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (conf_dir() / "presets").glob("*.yaml")))
        raise ConfigError(f"unknown preset {name!r} ({path} missing); known presets: {known}")
    with open(path) as f:
        preset = yaml.safe_load(f) or {}
    out = []
    for section, values in preset.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section!r} must be a section of keys, e.g. train: {{lr: 0.01}}")
        out += [f"{section}.{key}={json.dumps(value)}" for key, value in values.items()]
    return out
