"""Who is a person, who is a workload: one classifier for every credential and principal.

An NHI tool must tell a CI job's JWT login from an engineer's, an admin's console session
from an agent's key. Every credential and every principal of the case gets one decision in
``principal_classes``: ``person``, ``workload``, ``agent``, ``aws-service`` or ``unknown``,
with a reason, a confidence (``proven`` / ``strong`` / ``inferred``, as for edges) and the
event uids that show it. Findings join this table to fire on non-human subjects only; the
graph uses it to draw a person's DELEGATED edges; every front end shows it.

All bulk SQL over ``events``, ``_kt_issue``, ``_kt_vault_login``, ``_kt_mint`` and the
``USES``/``AUTHENTICATES_AS`` links, run inside :func:`keytrail.graph.derive.derive`. The
rules, in the order they win (lowest ``prio`` first, then the higher confidence):

0. a console session on the credential itself (``ConsoleLogin``, ``SwitchRole``,
   ``sessionCredentialFromConsole``): a person at a browser, whatever identity they used;
1. an agent's own log, Vault token metadata or the inventory naming the credential (the
   inventory wins over everything but a console session); an AWS service acting itself;
   IAM Identity Center permission-set sessions (``AWSReservedSSO_*``);
2. issuance and login facts: Vault auth method, role and JWT/OIDC claims
   (:mod:`keytrail.workload_claims`), SAML and web-identity federation (GitHub Actions'
   ``token.actions.githubusercontent.com``, EKS IRSA), roles assumed by EC2, Lambda, ECS
   and EKS Pod Identity, EC2 instance sessions (``.../i-0abc...``, ``ec2RoleDelivery``),
   MFA, ``sourceIdentity``, Lambda/ECS runtime user agents;
3. an agent linked by time and target only (an inferred USES edge);
4. user-agent families alone: browser -> person, SDK/Terraform -> workload (inferred);
5. inherited: a temporary credential minted by one with a proven or strong decision (role
   chaining, Vault child tokens and leases) holds its parent's class, strong, and this
   replaces an inferred decision of its own; a long-term key created with
   ``CreateAccessKey`` inherits nothing (whoever receives it is a new question).

Principals: the inventory first; then console sign-in and AWS-service actors; then the
best decision among the credentials that authenticate as them; humans and agents of the
graph are persons and agents. Everything else is ``unknown``, never guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.workload_claims import CLAIM_MARKERS, SUBJECT_SHAPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb

CLASSES = ("person", "workload", "agent", "aws-service", "unknown")
#: Auth methods whose logins are workloads by construction, and those that authenticate people.
WORKLOAD_AUTH_METHODS = (
    "approle",
    "kubernetes",
    "aws",
    "cert",
    "gcp",
    "azure",
    "alicloud",
    "oci",
    "cf",
    "tls",
)
PERSON_AUTH_METHODS = ("userpass", "ldap", "okta", "radius", "github", "saml")
#: AWS services whose AssumeRole hands the credential to a workload they run.
WORKLOAD_SERVICES = (
    ("ec2.amazonaws.com", "ec2-instance"),
    ("lambda.amazonaws.com", "lambda"),
    ("ecs-tasks.amazonaws.com", "ecs-task"),
    ("pods.eks.amazonaws.com", "eks-pod-identity"),
)
_EV = 5  # evidence event uids kept per decision

_INSERT = (
    "INSERT INTO principal_classes (subject_kind, subject, class, detail, person, reason, "
    "confidence, "
    "evidence, attributes) "
)


def table_sql(con: duckdb.DuckDBPyConnection) -> str:
    """``principal_classes``, or an empty stand-in with its columns for a case written before the
    table existed (opened read-only, so it cannot be added): readers then see every class
    unknown."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'principal_classes'"
    ).fetchone()
    if row and row[0]:
        return "principal_classes"
    return (
        "(SELECT NULL::VARCHAR AS subject_kind, NULL::VARCHAR AS subject, NULL::VARCHAR AS class, "
        "NULL::VARCHAR AS detail, NULL::VARCHAR AS person, NULL::VARCHAR AS reason, "
        "NULL::VARCHAR AS confidence, NULL::VARCHAR[] AS evidence, NULL::JSON AS attributes "
        "WHERE false)"
    )


def holders(
    con: duckdb.DuckDBPyConnection, credentials: Sequence[str] | None = None
) -> dict[str, str]:
    """``{credential_id: class}`` for every classified credential (empty for an older case), or
    for ``credentials`` only (a trace's chain: the whole map is ~50,000 rows at 1M, ~60 ms)."""
    sql = f"SELECT subject, class FROM {table_sql(con)} WHERE subject_kind = 'credential'"
    if credentials is None:
        rows = con.execute(sql).fetchall()
    else:
        rows = con.execute(
            sql + " AND list_contains($ids, subject)", {"ids": list(credentials)}
        ).fetchall()
    return {str(k): str(v) for k, v in rows}


