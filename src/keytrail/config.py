"""Findings configuration: TOML, validated strictly into frozen dataclasses.

Precedence: an explicit file (``--config FILE``) > the file named by the environment
variable ``KEYTRAIL_CONFIG`` > the packaged defaults (``keytrail/data/findings.toml``,
the documented reference). A user file is merged over the defaults key by key, so it
only needs the values it changes. Unknown sections or keys, wrong types, negative
numbers and unknown levels raise :class:`keytrail.errors.ConfigError` naming the key
and the allowed values, because a typo that silently keeps a default would hide
findings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from keytrail.errors import ConfigError, UsageError
from keytrail.levels import Level, allowed_levels

ENV_VAR = "KEYTRAIL_CONFIG"
CONFIDENCES = ("proven", "strong", "inferred")


@dataclass(frozen=True)
class BaselineConfig:
    days: int = 7
    """Baseline window length from each subject's first event."""
    min_events: int = 10
    """Fewer baseline events than this: no drift finding."""
    ipv4_prefix: int = 24
    """IPv4 addresses are compared as networks of this prefix."""
    ipv6_prefix: int = 48
    """IPv6 addresses are compared as networks of this prefix."""


@dataclass(frozen=True)
class CredentialReuseConfig:
    enabled: bool = True
    min_agents: int = 2
    """Distinct agents on one credential."""
    min_source_ips: int = 2
    """Distinct source IP addresses for one credential."""
    min_sessions: int = 5
    """Distinct agent sessions for one credential."""
    min_confidence: str = "strong"
    """Weakest USES edge that counts."""


@dataclass(frozen=True)
class LongLivedConfig:
    enabled: bool = True
    max_vault_token_ttl_hours: float = 24.0
    """Vault token TTL above this (or 0 = none) is reported."""
    max_active_hours: float = 168.0
    """An agent credential used over a longer span is reported."""


@dataclass(frozen=True)
class OffboardingConfig:
    enabled: bool = True
    grace_minutes: float = 0.0
    """Tolerance after `retired`."""
    correlation_seconds: int = 120
    """Calls with a retired agent's credentials this close to its own logged actions are its."""


@dataclass(frozen=True)
class HumanUseConfig:
    enabled: bool = True
    console_actions: tuple[str, ...] = ("signin:ConsoleLogin", "signin:GetSigninToken")
    """Interactive sign-in actions."""
    browser_user_agents: tuple[str, ...] = (
        "Mozilla/",
        "Chrome/",
        "Safari/",
        "Firefox/",
        "console.amazonaws.com",
        "signin.amazonaws.com",
    )
    """User-agent substrings of browsers and the console."""
    interactive_user_agents: tuple[str, ...] = (
        "aws-cli/",
        "CloudShell",
        "PowerShell",
        "curl/",
        "HTTPie/",
        "Postman",
    )
    """User-agent substrings of interactive tools."""


@dataclass(frozen=True)
class PrivilegeConfig:
    enabled: bool = True
    iam_change_actions: tuple[str, ...] = (
        "iam:Create*",
        "iam:Put*Policy",
        "iam:Attach*Policy",
        "iam:Update*",
        "iam:AddUserToGroup",
        "iam:SetDefaultPolicyVersion",
        "iam:PassRole",
        "iam:Delete*Policy",
        "iam:Detach*Policy",
        "sso:*Permission*",
        "organizations:*Policy*",
    )
    """Actions that change identities or policies (glob)."""
    vault_policy_paths: tuple[str, ...] = (
        "sys/policy/*",
        "sys/policies/*",
        "sys/auth/*",
        "auth/*/role/*",
        "auth/token/roles/*",
        "identity/*",
    )
    """Vault paths whose writes change policy or auth (glob)."""
    admin_role_patterns: tuple[str, ...] = ("*Admin*", "*admin*", "OrganizationAccountAccessRole")
    """Role/user names meaning administrator (glob)."""
    admin_vault_policies: tuple[str, ...] = ("root",)
    """Vault policies meaning administrator."""


