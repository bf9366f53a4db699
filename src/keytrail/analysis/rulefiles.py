"""keytrail's declarative rules: one TOML file per rule, loaded and checked here, run by
``keytrail.analysis.findings.declared``.

A responder adds or tunes a rule by writing a file, not Python. Each file holds metadata
(``id``, ``title``, ``level``, ``frameworks``, ``impact``, ``advice``, ``description``),
``[params]`` (thresholds, substituted into the SQL as literals) and one of two shapes:

- ``[match]``: events whose ``action`` matches ``actions`` (globs, ``*`` = anything) and,
  optionally, the SQL predicate ``where`` over ``events e``; hits are grouped per credential
  like Sigma hits, and ``description`` may use ``{who}``, ``{principal}``, ``{n}``,
  ``{actions}``, ``{ips}`` and ``{reach}``;
- ``sql``: a query returning one row per finding (``details = [...]`` names the columns the
  finding's details keep) with the columns ``subjects`` (list),
  ``uids`` (event uids, list), ``t0``, ``t1``, ``n`` and optionally ``cred`` (credential, or
  list of credentials, to contain) and ``level``; every other column is available to ``description`` and kept in
  the finding's details.

``identities = "non-human"`` keeps people out of a rule about non-human identities: calls
whose caller the principal classifier says is a person do not fire it (default ``"any"``).

``config = "<section>"`` ties a rule to a section of the findings configuration: the
section's ``enabled`` turns it on and off and its keys fill ``[params]`` (``denied-burst``
reads ``[reconnaissance]``); rules without it follow ``[nhi_attack]``.

The shipped rules live in ``keytrail/data/rules``; ``[nhi_attack] rules_dir`` adds a folder.
Files are validated strictly: a bad file is an error naming the file and key, never a rule
that silently does not run. The format is documented in ``docs/detections.md``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from keytrail.errors import ConfigError
from keytrail.levels import Level

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,80}$")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_KEYS = {
    "id",
    "title",
    "level",
    "frameworks",
    "description",
    "impact",
    "advice",
    "params",
    "match",
    "sql",
    "config",
    "details",
    "identities",
}
IDENTITIES = ("any", "non-human")


@dataclass(frozen=True)
class RuleFile:
    id: str
    title: str
    level: str
    frameworks: tuple[str, ...]
    description: str
    impact: str
    advice: str
    params: dict[str, Any]
    actions: tuple[str, ...] = ()
    where: str = ""
    sql: str = ""
    path: str = ""
    outcomes: tuple[str, ...] = field(default=())
    config: str = "nhi_attack"
    """Section of the findings configuration that turns the rule on and off; for a rule moved
    from Python (``denied-burst``) also the section whose keys fill ``[params]``."""
    details: tuple[str, ...] | None = None
    """Columns kept in the finding's details (``sql`` rules; default: every extra column)."""
    identities: str = "any"
    """``non-human``: calls by a person (the principal classifier's ``_kt_person_held``) do not
    fire: a ``[match]`` rule leaves them out, a ``sql`` row citing only them is dropped."""

    @property
    def shape(self) -> str:
        return "sql" if self.sql else "match"

    def query(self, params: dict[str, Any] | None = None) -> str:
        """The rule's SQL with ``{param}`` replaced by literals (numbers bare, strings quoted);
        ``params`` (the configuration section's values) win over the file's."""
        return _substitute(self.sql or self.where, {**self.params, **(params or {})}, self.path)


def _literal(value: Any) -> str:
    from keytrail.store.sqltext import quote_literal

    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return quote_literal(str(value))


def _substitute(sql: str, params: dict[str, Any], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            raise ConfigError(
                f"{where}: the SQL names {{{m.group(1)}}}, which [params] does not define",
                "bad rule file",
            )
        return _literal(params[m.group(1)])

    return _PARAM.sub(sub, sql)


def shipped_dir() -> Path:
    return Path(str(resources.files("keytrail").joinpath("data/rules")))


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.toml") if p.is_file())


def rules_fingerprint(extra: str | Path | None) -> str:
    h = hashlib.sha256()
    for d in [shipped_dir(), *([Path(extra)] if extra else [])]:
        for p in _files(d) if d.is_dir() else []:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:24]


def load_rule_files(extra: str | Path | None = None) -> tuple[RuleFile, ...]:
    """The shipped rule files, then those in ``extra`` (a later file with the same id replaces
    the earlier one, so a responder can tune a shipped rule by copying it).

    Raises:
        ConfigError: a file is not valid TOML or breaks the format; ``extra`` is not a folder.
    """
    if extra and not Path(extra).is_dir():
        raise ConfigError(f"[nhi_attack] rules_dir: {extra} is not a folder", "bad configuration")
    return _load(str(extra or ""), rules_fingerprint(extra))


@lru_cache(maxsize=4)
def _load(extra: str, fingerprint: str) -> tuple[RuleFile, ...]:
    rules: dict[str, RuleFile] = {}
    for d in [shipped_dir(), *([Path(extra)] if extra else [])]:
        for p in _files(d):
            rule = parse_rule(p.read_text(encoding="utf-8"), str(p))
            rules[rule.id] = rule
    return tuple(rules.values())


def parse_rule(text: str, where: str) -> RuleFile:
    """One rule file, validated (see the module docstring for the format)."""

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{where}: {msg}", "bad rule file")

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise bad(f"not valid TOML: {e}") from e
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    for key in ("id", "title", "level", "description"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise bad(f"{key} must be a non-empty string")
    if not _ID.match(doc["id"]):
        raise bad(f"id {doc['id']!r}: lower-case letters, digits and dashes")
    try:
        Level.parse(doc["level"])
    except Exception as e:
        raise bad(str(e)) from e
    if ("match" in doc) == ("sql" in doc):
        raise bad("exactly one of [match] or sql is required")
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise bad("[params] must be a table")
    match = doc.get("match", {})
    if "match" in doc:
        if not isinstance(match, dict) or set(match) - {"actions", "where", "outcomes"}:
            raise bad("[match] takes actions (list of globs), where (SQL) and outcomes (list)")
        if not match.get("actions") or not all(isinstance(a, str) and a for a in match["actions"]):
            raise bad("[match] actions must be a non-empty list of strings")
    elif not isinstance(doc["sql"], str) or not doc["sql"].strip():
        raise bad("sql must be a non-empty string")
    identities = doc.get("identities", "any")
    if identities not in IDENTITIES:
        raise bad(f"identities must be one of {', '.join(IDENTITIES)}")
    rule = RuleFile(
        id=doc["id"],
        title=doc["title"].strip(),
        level=Level.parse(doc["level"]).label,
        frameworks=tuple(str(f) for f in doc.get("frameworks", [])),
        description=doc["description"].strip(),
        impact=str(doc.get("impact", "")).strip(),
        advice=str(doc.get("advice", "")).strip(),
        params=dict(params),
        actions=tuple(match.get("actions", ())),
        where=str(match.get("where", "")),
        outcomes=tuple(match.get("outcomes", ("success", "failure", "unknown"))),
        sql=str(doc.get("sql", "")),
        path=where,
        config=str(doc.get("config", "nhi_attack")),
        details=tuple(doc["details"]) if isinstance(doc.get("details"), list) else None,
        identities=identities,
    )
    rule.query()  # every {param} the SQL names must exist
    return rule