def decision(
    con: duckdb.DuckDBPyConnection, subject: str, kind: str = "credential"
) -> dict[str, object] | None:
    """The classifier's decision on one credential or principal, as a JSON-ready dict."""
    cols = ("class", "detail", "person", "reason", "confidence", "evidence")
    row = con.execute(
        f"SELECT {', '.join(cols)} FROM {table_sql(con)} WHERE subject_kind = ? AND subject = ?",
        [kind, subject],
    ).fetchone()
    return dict(zip(cols, row, strict=True)) if row else None


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _family(expr: str) -> str:
    """SQL: the workload family of a subject found anywhere after a ``-`` or quote (display names
    carry a mount prefix, metadata is JSON text), else NULL."""
    lead = '(^|[-"])'
    whens = " ".join(
        f"WHEN regexp_matches({expr}, {_lit(lead + rx[1:])}) THEN {_lit(fam)}"
        for fam, rx in SUBJECT_SHAPES
    )
    marks = " ".join(
        f"WHEN contains({expr}, {_lit(m)}) THEN {_lit(fam)}" for fam, m in CLAIM_MARKERS
    )
    return f"CASE {whens} {marks} END"


_UA_FAMILY = r"""CASE WHEN coalesce(user_agent, '') = '' THEN NULL
  WHEN regexp_matches(user_agent,
      '(^|\.)(console|signin)\.amazonaws\.com$|^AWS Signin|exec-env/CloudShell')
    THEN 'console'
  WHEN starts_with(user_agent, 'Mozilla/') THEN 'browser'
  WHEN contains(user_agent, 'exec-env/AWS_Lambda') THEN 'lambda'
  WHEN contains(user_agent, 'exec-env/AWS_ECS') THEN 'ecs-task'
  WHEN regexp_matches(lower(user_agent), 'terraform') THEN 'terraform'
  WHEN starts_with(user_agent, 'aws-cli/') THEN 'cli'
  WHEN regexp_matches(lower(user_agent),
      '^(boto3|botocore|aws-sdk|aws-go-sdk|apn/|awspowershell|aws-internal)')
    THEN 'sdk'
  WHEN regexp_matches(user_agent, '\.amazonaws\.com$') THEN 'aws-service'
  ELSE 'other' END"""

# Per credential: what its CloudTrail events say about who held it. The session facts
# (sessionContext: MFA, web identity, sourceIdentity, ec2RoleDelivery; the console flag) are the
# session's, the same on each of its events, so they are read from the first two events of each
# (credential, identity) only: parsing every raw record cost seconds per 100k events. Evidence is
# the first events by time (top-k, no sort).
_SAMPLED = 2

# The ``raw`` fields the classifier reads: the session facts of the sampled records (1-4), then
# the issuing call's (5-10: ``_CT_ISSUE``); one parse of a record for all of them. ``raw`` is
# compressed in blocks, and the sampled and the issuing records are spread over the whole table:
# reading them cost a decompression of nearly every block, once for each set (0.36-0.55 CPU-s
# each at 1M events) until a full derive read both sets in one scan (``_kt_ct_raw``).
_RAW_PATHS = (
    "$.sessionCredentialFromConsole",
    "$.userIdentity.sessionContext.attributes.mfaAuthenticated",
    "$.userIdentity.sessionContext.webIdFederationData.federatedProvider",
    "$.userIdentity.sessionContext.sourceIdentity",
    "$.userIdentity.invokedBy",
    "$.responseElements.provider",
    "$.userIdentity.identityProvider",
    "$.responseElements.subjectFromWebIdentityToken",
    "$.responseElements.subject",
    "$.userIdentity.userName",
)
_RAW_FIELDS = (
    f"json_extract_string(raw, [{', '.join(_lit(p) for p in _RAW_PATHS)}]) AS j, "
    "contains(raw, 'ec2RoleDelivery') AS ec2d"
)


def _raw_of(uids: str, rows: str = "") -> str:
    """The raw fields of the events of ``uids`` (a query of event uids): a rowid semi-join the
    scan applies, so only the blocks holding them are read."""
    return (
        f"SELECT event_uid, {_RAW_FIELDS} FROM events WHERE rowid IN "
        f"(SELECT rowid FROM events WHERE event_uid IN ({uids}){rows})"
    )


_SAMPLE = f"""SELECT unnest(arg_min(event_uid, (time, event_uid), {_SAMPLED})) AS event_uid
  FROM events ev WHERE ev.source = 'cloudtrail' AND ev.credential_id IS NOT NULL /*scope*/
  GROUP BY ev.credential_id, ev.actor_uid"""