@dataclass(frozen=True)
class EnvironmentCrossingConfig:
    enabled: bool = True
    min_accounts: int = 2
    """Distinct accounts or namespaces for one chain."""
    environments: dict[str, str] = field(default_factory=dict)
    """Account or namespace -> environment label."""
    production_labels: tuple[str, ...] = ("prod", "production")
    """Labels treated as production."""


@dataclass(frozen=True)
class UnattributedConfig:
    enabled: bool = True
    min_events: int = 1
    """Unattributed actions needed before a chain is reported."""


@dataclass(frozen=True)
class ScopeDriftConfig:
    enabled: bool = True
    services: str = "medium"
    actions: str = "low"
    resource_types: str = "medium"
    source_networks: str = "medium"
    hours: str = "informational"


@dataclass(frozen=True)
class ReconnaissanceConfig:
    enabled: bool = True
    min_denied: int = 10
    """Denied calls that make a burst."""
    window_minutes: float = 10.0
    """Burst window."""
    min_distinct_actions: int = 3
    """Distinct actions in the burst."""


@dataclass(frozen=True)
class SecretSprawlConfig:
    enabled: bool = True
    min_secrets: int = 10
    """Distinct secrets read by one chain."""
    secret_actions: tuple[str, ...] = (
        "secretsmanager:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
        "ssm:GetParameter*",
        "vault:read",
    )
    """Actions that read a secret (glob)."""


@dataclass(frozen=True)
class SigmaConfig:
    enabled: bool = True
    rules_dir: str = ""
    """Folder of Sigma rules (a SigmaHQ checkout's rules/cloud/aws/cloudtrail); empty: the shipped ones."""


@dataclass(frozen=True)
class NhiAttackConfig:
    enabled: bool = True
    rules_dir: str = ""
    """Extra folder of keytrail rule files (TOML) loaded after the shipped ones."""


@dataclass(frozen=True)
class FindingsConfig:
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    credential_reuse: CredentialReuseConfig = field(default_factory=CredentialReuseConfig)
    long_lived: LongLivedConfig = field(default_factory=LongLivedConfig)
    offboarding: OffboardingConfig = field(default_factory=OffboardingConfig)
    human_use: HumanUseConfig = field(default_factory=HumanUseConfig)
    privilege: PrivilegeConfig = field(default_factory=PrivilegeConfig)
    environment_crossing: EnvironmentCrossingConfig = field(
        default_factory=EnvironmentCrossingConfig
    )
    unattributed: UnattributedConfig = field(default_factory=UnattributedConfig)
    scope_drift: ScopeDriftConfig = field(default_factory=ScopeDriftConfig)
    reconnaissance: ReconnaissanceConfig = field(default_factory=ReconnaissanceConfig)
    secret_sprawl: SecretSprawlConfig = field(default_factory=SecretSprawlConfig)
    sigma: SigmaConfig = field(default_factory=SigmaConfig)
    nhi_attack: NhiAttackConfig = field(default_factory=NhiAttackConfig)
    levels: dict[str, str] = field(default_factory=dict)
    """Per-rule level overrides: rule id -> level."""
    source: str = "defaults"
    """Where the values came from (for messages)."""

    def level_of(self, rule: str, default: str) -> Level:
        return Level.parse(self.levels.get(rule, default))


_LEVEL_FIELDS = {("scope_drift", f.name) for f in fields(ScopeDriftConfig) if f.name != "enabled"}


