"""Findings configuration: defaults, precedence, and errors that name the key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytrail.analysis.findings.catalog import RULES
from keytrail.config import FindingsConfig, default_config, load_config
from keytrail.errors import ConfigError, UsageError
from keytrail.levels import Level


def test_packaged_defaults_equal_dataclass_defaults() -> None:
    # The TOML is the documented reference; the dataclasses must not drift from it.
    cfg = default_config()
    assert cfg.baseline == FindingsConfig().baseline
    for section in (
        "credential_reuse",
        "long_lived",
        "offboarding",
        "human_use",
        "privilege",
        "environment_crossing",
        "unattributed",
        "scope_drift",
        "reconnaissance",
        "secret_sprawl",
    ):
        assert getattr(cfg, section) == getattr(FindingsConfig(), section), section


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "findings.toml"
    p.write_text(text)
    return p


def test_partial_file_overrides_only_its_keys(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "[reconnaissance]\nmin_denied = 3\nwindow_minutes = 2.5\n"))
    assert cfg.reconnaissance.min_denied == 3 and cfg.reconnaissance.window_minutes == 2.5
    assert cfg.reconnaissance.min_distinct_actions == 3 and cfg.baseline.days == 7


def test_precedence_flag_over_env_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env.toml"
    env.write_text("[baseline]\ndays = 3\n")
    flag = tmp_path / "flag.toml"
    flag.write_text("[baseline]\ndays = 1\n")
    monkeypatch.delenv("KEYTRAIL_CONFIG", raising=False)
    assert load_config().baseline.days == 7
    monkeypatch.setenv("KEYTRAIL_CONFIG", str(env))
    assert load_config().baseline.days == 3
    assert load_config(flag).baseline.days == 1


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[baseline]\ndayz = 3\n", ["baseline.dayz", "days", "min_events"]),
        ("[nope]\nx = 1\n", ["[nope]", "credential_reuse"]),
        ("[baseline]\ndays = -1\n", ["baseline.days", "whole number >= 0"]),
        ('[baseline]\ndays = "7"\n', ["baseline.days", "whole number"]),
        ('[credential_reuse]\nenabled = "yes"\n', ["credential_reuse.enabled", "true or false"]),
        (
            '[credential_reuse]\nmin_confidence = "maybe"\n',
            ["min_confidence", "proven, strong, inferred"],
        ),
        (
            '[scope_drift]\nhours = "severe"\n',
            ["scope_drift.hours", "informational, low, medium, high, critical"],
        ),
        (
            '[levels]\n"no-such-rule" = "high"\n',
            ["levels.no-such-rule", "credential-shared-by-agents"],
        ),
        ('[levels]\n"scope-drift" = "urgent"\n', ["levels.scope-drift", "critical"]),
        (
            '[human_use]\nconsole_actions = "signin:ConsoleLogin"\n',
            ["human_use.console_actions", "list"],
        ),
        (
            '[environment_crossing]\nenvironments = {"1" = 2}\n',
            ["environment_crossing.environments"],
        ),
        ("not toml = [\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_key_and_allowed_values(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text), rule_ids=RULES)
    for name in names:
        assert name in err.value.msg
    assert err.value.exit_code == 2


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_levels_order_and_parse() -> None:
    assert Level.INFORMATIONAL < Level.LOW < Level.MEDIUM < Level.HIGH < Level.CRITICAL
    assert Level.parse("HIGH") is Level.HIGH and Level.parse("info") is Level.INFORMATIONAL
    with pytest.raises(
        UsageError, match="allowed values: informational, low, medium, high, critical"
    ):
        Level.parse("severe", what="--min-level")