# A full derive's one read of ``raw``: the sampled records of every credential (``sampled``) and
# the events that issued a credential in CloudTrail, for ``credential_facts`` and ``_kt_cti``.
_CT_RAW = f"""
CREATE OR REPLACE TEMP TABLE _kt_ct_raw AS
WITH sampled AS MATERIALIZED ({_SAMPLE.replace("/*scope*/", "")})
SELECT event_uid, j, ec2d, event_uid IN (SELECT event_uid FROM sampled) AS sampled
FROM ({
    _raw_of(
        "SELECT event_uid FROM sampled UNION ALL SELECT event_uid FROM _kt_issue "
        "WHERE src_source = 'cloudtrail'"
    )
})
"""


def _first(cond: str) -> str:
    return f"arg_min(event_uid, (time, event_uid), {_EV}) FILTER (WHERE {cond})"


_SSO = "regexp_matches(coalesce(actor_uid, ''), ':assumed-role/AWSReservedSSO_')"
# The rows of ``credential_facts``: a credential's row reads only its own CloudTrail events.
_CT_FACTS = rf"""
INSERT INTO credential_facts
WITH sampled AS (
  {_SAMPLE}
), sraw AS (
  /*raw*/
), uaf AS (
  -- the user-agent family per distinct user agent (a handful), not per event
  SELECT user_agent, {_UA_FAMILY} AS ua FROM (
    SELECT DISTINCT user_agent FROM events ev
    WHERE ev.source = 'cloudtrail' AND ev.credential_id IS NOT NULL /*scope*/)
), e AS (
  SELECT ev.credential_id, ev.event_uid, ev.time, ev.actor_uid, ev.actor_type, ev.actor_name,
         ev.action, u.ua, s.j, s.ec2d
  FROM events ev LEFT JOIN sraw s ON s.event_uid = ev.event_uid
  LEFT JOIN uaf u ON u.user_agent = ev.user_agent
  WHERE ev.source = 'cloudtrail' AND ev.credential_id IS NOT NULL /*scope*/
), f AS (
  SELECT credential_id, event_uid, time, actor_uid, actor_type, actor_name, ua,
    (action IN ('signin:ConsoleLogin', 'signin:SwitchRole') OR coalesce(j[1] = 'true', false))
      AS console,
    coalesce(j[2] = 'true', false) AS mfa,
    j[3] AS webid,
    nullif(j[4], '') AS src_id,
    (regexp_matches(coalesce(actor_uid, ''), ':assumed-role/[^/]+/i-[0-9a-f]{{8,17}}$')
     OR coalesce(ec2d, false)) AS ec2
  FROM e
)
SELECT credential_id,
  arg_min(event_uid, (time, event_uid), {_EV}) AS ev,
  {_first("console")} AS ev_console,
  {_first("mfa")} AS ev_mfa,
  {_first("webid IS NOT NULL")} AS ev_webid,
  {_first("src_id IS NOT NULL")} AS ev_src_id,
  {_first("ec2")} AS ev_ec2,
  {_first("actor_type = 'AWSService'")} AS ev_service,
  {_first("actor_type = 'SAMLUser'")} AS ev_saml,
  {_first(_SSO)} AS ev_sso,
  min(webid) FILTER (WHERE webid IS NOT NULL) AS webid,
  min(src_id) FILTER (WHERE src_id IS NOT NULL) AS src_id,
  min(regexp_extract(actor_uid, '/(i-[0-9a-f]{{8,17}})$', 1)) FILTER (WHERE ec2) AS instance,
  min(regexp_extract(actor_uid, ':assumed-role/AWSReservedSSO_[^/]+/([^/]+)$', 1))
    FILTER (WHERE {_SSO}) AS sso_user,
  mode(actor_uid ORDER BY actor_uid) AS actor_uid,
  mode(actor_name ORDER BY actor_name) AS actor_name,
  mode(actor_type ORDER BY actor_type) AS actor_type,
  list(DISTINCT ua ORDER BY ua) FILTER (WHERE ua IS NOT NULL) AS uas,
  {_first("ua IN ('browser', 'console')")} AS ev_browser,
  {_first("ua IN ('lambda', 'ecs-task')")} AS ev_runtime,
  min(ua) FILTER (WHERE ua IN ('lambda', 'ecs-task')) AS runtime
FROM f GROUP BY credential_id
"""