def _check_value(section: str, key: str, default: Any, value: Any, where: str) -> Any:
    name = f"{section}.{key}"

    def bad(expected: str) -> ConfigError:
        return ConfigError(
            f"{where}: {name} = {value!r} is invalid; allowed: {expected}", "bad configuration"
        )

    if (section, key) in _LEVEL_FIELDS:
        if not isinstance(value, str):
            raise bad(", ".join(allowed_levels()))
        try:
            return Level.parse(value).label
        except UsageError as e:
            raise bad(", ".join(allowed_levels())) from e
    if key == "min_confidence":
        if value not in CONFIDENCES:
            raise bad(", ".join(CONFIDENCES))
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number >= 0")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise bad("a number >= 0")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad("a list of non-empty strings")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad('a table of "key" = "label" strings')
        return dict(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise bad("(unsupported)")  # pragma: no cover - every field has a typed default


def _apply(
    base: FindingsConfig, doc: dict[str, Any], where: str, rule_ids: Collection[str] | None = None
) -> FindingsConfig:
    sections = {f.name: f for f in fields(FindingsConfig) if f.name != "source"}
    updates: dict[str, Any] = {}
    for section, body in doc.items():
        if section not in sections:
            raise ConfigError(
                f"{where}: unknown section [{section}]; allowed sections: {', '.join(sections)}",
                "bad configuration",
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{section}] must be a table", "bad configuration")
        if section == "levels":
            levels = dict(base.levels)
            for rule, value in body.items():
                loaded = rule.startswith(
                    ("sigma:", "nhi-")
                )  # Sigma and rule-file ids, loaded at run time
                if rule_ids is not None and rule not in rule_ids and not loaded:
                    raise ConfigError(
                        f"{where}: levels.{rule} names no rule; allowed rules: {', '.join(rule_ids)}",
                        "bad configuration",
                    )
                if not isinstance(value, str):
                    raise ConfigError(
                        f"{where}: levels.{rule} = {value!r} is invalid; allowed: {', '.join(allowed_levels())}",
                        "bad configuration",
                    )
                try:
                    levels[rule] = Level.parse(value).label
                except UsageError as e:
                    raise ConfigError(
                        f"{where}: levels.{rule} = {value!r} is invalid; allowed: {', '.join(allowed_levels())}",
                        "bad configuration",
                    ) from e
            updates["levels"] = levels
            continue
        current = getattr(base, section)
        allowed = {f.name: getattr(current, f.name) for f in fields(current)}
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key not in allowed:
                raise ConfigError(
                    f"{where}: unknown key {section}.{key}; allowed keys in [{section}]: {', '.join(allowed)}",
                    "bad configuration",
                )
            changes[key] = _check_value(section, key, allowed[key], value, where)
        updates[section] = replace(current, **changes)
    return replace(base, **updates)


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}", "bad configuration") from e


def default_config() -> FindingsConfig:
    """The packaged defaults (``keytrail/data/findings.toml``)."""
    text = resources.files("keytrail").joinpath("data/findings.toml").read_text(encoding="utf-8")
    return replace(
        _apply(FindingsConfig(), _read_toml(text, "findings.toml (built-in)"), "findings.toml"),
        source="defaults",
    )


def load_config(
    path: str | Path | None = None, *, rule_ids: Collection[str] | None = None
) -> FindingsConfig:
    """Load the findings configuration with flag > ``KEYTRAIL_CONFIG`` > defaults precedence.

    ``rule_ids`` are the rules ``[levels]`` may name (the analysis layer hands in
    :data:`keytrail.analysis.findings.catalog.RULES`; this module sits below it and does not
    import it). ``None`` leaves rule names unchecked.

    Raises:
        ConfigError: the file is missing or unreadable, not TOML, or has a bad key or value.
    """
    base = default_config()
    chosen: str | Path | None = path
    origin = "--config"
    if chosen is None:
        env = os.environ.get(ENV_VAR)
        if env:
            chosen, origin = env, ENV_VAR
    if chosen is None:
        return base
    p = Path(chosen)
    where = f"{p} (from {origin})"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            f"{where}: cannot read the configuration file: {e.strerror or e}", "bad configuration"
        ) from e
    return replace(_apply(base, _read_toml(text, where), where, rule_ids), source=str(p))
