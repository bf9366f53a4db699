"""NHI9:2025 NHI Reuse: one credential shared by agents, hosts or sessions.

Separate agents, hosts and sessions should hold separate credentials, so one can be
revoked without breaking the others and an action can be tied to one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context

#: An IPv4 or IPv6 literal; CloudTrail also logs service names (``s3.amazonaws.com``) and
#: ``AWS Internal`` here, which are not hosts.
IP_SQL = r"regexp_full_match(src_ip, '(\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+')"


def run(ctx: Context) -> None:
    cfg = ctx.cfg.credential_reuse
    for r in ctx.rows(
        """SELECT credential_id, list(agent_id ORDER BY t0, agent_id) AS agents, flatten(list(uids ORDER BY t0, agent_id)) AS uids,
                  min(t0) AS t0, max(t1) AS t1, list(how) AS how
           FROM _kt_owner WHERE rank >= ? GROUP BY credential_id HAVING count(*) >= ?""",
        [{"proven": 3, "strong": 2, "inferred": 1}[cfg.min_confidence], cfg.min_agents],
    ):
        agents = r["agents"]
        ctx.add(
            Draft(
                "credential-shared-by-agents",
                [r["credential_id"], *agents],
                r["uids"],
                f"Credential {r['credential_id']} is used by {len(agents)} agents: {', '.join(agents)}. "
                "An action signed with it cannot be tied to one agent, and revoking it stops all of them.",
                "Compromise of any one agent exposes every agent's access; actions are repudiable.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                advice=f"Issue each of {', '.join(agents)} its own credential, then retire the shared one.",
                details={"agents": agents},
            )
        )
    for r in ctx.rows(
        f"""WITH per AS (
              SELECT credential_id, src_ip, arg_min(event_uid, (time, event_uid)) AS uid, min(time) AS t0, max(time) AS t1,
                     count(*) AS n
              FROM events WHERE credential_id IS NOT NULL AND {IP_SQL} GROUP BY credential_id, src_ip)
            SELECT credential_id, list(src_ip ORDER BY t0, src_ip) AS ips, list(uid ORDER BY t0) AS uids,
                   min(t0) AS t0, max(t1) AS t1, sum(n) AS n
            FROM per GROUP BY credential_id HAVING count(*) >= ?""",
        [cfg.min_source_ips],
    ):
        ips = r["ips"]
        ctx.add(
            Draft(
                "credential-used-from-many-hosts",
                [r["credential_id"]],
                r["uids"],
                f"Credential {r['credential_id']} was used from {len(ips)} source addresses "
                f"({', '.join(ips[:10])}{', ...' if len(ips) > 10 else ''}): either it is shared between hosts "
                "or it was copied and used elsewhere.",
                "A copied credential works from anywhere until it is revoked.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                count=int(r["n"]),
                advice="Confirm which addresses are the owner's; if any is not, treat the key as stolen.",
                details={"source_ips": ips},
            )
        )
    for r in ctx.rows(
        """WITH per AS (
              SELECT credential_id, session_id, arg_min(event_uid, (time, event_uid)) AS uid, min(time) AS t0, max(time) AS t1
              FROM events WHERE source = 'agent' AND credential_id IS NOT NULL AND session_id IS NOT NULL
              GROUP BY credential_id, session_id)
            SELECT credential_id, list(session_id ORDER BY t0, session_id) AS sessions, list(uid ORDER BY t0) AS uids,
                   min(t0) AS t0, max(t1) AS t1
            FROM per GROUP BY credential_id HAVING count(*) >= ?""",
        [cfg.min_sessions],
    ):
        sessions = r["sessions"]
        ctx.add(
            Draft(
                "credential-used-across-sessions",
                [r["credential_id"], *sessions[:10]],
                r["uids"],
                f"Credential {r['credential_id']} was used in {len(sessions)} agent sessions; zero trust "
                "(NIST SP 800-207 tenet 3) grants access per session, so each session should get a fresh, "
                "short-lived credential.",
                "A credential leaked from one session keeps working in every later one.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"]],
                advice="Issue per-session credentials (Vault child tokens or STS sessions with a short TTL).",
                details={"sessions": sessions},
            )
        )