# Per credential: the CloudTrail call that issued it (federation, service role delivery). The
# compressed ``raw`` column is read only for the issuing events (a rowid semi-join the scan
# applies: at 1M events, 12k issue events, 0.6 -> 0.3 CPU-s), and each record is parsed once
# for all paths (one multi-path ``json_extract_string``: 0.13 -> 0.02 CPU-s); in a full derive
# its fields come from ``_kt_ct_raw`` (``/*raw*/``), read with the sampled records.
_CT_ISSUE = """
CREATE OR REPLACE TEMP TABLE _kt_cti AS
WITH i AS (
  SELECT i.credential_id, i.event_uid FROM _kt_issue i
  WHERE i.src_source = 'cloudtrail' /*scope*/
), e AS (
  SELECT event_uid, action, actor_type, src_ip
  FROM events WHERE rowid IN (SELECT rowid FROM events
                              WHERE event_uid IN (SELECT event_uid FROM i) AND action IS NOT NULL)
), r AS (
  /*raw*/
)
SELECT i.credential_id, i.event_uid, e.action, e.actor_type AS by_type,
       lower(coalesce(r.j[5], CASE WHEN e.actor_type = 'AWSService' THEN e.src_ip END))
         AS by_service,
       coalesce(r.j[6], r.j[7]) AS provider, r.j[8] AS wi_sub, coalesce(r.j[9], r.j[10]) AS fed_user
FROM i JOIN e ON e.event_uid = i.event_uid LEFT JOIN r ON r.event_uid = i.event_uid
"""


