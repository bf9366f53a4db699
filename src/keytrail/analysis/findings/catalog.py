"""Every rule keytrail can report: id, family, default level, title and framework ids.

Kept apart from the rule code so configuration (``[levels]`` overrides), the docs and
the front ends can list rules without running them. Framework ids are the published
ones: OWASP NHI Top 10 2025 (``NHI1:2025`` .. ``NHI10:2025``), OWASP Top 10 for
Agentic Applications (``ASI01`` .. ``ASI10``) and NIST SP 800-207 (``NIST-800-207``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Published titles, for reports and ``docs/findings.md``.
FRAMEWORK_TITLES = {
    "NHI1:2025": "Improper Offboarding",
    "NHI2:2025": "Secret Leakage",
    "NHI3:2025": "Vulnerable Third-Party NHI",
    "NHI4:2025": "Insecure Authentication",
    "NHI5:2025": "Overprivileged NHI",
    "NHI6:2025": "Insecure Cloud Deployment Configurations",
    "NHI7:2025": "Long-Lived Secrets",
    "NHI8:2025": "Environment Isolation",
    "NHI9:2025": "NHI Reuse",
    "NHI10:2025": "Human Use of NHI",
    "ASI02": "Tool Misuse and Exploitation",
    "ASI03": "Identity and Privilege Abuse",
    "ASI10": "Rogue Agents",
    "NIST-800-207": "NIST SP 800-207 Zero Trust Architecture",
}


@dataclass(frozen=True)
class RuleInfo:
    id: str
    family: str  # the config section that holds its thresholds
    level: str  # default level (overridable in [levels])
    title: str
    frameworks: tuple[str, ...]


def _r(id: str, family: str, level: str, title: str, *frameworks: str) -> RuleInfo:
    return RuleInfo(id, family, level, title, frameworks)


RULES: dict[str, RuleInfo] = {
    r.id: r
    for r in (
        _r(
            "credential-shared-by-agents",
            "credential_reuse",
            "high",
            "One credential used by several agents",
            "NHI9:2025",
            "ASI03",
        ),
        _r(
            "credential-used-from-many-hosts",
            "credential_reuse",
            "medium",
            "One credential used from several source addresses",
            "NHI9:2025",
        ),
        _r(
            "credential-used-across-sessions",
            "credential_reuse",
            "low",
            "One credential reused across many agent sessions",
            "NHI9:2025",
            "NIST-800-207",
        ),
        _r(
            "long-term-key-used-by-agent",
            "long_lived",
            "high",
            "Agent uses a long-term access key",
            "NHI7:2025",
            "NHI4:2025",
        ),
        _r(
            "vault-token-long-ttl",
            "long_lived",
            "medium",
            "Vault token with a long or no TTL",
            "NHI7:2025",
        ),
        _r(
            "credential-active-too-long",
            "long_lived",
            "medium",
            "Credential active far longer than its task",
            "NHI7:2025",
            "NIST-800-207",
        ),
        _r(
            "agent-active-after-retirement",
            "offboarding",
            "critical",
            "Retired agent still acting",
            "NHI1:2025",
        ),
        _r(
            "credential-used-after-agent-retired",
            "offboarding",
            "critical",
            "Credential of a retired agent still used",
            "NHI1:2025",
        ),
        _r(
            "orphan-credential",
            "offboarding",
            "medium",
            "Credential with no owning agent or human",
            "NHI1:2025",
        ),
        _r(
            "unregistered-agent",
            "offboarding",
            "low",
            "Agent acting that the inventory does not list",
            "NHI1:2025",
        ),
        _r(
            "console-login-as-agent",
            "human_use",
            "high",
            "Console sign-in with an agent's identity",
            "NHI10:2025",
        ),
        _r(
            "browser-on-agent-credential",
            "human_use",
            "high",
            "Browser or console session on an agent's credential",
            "NHI10:2025",
        ),
        _r(
            "interactive-tool-on-agent-credential",
            "human_use",
            "low",
            "Interactive tooling on an agent's credential",
            "NHI10:2025",
        ),
        _r(
            "long-term-credential-minted",
            "privilege",
            "high",
            "Credential minted a long-term credential",
            "NHI5:2025",
            "ASI03",
        ),
        _r(
            "vault-token-with-other-policies",
            "privilege",
            "high",
            "Vault token created with policies its parent lacks",
            "NHI5:2025",
            "ASI03",
        ),
        _r(
            "iam-or-policy-change",
            "privilege",
            "high",
            "Identity or policy changed by a non-human identity",
            "NHI5:2025",
            "ASI03",
        ),
        _r(
            "admin-or-root-use",
            "privilege",
            "critical",
            "Root or administrator identity used",
            "NHI5:2025",
            "NHI4:2025",
        ),
        _r(
            "unused-privilege",
            "privilege",
            "medium",
            "Agent identity granted admin or IAM write it never uses",
            "NHI5:2025",
        ),
        _r(
            "environment-crossing",
            "environment_crossing",
            "medium",
            "One credential acting in several accounts or environments",
            "NHI8:2025",
        ),
        _r(
            "unattributed-actions",
            "unattributed",
            "medium",
            "Actions no agent or human can be tied to",
            "ASI03",
            "NIST-800-207",
        ),
        _r(
            "agent-actions-without-human",
            "unattributed",
            "low",
            "Agent actions with no delegating human",
            "ASI03",
        ),
        _r(
            "scope-drift",
            "scope_drift",
            "medium",
            "Behaviour outside the subject's baseline",
            "ASI02",
            "ASI03",
            "NIST-800-207",
        ),
        _r(
            "denied-burst",
            "reconnaissance",
            "medium",
            "Burst of denied calls",
            "ASI03",
            "NIST-800-207",
        ),
        _r(
            "secret-sprawl",
            "secret_sprawl",
            "medium",
            "Many distinct secrets read by one credential chain",
            "NHI5:2025",
            "ASI03",
        ),
    )
}
