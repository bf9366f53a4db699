"""``keytrail findings`` and ``keytrail baseline``: governance gaps and behaviour baselines.

Text output is a list grouped by level, highest first; every log-derived string goes
through :func:`keytrail.safetext.shown`. ``--json`` prints one document:
``{"findings": [Finding.as_dict(), ...], "counts": {level: n}}``. ``--fail-on LEVEL``
exits 1 when any finding is at or above LEVEL (a CI gate); a bad configuration exits 2
with a message naming the key and the allowed values.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keytrail.analysis.baseline import Baseline
    from keytrail.analysis.findings import Finding

_LEVELS = "informational, low, medium, high, critical"


def _add_findings(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case file")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON document: {"findings": [...], "counts": {...}}',
    )
    p.add_argument(
        "--min-level",
        default="informational",
        metavar="LEVEL",
        help=f"show only LEVEL and above ({_LEVELS})",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="thresholds TOML (default: $KEYTRAIL_CONFIG, else built-in)",
    )
    p.add_argument(
        "--baseline-until", metavar="TIME", help="end every baseline window at TIME (ISO 8601, UTC)"
    )
    p.add_argument(
        "--fail-on", metavar="LEVEL", help="exit 1 when a finding at or above LEVEL exists"
    )
    p.add_argument("--wide", action="store_true", help="do not wrap lines at the terminal width")
    p.add_argument(
        "--sigma",
        metavar="DIR",
        help="run the Sigma rules in DIR (e.g. a SigmaHQ checkout's rules/cloud/aws/cloudtrail) "
        "instead of the shipped ones",
    )
    p.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID",
        help="show only findings of rule ID (glob, e.g. 'sigma:*' or 'nhi-*'; repeatable)",
    )
    p.add_argument(
        "--exclude-rule",
        action="append",
        default=[],
        metavar="ID",
        help="leave out findings of rule ID (glob; repeatable)",
    )


def select_rules(findings: list[Finding], include: list[str], exclude: list[str]) -> list[Finding]:
    """Findings whose rule id matches an ``include`` glob (all when none) and no ``exclude`` glob."""
    from fnmatch import fnmatchcase

    return [
        f
        for f in findings
        if (not include or any(fnmatchcase(f.rule, p) for p in include))
        and not any(fnmatchcase(f.rule, p) for p in exclude)
    ]


def sigma_status(rules_dir: str) -> dict[str, Any]:
    """Which Sigma rules ran and which did not convert (with the reason): shown with every run."""
    from keytrail.analysis.sigma.rules import load_rules

    rs = load_rules(rules_dir or None)
    return {
        "directory": rs.directory,
        "converted": len(rs.rules),
        "failed": [{"file": f.path, "title": f.title, "reason": f.reason} for f in rs.failed],
    }


def _add_baseline(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="case file")
    p.add_argument("id", help="agent id or credential id as logged")
    p.add_argument("--json", action="store_true", help="one JSON document (Baseline.as_dict)")
    p.add_argument(
        "--config", metavar="FILE", help="thresholds TOML (baseline window and networks)"
    )
    p.add_argument(
        "--baseline-until", metavar="TIME", help="end the baseline window at TIME (ISO 8601, UTC)"
    )


def _text(value: Any, width: int | None = None) -> str:
    from keytrail.safetext import shown

    return shown(str(value), width)


def render_findings(
    findings: list[Finding], counts: dict[str, int], width: int | None = None
) -> str:
    """The text report: one block per level, one entry per finding, wrapped at ``width``."""
    from keytrail.cli.fit import wrap

    return "\n".join(out for line in _finding_lines(findings, counts) for out in wrap(line, width))


def _finding_lines(findings: list[Finding], counts: dict[str, int]) -> list[str]:
    from keytrail.timefmt import format_utc

    lines: list[str] = []
    total = sum(counts.values())
    lines.append(
        f"{total} finding(s): " + ", ".join(f"{n} {lvl}" for lvl, n in counts.items() if n)
    )
    for level in counts:
        group = [f for f in findings if f.level.label == level]
        if not group:
            continue
        lines += ["", f"== {level.upper()} ({len(group)}) " + "=" * 40]
        for f in group:
            span = f"{format_utc(f.first_seen) or '?'} .. {format_utc(f.last_seen) or '?'}"
            lines.append(f"- [{f.rule}] {_text(f.title)}   {span}")
            lines.append(f"    frameworks: {', '.join(f.frameworks)}")
            lines.append(f"    subjects:   {_text(', '.join(f.subjects), 300)}")
            lines.append(f"    what:       {_text(f.description, 600)}")
            lines.append(f"    impact:     {_text(f.impact, 300)}")
            lines.append(f"    contain:    {_text(f.recommendation, 800)}")
            more = (
                f" (showing {len(f.evidence)} of {f.evidence_count})"
                if f.evidence_count > len(f.evidence)
                else ""
            )
            lines.append(f"    evidence{more}: {_text(', '.join(f.evidence), 400)}")
    return lines


def run_findings_cmd(args: argparse.Namespace) -> int:
    from keytrail.analysis.answers import run_findings
    from keytrail.analysis.findings import count_levels
    from keytrail.analysis.findings.catalog import RULES
    from keytrail.config import load_config
    from keytrail.levels import Level
    from keytrail.store.case import CaseStore

    min_level = Level.parse(args.min_level, what="--min-level")
    fail_on = Level.parse(args.fail_on, what="--fail-on") if args.fail_on else None
    cfg = load_config(args.config, rule_ids=RULES)
    if args.sigma:
        from dataclasses import replace

        cfg = replace(cfg, sigma=replace(cfg.sigma, rules_dir=args.sigma))
    sigma = sigma_status(cfg.sigma.rules_dir) if cfg.sigma.enabled else None
    with CaseStore.open(args.case) as store:
        findings = run_findings(
            store, config=cfg, min_level=min_level, baseline_until=args.baseline_until
        )
    findings = select_rules(findings, args.rule, args.exclude_rule)
    counts = count_levels(findings)
    if args.json:
        from keytrail.cli.main import print_json

        print_json({"findings": [f.as_dict() for f in findings], "counts": counts, "sigma": sigma})
    else:
        from keytrail.cli.fit import width_of

        width = width_of(sys.stdout, wide=args.wide)
        print(render_findings(findings, counts, width))
        if sigma is not None:
            print(_sigma_status(sigma, width))
    if fail_on is not None and any(f.level >= fail_on for f in findings):
        print(f"keytrail: findings at or above {fail_on.label} (--fail-on)", file=sys.stderr)
        return 1
    return 0


def _sigma_status(sigma: dict[str, Any], width: int | None) -> str:
    """Which Sigma rules ran and which did not convert, wrapped to the terminal like the findings
    (the shipped rules' folder inside an installed package is a long path)."""
    from keytrail.cli.fit import wrap

    head = f"Sigma: {sigma['converted']} rule(s) from {_text(sigma['directory'], 400)} ran" + (
        f"; {len(sigma['failed'])} did not convert:" if sigma["failed"] else "."
    )
    lines = [head] + [
        f"  - {_text(f['file'], 200)}: {_text(f['reason'], 300)}" for f in sigma["failed"]
    ]
    return "\n" + "\n".join(out for line in lines for out in wrap(line, width))


def render_baseline(b: Baseline) -> str:
    from keytrail.analysis.baseline import DIMENSIONS
    from keytrail.timefmt import format_utc

    lines = [
        f"{b.kind} {_text(b.subject, 200)}",
        f"baseline window: {format_utc(b.window_start)} .. {format_utc(b.window_end)} ({b.baseline_events} events"
        + (", too few to judge drift" if b.thin else "")
        + f"); last seen {format_utc(b.last_seen)}",
    ]
    for dim in DIMENSIONS:
        vals = b.values.get(dim, [])
        shown = ", ".join(f"{_text(v['value'], 80)} ({v['events']})" for v in vals[:20])
        lines.append(f"  {dim:<16} {shown or '-'}{' ...' if len(vals) > 20 else ''}")
    lines += ["", "departed after the window:"]
    any_dep = False
    for dim in DIMENSIONS:
        for d in b.departed.get(dim, []):
            any_dep = True
            lines.append(
                f"  {dim:<16} {_text(d['value'], 80)}: {d['events']} event(s) from {d['first_seen']}; "
                f"evidence {_text(', '.join(d['evidence']), 200)}"
            )
    if not any_dep:
        lines.append("  nothing")
    return "\n".join(lines)


def run_baseline_cmd(args: argparse.Namespace) -> int:
    from keytrail.analysis.baseline import baseline
    from keytrail.analysis.findings.catalog import RULES
    from keytrail.config import load_config
    from keytrail.store.case import CaseStore

    cfg = load_config(args.config, rule_ids=RULES)
    with CaseStore.open(args.case) as store:
        b = baseline(store, args.id, baseline_until=args.baseline_until, config=cfg)
    if args.json:
        from keytrail.cli.main import print_json

        print_json(b.as_dict())
    else:
        print(render_baseline(b))
    return 0


COMMANDS: dict[str, Any] = {
    "findings": (
        "NHI governance findings mapped to OWASP NHI Top 10 / ASI / NIST SP 800-207",
        _add_findings,
        run_findings_cmd,
    ),
    "baseline": (
        "behaviour baseline of an agent or credential, and what departed from it",
        _add_baseline,
        run_baseline_cmd,
    ),
}