def _candidates_sql(facts: str) -> str:
    """Every rule's candidate decisions for credentials, one row per (credential, rule), over the
    ``credential_facts`` rows in ``facts`` (the table, or a query of some of its rows: read where
    they are, not copied)."""
    svc_case = " ".join(f"WHEN by_service = {_lit(s)} THEN {_lit(f)}" for s, f in WORKLOAD_SERVICES)
    wi_family = _family("coalesce(wi_sub, '') || ' ' || coalesce(provider, '')")
    v_family = _family("coalesce(sub, '') || ' ' || coalesce(meta, '')")
    wmeth = ", ".join(_lit(m) for m in WORKLOAD_AUTH_METHODS)
    pmeth = ", ".join(_lit(m) for m in PERSON_AUTH_METHODS)
    return rf"""
CREATE OR REPLACE TEMP TABLE _kt_cls_cand AS
WITH inv_ident AS (
  -- identities the inventory declares for an agent: a console session of one is a person using an
  -- agent's identity, and the person's name is not the identity's name
  SELECT DISTINCT unnest(identities) AS ident FROM inventory_agents
), ct AS (
  SELECT f.*,
         f.actor_uid IN (SELECT ident FROM inv_ident)
         OR nullif(regexp_extract(f.actor_uid, ':assumed-role/([^/]+)/', 1), '') IN (
              SELECT regexp_extract(ident, ':role/(.*/)?([^/]+)$', 2) FROM inv_ident) AS declared
  FROM {facts} f
), vl AS (
  -- an e-mail in the claims or as the login's user claim (``oidc-<email>``) is a person's
  SELECT l.* REPLACE (coalesce(nullif(l.email, ''), CASE WHEN l.human_id LIKE '%@%' THEN l.human_id
      END) AS email),
         {v_family} AS fam
  FROM _kt_vault_login l
)
-- 0: console sessions
SELECT credential_id, 'person' AS class, 'console' AS detail,
       CASE WHEN sso_user IS NOT NULL THEN sso_user WHEN src_id IS NOT NULL THEN src_id
            WHEN declared THEN NULL
            WHEN actor_type = 'AssumedRole' THEN regexp_extract(actor_uid, '/([^/]+)$', 1)
            WHEN actor_type = 'IAMUser' THEN actor_name END AS person,
       'AWS console session (ConsoleLogin, SwitchRole or sessionCredentialFromConsole)'
         || CASE WHEN ev_mfa IS NOT NULL THEN ', signed in with MFA' ELSE '' END
         || CASE WHEN ev_browser IS NOT NULL THEN ', browser user agent' ELSE '' END
         || CASE WHEN declared THEN '; the identity is declared for an agent: a person used it'
             ELSE '' END
         AS reason, 'strong' AS confidence, ev_console AS evidence, NULL::JSON AS attrs, 0 AS prio
FROM ct WHERE ev_console IS NOT NULL
UNION ALL
-- 1: agents named by their own log, Vault metadata or the inventory
SELECT dst, 'agent', 'agent:' || src, NULL,
       'agent ' || src || ': ' || reason, confidence, evidence[1:{_EV}],
       to_json({{'agent': src}}), CASE WHEN confidence = 'inferred' THEN 3 ELSE 1 END
FROM links WHERE kind = 'USES'
UNION ALL
SELECT credential_id, 'aws-service', 'aws-service', NULL,
       'CloudTrail userIdentity type AWSService: the service acted itself', 'proven', ev_service,
           NULL, 1
FROM ct WHERE ev_service IS NOT NULL
UNION ALL
SELECT credential_id, 'person', 'identity-center', sso_user,
       'IAM Identity Center permission-set role (AWSReservedSSO_*) session named after the '
         || 'signed-in user',
       'strong', ev_sso, NULL, 1
FROM ct WHERE ev_sso IS NOT NULL
UNION ALL
-- 2: Vault logins
SELECT credential_id,
       CASE WHEN fam IS NOT NULL THEN 'workload'
            WHEN email LIKE '%@%' THEN 'person'
            WHEN mt IN ({wmeth}) THEN 'workload'
            WHEN mt IN ({pmeth}) OR mt = 'oidc' THEN 'person'
            ELSE 'unknown' END,
       coalesce(fam, 'vault-' || coalesce(mt, 'login')),
       CASE WHEN fam IS NULL AND (email LIKE '%@%' OR mt IN ({pmeth}) OR mt = 'oidc') THEN human_id
           END,
       CASE WHEN fam IS NOT NULL THEN 'Vault ' || coalesce(mt, '') ||
           ' login whose subject/claims are a '
                 || fam || ' workload identity (' || left(coalesce(sub, ''), 120) || ')'
            WHEN email LIKE '%@%' THEN 'Vault login whose claims carry a person''s e-mail (' ||
                email || ')'
            WHEN mt IN ({wmeth}) THEN 'Vault ' || mt || ' login: a machine auth method'
            WHEN mt IN ({pmeth}) THEN 'Vault ' || mt || ' login: an auth method for people'
            WHEN mt = 'oidc' THEN 'Vault OIDC (browser) login without workload claims'
            ELSE 'Vault ' || coalesce(mt, '') ||
                ' login: claims name neither a person nor a known workload' END,
       CASE WHEN fam IS NOT NULL OR email LIKE '%@%' OR mt IN ({wmeth}) OR mt IN ({pmeth}) THEN
           'strong'
            ELSE 'inferred' END,
       [event_uid], to_json({{'mount': mount, 'mount_type': mt, 'role': role}}), 2
FROM vl
UNION ALL
-- 2: federation and service delivery at issue time
SELECT credential_id,
       CASE WHEN action = 'sts:AssumeRoleWithSAML' THEN 'person'
            WHEN action = 'sts:AssumeRoleWithWebIdentity' AND ({wi_family} IS NOT NULL
                 OR contains(coalesce(provider, ''), 'oidc.eks.')) THEN 'workload'
            WHEN action = 'sts:AssumeRoleWithWebIdentity' THEN 'person'
            WHEN {f"CASE {svc_case} END"} IS NOT NULL THEN 'workload'
            ELSE 'aws-service' END,
       CASE WHEN action = 'sts:AssumeRoleWithSAML' THEN 'saml'
            WHEN contains(coalesce(provider, ''), 'oidc.eks.') THEN 'kubernetes'
            WHEN action = 'sts:AssumeRoleWithWebIdentity' THEN coalesce({wi_family}, 'web-identity')
            ELSE coalesce({f"CASE {svc_case} END"}, by_service) END,
       CASE WHEN action = 'sts:AssumeRoleWithSAML' THEN fed_user END,
       CASE WHEN action = 'sts:AssumeRoleWithSAML' THEN
           'issued by AssumeRoleWithSAML: a person signed in '
                 || 'through a SAML identity provider'
            WHEN action = 'sts:AssumeRoleWithWebIdentity' THEN
                'issued by AssumeRoleWithWebIdentity from '
                 || coalesce(provider, 'an OIDC provider') || coalesce(' for ' || wi_sub, '')
            ELSE 'issued to the AWS service ' || by_service || ' (it assumed the role)' END,
       CASE WHEN action = 'sts:AssumeRoleWithWebIdentity' AND {wi_family} IS NULL
                 AND NOT contains(coalesce(provider, ''), 'oidc.eks.') THEN 'inferred' ELSE
                     'strong' END,
       [event_uid], to_json({{'provider': provider, 'subject': wi_sub}}), 2
FROM _kt_cti
WHERE action IN ('sts:AssumeRoleWithSAML', 'sts:AssumeRoleWithWebIdentity')
   OR (by_type = 'AWSService' AND by_service IS NOT NULL)
UNION ALL
-- 2: what the credential's own events say
SELECT credential_id,
       CASE WHEN {_family("coalesce(webid, '')")} IS NOT NULL OR contains(webid, 'oidc.eks.') THEN
           'workload'
            ELSE 'person' END,
       CASE WHEN contains(webid, 'oidc.eks.') THEN 'kubernetes'
            ELSE coalesce({_family("coalesce(webid, '')")}, 'web-identity') END, NULL,
       'web-identity session from ' || webid,
       CASE WHEN {_family("coalesce(webid, '')")} IS NOT NULL OR contains(webid, 'oidc.eks.') THEN
           'strong'
            ELSE 'inferred' END, ev_webid, to_json({{'provider': webid}}), 2
FROM ct WHERE webid IS NOT NULL
UNION ALL
SELECT credential_id, 'workload', 'ec2-instance', NULL,
       'EC2 instance-profile session' || coalesce(' of instance ' || instance, '')
         || ' (session named after the instance, or ec2RoleDelivery)', 'strong', ev_ec2,
       to_json({{'instance': instance}}), 2
FROM ct WHERE ev_ec2 IS NOT NULL
UNION ALL
SELECT credential_id, 'person', 'saml', actor_name, 'CloudTrail userIdentity type SAMLUser',
    'strong', ev_saml,
       NULL, 2
FROM ct WHERE ev_saml IS NOT NULL
UNION ALL
SELECT credential_id, 'person', 'mfa', src_id,
       'the session was authenticated with MFA (sessionContext.attributes.mfaAuthenticated)',
           'strong', ev_mfa,
       NULL, 2
FROM ct WHERE ev_mfa IS NOT NULL
UNION ALL
SELECT credential_id, 'person', 'source-identity', src_id,
       'sourceIdentity ' || src_id || ' names who assumed the role',
       CASE WHEN src_id LIKE '%@%' THEN 'strong' ELSE 'inferred' END, ev_src_id, NULL, 2
FROM ct WHERE src_id IS NOT NULL
UNION ALL
SELECT credential_id, 'workload', runtime, NULL,
       'user agent of the ' || runtime || ' runtime (exec-env)', 'strong', ev_runtime, NULL, 2
FROM ct WHERE ev_runtime IS NOT NULL
UNION ALL
-- 4: user-agent families alone
SELECT credential_id,
       CASE WHEN ev_browser IS NOT NULL THEN 'person' ELSE 'workload' END,
       CASE WHEN ev_browser IS NOT NULL THEN 'browser' ELSE 'sdk' END, NULL,
       CASE WHEN ev_browser IS NOT NULL THEN 'browser or console user agent'
            ELSE 'only SDK / Terraform user agents (' || array_to_string(uas, ', ') ||
                '), never a browser' END,
       'inferred', CASE WHEN ev_browser IS NOT NULL THEN ev_browser ELSE ev END, NULL, 4
FROM ct WHERE ev_browser IS NOT NULL
   OR (len(uas) > 0 AND list_has_all(['sdk', 'terraform', 'aws-service'], uas))
"""


