"""Aliases (`champion`, ...): changed by lightweight transactions, with their history (when, from, to,
why, who) in the same partition."""
from __future__ import annotations

import getpass
import logging
import re
import uuid
from datetime import datetime, timedelta, timezone

from digitforge.core.clock import iso_utc, now_ms
from digitforge.core.config import dataset_info
from digitforge.core.connection import session
from digitforge.registry.read import RegistryError, refuse_original_demo, resolve_ref

log = logging.getLogger(__name__)


ALIAS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


FIRST_MODEL = "first model of the dataset"


def promote(cfg: dict, dataset: str, ref, alias: str = "champion", reason: str = "", attempts: int = 5) -> dict:
    """Point `alias` at model `ref`, and record the change (when, from, to, why, who), in one
    conditional batch on the alias's partition: it applies only if the alias still points where it
    pointed when read (IF model_id = <that>), so concurrent promotions never lose an update.
    An unknown model or alias name, or an original-demo model (not loadable), changes nothing."""
    if not ALIAS_NAME.match(alias or "") or _is_uuid(alias):
        raise ValueError(f"alias {alias!r}: use a letter then letters, digits, '_', '.' or '-' (at most 64), "
                         "not a model id")
    from cassandra import WriteTimeout

    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, _ = resolve_ref(s, keyspace, ref)
        refuse_original_demo(s, keyspace, model_id, alias)
        for _ in range(attempts):
            current, last_change = _state(s, alias)
            if current == model_id:
                log.info("alias %s already points at %s", alias, model_id)
                return {"alias": alias, "model_id": str(model_id), "previous": str(current), "changed": False}
            try:
                changed = _change(s, alias, current, model_id, reason, after=last_change)
            except WriteTimeout as e:
                # Contention (promotions racing on one partition): the change may or may not have applied.
                # The serial read at the loop's top settles it: pointing at model_id already, or not yet.
                log.info("alias %s: the conditional change timed out (%s); reading it again", alias, e)
                continue
            if changed:
                return changed
            log.info("alias %s changed while promoting; reading it again", alias)
    raise RegistryError(f"alias {alias!r} kept changing during {attempts} attempts to promote {model_id}; try again")


def champion_if_none(cfg: dict, dataset: str, model_id, alias: str = "champion") -> bool:
    """Make the model `alias` (the champion) when the dataset has none yet, with the reason "first model of
    the dataset": a fresh keyspace's first trained model is then what `predict` uses by default. Applies
    only while the alias is still unset (a concurrent first model or a promotion wins). True if it did."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        if _state(s, alias)[0] is not None:
            return False
        changed = _change(s, alias, None, uuid.UUID(str(model_id)), FIRST_MODEL)
    return bool(changed)


def _state(s, alias: str) -> tuple[uuid.UUID | None, datetime | None]:
    """(where the alias points, when its newest change was made), read at the serial consistency level
    (cassandra.serial_consistency): a change still in flight is completed (or dropped) first, so a promotion
    never decides on a value about to change."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT
    from cassandra.query import SimpleStatement

    serial = s.get_execution_profile(EXEC_PROFILE_DEFAULT).serial_consistency_level
    row = s.execute(SimpleStatement("SELECT model_id, changed_at FROM aliases WHERE alias = %s LIMIT 1",
                                    consistency_level=serial), (alias,)).one()
    if row is None:
        return None, None
    last = row.changed_at.replace(tzinfo=timezone.utc) if row.changed_at else None
    return row.model_id, last


def _change(s, alias: str, current: uuid.UUID | None, model_id: uuid.UUID, reason: str,
            after: datetime | None = None) -> dict | None:
    """The conditional batch: the alias moves from `current` to `model_id` and its history gets the change,
    both or neither. The change's summary, or None when the alias no longer pointed at `current`. Its time is
    later than `after` (the newest change's): the history is ordered by time at millisecond precision, and two
    promotions within one millisecond would otherwise sort at random."""
    from cassandra.query import BatchStatement, SimpleStatement
    from cassandra.util import uuid_from_time

    now = now_ms()
    if after is not None and now <= after:
        now = after + timedelta(milliseconds=1)
    batch = BatchStatement()
    batch.add(SimpleStatement("UPDATE aliases SET model_id = %s WHERE alias = %s IF model_id = %s"),
              (model_id, alias, current))
    batch.add(SimpleStatement("INSERT INTO aliases (alias, change_id, changed_at, from_model, to_model, "
                              "reason, changed_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"),
              (alias, uuid_from_time(now), now, current, model_id, reason or "", _user()))
    if not s.execute(batch).was_applied:
        return None
    log.info("alias %s: %s -> %s (%s)", alias, current, model_id, reason or "no reason given")
    return {"alias": alias, "model_id": str(model_id), "previous": str(current) if current else None,
            "changed": True, "changed_at": now.isoformat()}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def list_aliases(cfg: dict, dataset: str) -> list[dict]:
    """Every alias with the model it points at and its history (newest change first)."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    out = {}
    with session(cfg, keyspace) as s:
        for r in s.execute("SELECT alias, model_id, changed_at, from_model, to_model, reason, changed_by FROM aliases"):
            a = out.setdefault(r.alias, {"alias": r.alias, "model_id": str(r.model_id) if r.model_id else None,
                                         "history": []})
            if r.to_model:
                a["history"].append({"changed_at": iso_utc(r.changed_at), "from": str(r.from_model) if r.from_model else None,
                                     "to": str(r.to_model), "reason": r.reason, "by": r.changed_by})
    return sorted(out.values(), key=lambda a: a["alias"])
