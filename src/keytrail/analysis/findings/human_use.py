"""NHI10:2025 Human Use of NHI: a person using an agent's identity.

Evidence: a console sign-in as an agent's IAM user or role; console sessions
(``sessionCredentialFromConsole``) or browser user agents on an agent's credential;
interactive tools (aws-cli, CloudShell, curl) on it. Heuristic: an agent that drives a
browser or shells out to the CLI looks the same; the finding says which signal fired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.analysis.findings.context import Draft, contains_any_sql

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
    actions = ", ".join("'" + a.replace("'", "''") + "'" for a in cfg.console_actions) or "NULL"
    for r in ctx.rows(
        f"""SELECT e.actor_uid, list(DISTINCT p.agent_id) AS agents, count(DISTINCT e.event_uid) AS n,
                   min(e.time) AS t0, max(e.time) AS t1, arg_min(e.event_uid, e.time, 25) AS uids,
                   list(DISTINCT e.src_ip) FILTER (WHERE e.src_ip IS NOT NULL) AS ips,
                   list(DISTINCT e.credential_id) FILTER (WHERE e.credential_id IS NOT NULL) AS creds
            FROM events e JOIN _kt_agent_principal p ON p.pkey = _kt_pkey(e.actor_uid)
            WHERE e.action IN ({actions})
            GROUP BY e.actor_uid"""
    ):
        agents = sorted(r["agents"])
        ctx.add(Draft(
            "console-login-as-agent", [r["actor_uid"], *agents, *(r["creds"] or [])], r["uids"],
            f"{r['n']} console sign-in event(s) as {r['actor_uid']}, an identity of agent(s) "
            f"{', '.join(agents)}, from {', '.join(r['ips'] or ['unknown addresses'])}. Agents do not sign in "
            "to the console; a person used the agent's identity.",
            "Human actions under an agent identity are unaccountable and carry the agent's privileges.",
            r["t0"], r["t1"], contain=r["creds"] or [], count=int(r["n"]),
            advice=(f"Remove console access from {r['actor_uid']} (aws iam delete-login-profile for a user; "
                    "a trust policy without console federation for a role) and find who signed in."),
        ))
    browser = contains_any_sql("e.user_agent", cfg.browser_user_agents)
    interactive = contains_any_sql("e.user_agent", cfg.interactive_user_agents)
    for r in ctx.rows(
        f"""WITH ev AS (
              SELECT e.credential_id, e.event_uid, e.time, e.user_agent, e.src_ip,
                     CASE WHEN {browser}
                            OR (contains(e.raw, 'sessionCredentialFromConsole')
                                AND json_extract_string(e.raw, '$.sessionCredentialFromConsole') = 'true')
                          THEN 'browser-on-agent-credential'
                          WHEN {interactive} THEN 'interactive-tool-on-agent-credential' END AS rule
              FROM events e
              WHERE e.credential_id IN (SELECT credential_id FROM _kt_chain_agent)
                AND e.action NOT IN ({actions}))
            SELECT ev.rule, ev.credential_id, count(*) AS n, min(time) AS t0, max(time) AS t1,
                   arg_min(event_uid, time, 25) AS uids, list(DISTINCT user_agent)[1:5] AS uas,
                   (SELECT list(DISTINCT agent_id) FROM _kt_chain_agent ca
                    WHERE ca.credential_id = ev.credential_id) AS agents
            FROM ev WHERE rule IS NOT NULL GROUP BY ev.rule, ev.credential_id"""
    ):
        agents = sorted(r["agents"] or [])
        kind = "a browser or console session" if r["rule"] == "browser-on-agent-credential" else "interactive tooling"
        ctx.add(Draft(
            r["rule"], [r["credential_id"], *agents], r["uids"],
            f"Credential {r['credential_id']} of agent(s) {', '.join(agents)} was used {r['n']} time(s) through "
            f"{kind} (user agents: {'; '.join(u for u in r['uas'] if u) or 'console session flag'}).",
            "A person holding an agent's credential acts with its privileges and without attribution.",
            r["t0"], r["t1"], contain=[r["credential_id"]], count=int(r["n"]),
            advice="Find who used it from these addresses; give people their own identities.",
        ))
