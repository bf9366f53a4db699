"""Load a folder of Sigma rules and convert each with pySigma into a DuckDB predicate.

keytrail ships SigmaHQ's CloudTrail rules at a pinned commit (``keytrail/data/sigma``, with
their ``SOURCES.md`` and licence); ``--sigma DIR`` or ``[sigma] rules_dir`` points at a newer
checkout instead. A rule that does not load or convert is kept in :attr:`RuleSet.failed` with
the reason, so a user sees which rules did not run instead of silently getting fewer.

The Detection Rule License 1.1 asks that a rule's author and reference go with every match,
so each :class:`SigmaRule` keeps them for the findings it produces.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

#: Sigma's levels are keytrail's levels; anything else falls back to this.
_DEFAULT_LEVEL = "medium"
_LEVELS = ("informational", "low", "medium", "high", "critical")
LICENCE = "SigmaHQ (DRL 1.1)"
_TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$", re.IGNORECASE)
_GROUP = re.compile(r"^attack\.[gs]\d{4}$", re.IGNORECASE)


@dataclass(frozen=True)
class SigmaRule:
    """One converted rule: its metadata (kept as the author wrote it) and its SQL predicate."""

    id: str
    """keytrail rule id: ``sigma:`` + the rule's own UUID."""
    sigma_id: str
    title: str
    level: str
    description: str
    author: str
    references: tuple[str, ...]
    tags: tuple[str, ...]
    falsepositives: tuple[str, ...]
    path: str
    where: str
    """DuckDB predicate over the columns of :func:`keytrail.analysis.sigma.fields.build`."""
    fields: tuple[str, ...]
    event_names: tuple[str, ...] | None = None
    """Lower-case LIKE patterns one of which every matching record's ``eventName`` fits; None:
    any name (:mod:`keytrail.analysis.sigma.prefilter`)."""

    @property
    def techniques(self) -> tuple[str, ...]:
        """ATT&CK technique ids from ``attack.tNNNN[.NNN]`` tags (``T1562.008``)."""
        return tuple(t[7:].upper() for t in self.tags if _TECHNIQUE.match(t))

    @property
    def tactics(self) -> tuple[str, ...]:
        """ATT&CK tactics (``attack.defense-impairment``): attack tags that are no technique,
        group (``attack.g0016``) or software (``attack.s0002``) id."""
        return tuple(
            t[7:]
            for t in self.tags
            if t.lower().startswith("attack.") and not _TECHNIQUE.match(t) and not _GROUP.match(t)
        )

    def credit(self) -> str:
        """The attribution line the DRL asks for with every match. The reference is written
        without its URL scheme, so an offline report names it without linking out (the full
        references are in the finding's details)."""
        ref = (
            re.sub(r"^[a-z]+://", "", self.references[0])
            if self.references
            else "no reference given"
        )
        return f"Sigma rule by {self.author or 'unknown author'} ({LICENCE}; {ref})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sigma_id": self.sigma_id,
            "author": self.author,
            "references": list(self.references),
            "licence": LICENCE,
            "tags": list(self.tags),
            "techniques": list(self.techniques),
            "tactics": list(self.tactics),
            "falsepositives": list(self.falsepositives),
            "file": Path(self.path).name,
            "sigma_level": self.level,
        }


@dataclass(frozen=True)
class FailedRule:
    path: str
    title: str
    reason: str


@dataclass(frozen=True)
class RuleSet:
    directory: str
    rules: tuple[SigmaRule, ...]
    failed: tuple[FailedRule, ...]
    fingerprint: str
    """Hash of every rule file's name and bytes: part of the findings snapshot fingerprint."""
    fields: tuple[str, ...] = field(default=())
    """Every Sigma field a converted rule names (the columns the field table needs)."""
    lower_fields: tuple[str, ...] = field(default=())
    """Fields compared case-insensitively (the table adds their lower-cased copies)."""

    @property
    def everywhere(self) -> tuple[str, ...]:
        """Fields a rule that may match any ``eventName`` uses: read from every record."""
        return tuple(sorted({f for r in self.rules if r.event_names is None for f in r.fields}))

    @property
    def names(self) -> tuple[str, ...]:
        """Every ``eventName`` pattern the other rules allow: their fields are read only there."""
        return tuple(sorted({n for r in self.rules for n in r.event_names or ()}))

    @property
    def parsed_names(self) -> tuple[str, ...]:
        """The ``eventName`` patterns of the rules that read more than the fields read from
        every record (:attr:`everywhere`): only there does a record need its other fields."""
        every = set(self.everywhere)
        return tuple(
            sorted(
                {
                    n
                    for r in self.rules
                    if r.event_names is not None and not set(r.fields) <= every
                    for n in r.event_names
                }
            )
        )