_PICK = """
CREATE OR REPLACE TEMP TABLE _kt_cls_best AS
SELECT credential_id, arg_min(struct_pack(class, detail, person, reason, confidence, evidence,
    attrs),
                              (prio, CASE confidence WHEN 'proven' THEN 0 WHEN 'strong' THEN 1 ELSE
                                  2 END,
                               class, detail)) AS d,
       min(prio) AS prio
FROM _kt_cls_cand WHERE evidence IS NOT NULL AND len(evidence) > 0 GROUP BY credential_id
"""

# 5: a temporary credential minted by a classified one holds its class.
_INHERIT = """
CREATE OR REPLACE TEMP TABLE _kt_cls_inh AS
WITH RECURSIVE m AS (
  SELECT DISTINCT t.src, t.dst FROM _kt_mint t JOIN credentials c ON c.credential_id = t.dst
  WHERE coalesce(c.kind, '') <> 'aws-access-key' OR t.src_source = 'vault'
), inh(cred, root) AS (
  SELECT m.dst, m.src FROM m JOIN _kt_cls_best b ON b.credential_id = m.src
  WHERE m.dst NOT IN (SELECT credential_id FROM _kt_cls_best WHERE d.confidence <> 'inferred')
    AND b.d.class <> 'unknown' AND b.d.confidence <> 'inferred'
  UNION
  SELECT m.dst, inh.root FROM inh JOIN m ON m.src = inh.cred
  WHERE m.dst NOT IN (SELECT credential_id FROM _kt_cls_best WHERE d.confidence <> 'inferred')
)
SELECT inh.cred AS credential_id, arg_min(struct_pack(class := b.d.class, detail := b.d.detail,
    person := b.d.person,
         reason := 'minted from ' || b.credential_id || ', ' || b.d.class || ': ' || b.d.reason,
         confidence := 'strong',
         evidence := b.d.evidence, attrs := to_json({'inherited_from': b.credential_id})),
       (b.prio, b.credential_id)) AS d, 5 AS prio
FROM inh JOIN _kt_cls_best b ON b.credential_id = inh.root
GROUP BY inh.cred
"""


def _scoped(sql: str, column: str, scope: str) -> str:
    return sql.replace("/*scope*/", f"AND {column} IN (SELECT credential_id FROM {scope})")


