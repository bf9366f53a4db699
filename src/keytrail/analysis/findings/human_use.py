"""NHI10:2025 Human Use of NHI: a person using an agent's identity.

Evidence: a console sign-in as an agent's IAM user or role; console sessions
(``sessionCredentialFromConsole``) or browser user agents on an agent's credential;
interactive tools (aws-cli, CloudShell, curl) on it. Heuristic: an agent that drives a
browser or shells out to the CLI looks the same; the finding says which signal fired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft, contains_any_sql
from keytrail.analysis.findings.rawpass import console_sql, ensure
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    from keytrail.analysis.findings.context import Context


def run(ctx: Context) -> None:
    cfg = ctx.cfg.human_use
    # Principals (account:role/name, account:user/name, or ids as logged) that belong to agents.
    ctx.cur.execute(
        """CREATE OR REPLACE TEMP TABLE _kt_agent_principal AS
           SELECT DISTINCT _kt_pkey(c.principal) AS pkey, ca.agent_id
           FROM _kt_chain_agent ca JOIN _kt_creds c USING (credential_id)
           WHERE c.principal IS NOT NULL
             AND (c.kind IN ('aws-access-key', 'aws-temporary-key') OR c.principal LIKE 'arn:%')
           UNION
           SELECT DISTINCT _kt_pkey(ident), agent_id FROM (
             SELECT agent_id, unnest(identities) AS ident FROM inventory_agents)
           WHERE ident LIKE 'arn:%'"""
    )
    actions = ", ".join(quote_literal(a) for a in cfg.console_actions) or "NULL"
    for r in ctx.rows(
        f"""SELECT e.actor_uid, list(DISTINCT p.agent_id ORDER BY p.agent_id) AS agents, count(DISTINCT e.event_uid) AS n,
                   min(e.time) AS t0, max(e.time) AS t1, arg_min(e.event_uid, (e.time, e.event_uid), 25) AS uids,
                   list(DISTINCT e.src_ip ORDER BY e.src_ip) FILTER (WHERE e.src_ip IS NOT NULL) AS ips,
                   list(DISTINCT e.credential_id ORDER BY e.credential_id) FILTER (WHERE e.credential_id IS NOT NULL) AS creds
            FROM events e JOIN _kt_agent_principal p ON p.pkey = _kt_pkey(e.actor_uid)
            WHERE e.action IN ({actions})
            GROUP BY e.actor_uid"""
    ):
        agents = sorted(r["agents"])
        ctx.add(
            Draft(
                "console-login-as-agent",
                [r["actor_uid"], *agents, *(r["creds"] or [])],
                r["uids"],
                f"{r['n']} console sign-in event(s) as {r['actor_uid']}, an identity of agent(s) "
                f"{', '.join(agents)}, from {', '.join(r['ips'] or ['unknown addresses'])}. Agents do not sign in "
                "to the console; a person used the agent's identity.",
                "Human actions under an agent identity are unaccountable and carry the agent's privileges.",
                r["t0"],
                r["t1"],
                contain=r["creds"] or [],
                count=int(r["n"]),
                advice=(
                    f"Remove console access from {r['actor_uid']} (aws iam delete-login-profile for a user; "
                    "a trust policy without console federation for a role) and find who signed in."
                ),
            )
        )
    browser = contains_any_sql("e.user_agent", cfg.browser_user_agents)
    interactive = contains_any_sql("e.user_agent", cfg.interactive_user_agents)
    # An agent's credentials: its chain, plus long-term keys minted from it (CreateAccessKey with
    # the agent's session). Chains stop at such a key, but a person driving it with a browser or
    # the CLI is still a person using what the agent's identity made.
    ctx.cur.execute(
        """CREATE OR REPLACE TEMP TABLE _kt_agent_cred AS
           SELECT credential_id, agent_id, NULL AS minted_by FROM _kt_chain_agent
           UNION
           SELECT m.child, ca.agent_id, m.parent FROM _kt_minted m
           JOIN _kt_chain_agent ca ON ca.credential_id = m.parent
           WHERE m.child NOT IN (SELECT credential_id FROM _kt_chain_agent)
             AND m.child IN (SELECT credential_id FROM _kt_creds
                             WHERE kind = 'aws-access-key' OR credential_id LIKE 'AKIA%')"""
    )
    # The console-session flag of CloudTrail records comes from the one read of their JSON
    # (findings.rawpass); other sources' records are tested here, by the same test.
    ensure(ctx)

    def ev(where: str, console: str) -> str:
        return f"""SELECT e.credential_id, e.event_uid, e.time, e.user_agent, e.src_ip,
                     CASE WHEN {browser} OR {console} THEN 'browser-on-agent-credential'
                          WHEN {interactive} THEN 'interactive-tool-on-agent-credential' END AS rule
              FROM events e
              WHERE e.credential_id IN (SELECT credential_id FROM _kt_agent_cred)
                AND e.action NOT IN ({actions}) AND {where}"""

    flagged = "e.event_uid IN (SELECT event_uid FROM _kt_console_ct)"
    for r in ctx.rows(
        f"""WITH ev AS (
              {ev("e.source = 'cloudtrail'", flagged)}
              UNION ALL
              {ev("e.source <> 'cloudtrail'", console_sql("e.raw"))})
            SELECT ev.rule, ev.credential_id, count(*) AS n, min(time) AS t0, max(time) AS t1,
                   arg_min(event_uid, (time, event_uid), 25) AS uids, list(DISTINCT user_agent ORDER BY user_agent)[1:5] AS uas,
                   list(DISTINCT src_ip ORDER BY src_ip) FILTER (WHERE src_ip IS NOT NULL)[1:5] AS ips,
                   (SELECT list(DISTINCT agent_id ORDER BY agent_id) FROM _kt_agent_cred ac
                    WHERE ac.credential_id = ev.credential_id) AS agents,
                   (SELECT list(DISTINCT minted_by ORDER BY minted_by) FILTER (WHERE minted_by IS NOT NULL)
                    FROM _kt_agent_cred ac WHERE ac.credential_id = ev.credential_id) AS minted_by
            FROM ev WHERE rule IS NOT NULL GROUP BY ev.rule, ev.credential_id"""
    ):
        agents = sorted(r["agents"] or [])
        minted_by = r["minted_by"] or []
        kind = (
            "a browser or console session"
            if r["rule"] == "browser-on-agent-credential"
            else "interactive tooling"
        )
        # A key minted from an agent's session is used away from the agent: say from where.
        whose, where = (
            (
                f", minted by {', '.join(minted_by)} in the credential chain of agent(s) {', '.join(agents)},",
                f" from {', '.join(r['ips'] or ['unknown addresses'])}",
            )
            if minted_by
            else (f" of agent(s) {', '.join(agents)}", "")
        )
        ctx.add(
            Draft(
                r["rule"],
                [r["credential_id"], *agents, *minted_by],
                r["uids"],
                f"Credential {r['credential_id']}{whose} was used {r['n']} time(s) through {kind}{where} "
                f"(user agents: {'; '.join(u for u in r['uas'] if u) or 'console session flag'}).",
                "A person holding an agent's credential acts with its privileges and without attribution.",
                r["t0"],
                r["t1"],
                contain=[r["credential_id"], *minted_by],
                count=int(r["n"]),
                advice="Find who used it from these addresses; give people their own identities.",
            )
        )