def shipped_dir() -> Path:
    """The pinned SigmaHQ CloudTrail rules inside the package."""
    return Path(str(resources.files("keytrail").joinpath("data/sigma/aws-cloudtrail")))


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def dir_fingerprint(directory: str | Path | None) -> str:
    d = Path(directory) if directory else shipped_dir()
    h = hashlib.sha256(str(d.name).encode())
    if d.is_dir():
        for p in rule_files(d):
            h.update(p.relative_to(d).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:24]


def load_rules(directory: str | Path | None = None) -> RuleSet:
    """Every rule under ``directory`` (default: the shipped rules), converted; cached per content.

    Raises:
        UsageError: the directory does not exist.
    """
    from keytrail.errors import UsageError

    d = Path(directory) if directory else shipped_dir()
    if not d.is_dir():
        raise UsageError(f"--sigma: {d} is not a directory of Sigma rules", "bad sigma rules")
    with _LOADING:  # a second caller waits for the conversion under way instead of repeating it
        return _load(str(d.resolve()), dir_fingerprint(d))


_LOADING = threading.Lock()


@lru_cache(maxsize=4)
def _load(directory: str, fingerprint: str) -> RuleSet:
    from keytrail.analysis.sigma.backend import DuckDBBackend, cloudtrail_pipeline, field_is_safe
    from keytrail.analysis.sigma.prefilter import event_names

    rules: list[SigmaRule] = []
    failed: list[FailedRule] = []
    fields_all: set[str] = set()
    lower_all: set[str] = set()
    for path in rule_files(Path(directory)):
        title = path.stem
        try:
            from sigma.collection import SigmaCollection
            from sigma.rule import SigmaRule as PySigmaRule

            text = path.read_text(encoding="utf-8")
            collection = SigmaCollection.from_yaml(text, collect_errors=True)
            errors = [str(e) for e in collection.errors]
            if errors:
                raise ValueError("; ".join(errors))
            if not collection.rules:
                raise ValueError("no rule in the file")
            for rule in collection.rules:
                title = getattr(rule, "title", title) or title
                if not isinstance(rule, PySigmaRule):
                    raise TypeError("correlation rules are not supported")
                for err in getattr(rule, "errors", []) or []:
                    raise ValueError(str(err))
                backend = DuckDBBackend(processing_pipeline=cloudtrail_pipeline())
                queries = backend.convert_rule(rule)
                bad = sorted(f for f in backend.fields_seen if not field_is_safe(f))
                if bad:
                    raise ValueError(f"field name(s) not supported: {', '.join(bad)}")
                if not queries:
                    raise ValueError("the rule converted to no query")
                fields_all |= backend.fields_seen
                lower_all |= backend.lower_seen
                rules.append(
                    _rule(
                        rule,
                        path,
                        " OR ".join(f"({q})" for q in queries),
                        tuple(sorted(backend.fields_seen)),
                        event_names(rule),
                    )
                )
        except Exception as e:  # noqa: BLE001 - each failure is listed with its reason, none is fatal
            failed.append(FailedRule(str(path), str(title), f"{type(e).__name__}: {e}"))
    return RuleSet(
        directory,
        tuple(rules),
        tuple(failed),
        fingerprint,
        tuple(sorted(fields_all)),
        tuple(sorted(lower_all)),
    )


def _rule(
    rule: Any, path: Path, where: str, fields: tuple[str, ...], names: tuple[str, ...] | None
) -> SigmaRule:
    level = rule.level.name.lower() if rule.level is not None else _DEFAULT_LEVEL
    sigma_id = str(rule.id) if rule.id else path.stem
    return SigmaRule(
        id=f"sigma:{sigma_id}",
        sigma_id=sigma_id,
        title=str(rule.title),
        level=level if level in _LEVELS else _DEFAULT_LEVEL,
        description=" ".join(str(rule.description or "").split()),
        author=str(rule.author or ""),
        references=tuple(str(r) for r in rule.references or ()),
        tags=tuple(str(t) for t in rule.tags or ()),
        falsepositives=tuple(str(f) for f in rule.falsepositives or ()),
        path=str(path),
        where=where,
        fields=fields,
        event_names=names,
    )