def refresh_facts(con: duckdb.DuckDBPyConnection, only: str = "", since: int = 0) -> str:
    """Rebuild the ``credential_facts`` rows of every credential, or (``only``: a table of
    ``credential_id``) of those only.

    Returns the temp table of ``raw`` fields a full refresh read (``_kt_ct_raw``: the sampled
    records and the CloudTrail issuing records in one scan) for :func:`classify_credentials`'s
    ``raw``, or ``""`` (``only``: nothing read for it).

    A row reads only its credential's CloudTrail events, which an ingest adds to and never
    changes (de-duplication keeps the old copy), so a second ingest refreshes the credentials its
    new CloudTrail events signed and reads every other row as stored: the facts of a long-lived
    key are not gathered again from its old events each time a Vault or agent log names it
    (:mod:`keytrail.graph.derive_incr`).

    ``since``: the rows cover the events of files up to it. A credential of ``only`` without a
    row then has no event in those files, so its facts read only the later files' events (the
    scan skips the older row groups: ``events`` is stored in file order); only the credentials
    with a row (keys used before and again) read the whole table. (0: every file.)
    """
    if not only:
        con.execute("DELETE FROM credential_facts")
        con.execute(_CT_RAW)
        con.execute(_CT_FACTS.replace("/*raw*/", "SELECT * FROM _kt_ct_raw WHERE sampled"))
        return "_kt_ct_raw"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kt_facts_seen AS SELECT credential_id FROM credential_facts "
        f"WHERE credential_id IN (SELECT credential_id FROM {only})"
    )
    con.execute(
        "DELETE FROM credential_facts WHERE credential_id IN (SELECT * FROM _kt_facts_seen)"
    )
    sampled = _CT_FACTS.replace("/*raw*/", _raw_of("SELECT event_uid FROM sampled", "/*rows*/"))
    if con.execute("SELECT count(*) FROM _kt_facts_seen").fetchone() != (0,):
        con.execute(_scoped(sampled, "ev.credential_id", "_kt_facts_seen").replace("/*rows*/", ""))
    first_seen = f"SELECT credential_id FROM {only} EXCEPT SELECT credential_id FROM _kt_facts_seen"
    con.execute(
        sampled.replace(
            "/*scope*/", f"AND ev.credential_id IN ({first_seen}) AND ev.file_id > {int(since)}"
        ).replace("/*rows*/", f" AND file_id > {int(since)}")
    )
    con.execute("DROP TABLE _kt_facts_seen")
    return ""


def classify_credentials(
    con: duckdb.DuckDBPyConnection, scope: str = "", write: str = "", raw: str = ""
) -> None:
    """One decision per credential (needs ``credentials``, ``credential_facts`` (see
    :func:`refresh_facts`), ``_kt_issue``, ``_kt_vault_login``, ``_kt_mint`` and the USES links).

    ``write`` (a table of ``credential_id``) decides again only those credentials (with their
    descendants: a decision is the credential's own facts or one inherited down the MINTED
    edges); ``scope``, when given, reads the facts of only its credentials (``write`` and every
    ancestor of those) (:mod:`keytrail.graph.derive_incr`). ``raw``: the table a full
    :func:`refresh_facts` returned (its issuing records' fields, read with the sampled ones;
    dropped here); without it a full decision reads them itself."""
    if write:
        con.execute(
            f"DELETE FROM principal_classes WHERE subject_kind = 'credential' "
            f"AND subject IN (SELECT credential_id FROM {write})"
        )
    else:
        con.execute("DELETE FROM principal_classes")
    if scope:
        facts = (
            "(SELECT * FROM credential_facts WHERE credential_id IN "
            f"(SELECT credential_id FROM {scope}))"
        )
        issue = _scoped(_CT_ISSUE, "i.credential_id", scope)
        con.execute(issue.replace("/*raw*/", _raw_of("SELECT event_uid FROM i")))
    else:
        facts = "credential_facts"
        if not raw:
            con.execute(_CT_RAW)
            raw = "_kt_ct_raw"
        con.execute(_CT_ISSUE.replace("/*raw*/", f"SELECT event_uid, j FROM {raw}"))
    con.execute(_candidates_sql(facts))
    if scope:
        con.execute(
            f"DELETE FROM _kt_cls_cand WHERE credential_id NOT IN "
            f"(SELECT credential_id FROM {scope})"
        )
    con.execute(_PICK)
    con.execute(_INHERIT)
    # an inherited strong decision replaces an inferred one (an agent linked by timing only)
    con.execute(
        "DELETE FROM _kt_cls_best WHERE credential_id IN (SELECT credential_id FROM _kt_cls_inh)"
    )
    con.execute("INSERT INTO _kt_cls_best SELECT * FROM _kt_cls_inh")
    con.execute(
        _INSERT
        + """
        SELECT 'credential', c.credential_id, coalesce(b.d.class, 'unknown'), b.d.detail,
            b.d.person,
               coalesce(b.d.reason, 'no evidence says whether a person or a workload holds it'),
               coalesce(b.d.confidence, 'inferred'),
               coalesce(b.d.evidence, CASE WHEN c.issued_by_event IS NOT NULL THEN
                   [c.issued_by_event] END, []),
               b.d.attrs
        FROM credentials c LEFT JOIN _kt_cls_best b ON b.credential_id = c.credential_id"""
        + (f" WHERE c.credential_id IN (SELECT credential_id FROM {write})" if write else "")
    )
    for t in (raw or "_kt_ct_raw", "_kt_cti", "_kt_cls_cand", "_kt_cls_best", "_kt_cls_inh"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


def classify_principals(con: duckdb.DuckDBPyConnection) -> None:
    """One decision per principal (after ``principals`` and the credential decisions)."""
    con.execute(
        _INSERT
        + r"""
        WITH inv AS (
          SELECT agent_id, ident, 'inventory:' || coalesce(file_id, 0) || ':' ||
              coalesce(record_no, 0) AS ref
          FROM (SELECT agent_id, unnest(identities) AS ident, file_id, record_no FROM
              inventory_agents)
          WHERE ident LIKE 'arn:%'
        ), cand AS (
          SELECT p.principal_id AS id, 'agent' AS class, 'agent:' || inv.agent_id AS detail, NULL
              AS person,
                 'the inventory declares ' || inv.ident || ' for agent ' || inv.agent_id AS reason,
                 'strong' AS confidence, [inv.ref] AS evidence, 0 AS prio
          FROM principals p JOIN inv ON p.principal_id = inv.ident
            OR (p.kind IN ('assumed-role', 'iam-role') AND regexp_matches(inv.ident, ':role/')
                AND split_part(p.principal_id, ':', 5) = split_part(inv.ident, ':', 5)
                AND regexp_extract(inv.ident, '/([^/]+)$', 1) = CASE p.kind
                      WHEN 'assumed-role' THEN regexp_extract(p.principal_id,
                          ':assumed-role/([^/]+)/', 1)
                      ELSE regexp_extract(p.principal_id, '/([^/]+)$', 1) END)
          UNION ALL
          SELECT principal_id, CASE kind WHEN 'human' THEN 'person' ELSE 'agent' END, kind, CASE
              kind WHEN 'human'
                 THEN principal_id END, CASE kind WHEN 'agent' THEN 'an ' ELSE 'a ' END || kind ||
                     ' node of the graph (named by agent logs, logins or '
                 || 'the inventory)', 'proven', [], 0
          FROM principals WHERE kind IN ('human', 'agent')
          UNION ALL
          SELECT actor_uid, 'person', 'console', NULL, 'signed in to the AWS console (' || action
              || ')', 'strong',
                 list(event_uid ORDER BY time, event_uid)[1:5], 1
          FROM events WHERE source = 'cloudtrail' AND action IN ('signin:ConsoleLogin',
              'signin:SwitchRole')
            AND outcome = 'success' AND actor_uid IS NOT NULL GROUP BY actor_uid, action
          UNION ALL
          SELECT actor_uid, 'aws-service', 'aws-service', NULL,
              'CloudTrail userIdentity type AWSService', 'proven',
                 list(event_uid ORDER BY time, event_uid)[1:5], 1
          FROM events WHERE source = 'cloudtrail' AND actor_type = 'AWSService' AND actor_uid IS
              NOT NULL
          GROUP BY actor_uid
          UNION ALL
          SELECT l.dst, c.class, c.detail, c.person, 'its credential ' || c.subject || ': ' ||
              c.reason,
                 c.confidence, c.evidence, 2
          FROM links l JOIN principal_classes c ON c.subject_kind = 'credential' AND c.subject =
              l.src
          WHERE l.kind = 'AUTHENTICATES_AS' AND c.class <> 'unknown'
        ), best AS (
          SELECT id, arg_min(struct_pack(class, detail, person, reason, confidence, evidence),
                             (prio, CASE confidence WHEN 'proven' THEN 0 WHEN 'strong' THEN 1 ELSE
                                 2 END,
                              class, detail, reason)) AS d
          FROM cand GROUP BY id
        )
        SELECT 'principal', p.principal_id, coalesce(b.d.class, 'unknown'), b.d.detail, b.d.person,
               coalesce(b.d.reason, 'no evidence says whether a person or a workload acts as it'),
               coalesce(b.d.confidence, 'inferred'), coalesce(b.d.evidence, []), NULL
        FROM principals p LEFT JOIN best b ON b.id = p.principal_id"""
    )
