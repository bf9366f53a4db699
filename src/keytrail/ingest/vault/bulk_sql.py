"""The SQL of the bulk Vault reader (:mod:`keytrail.ingest.vault.bulk`): screen, parse, pair, shape.

DuckDB parses each JSON line once (``json_extract`` with a list of paths) and computes, per line,
every column :func:`keytrail.ingest.vault.rows.build` would, with the same rules (the Python
names are in the comments). A line is *ok* (read here) only when DuckDB's JSON reader and orjson
(the Python path's parser) are known to read it the same way; everything else is sent to the
Python path, which is the reference. The JSON readers disagree on:

- numbers: orjson reads a 20-digit integer as a float, DuckDB keeps it; float and exponent
  spellings are re-serialised differently; DuckDB accepts ``NaN``, ``-inf``, ``Infinity`` and ``1e999``; so a line with
  a number of 16+ digits, a fraction or exponent, or a bare ``nan``/``inf`` token (any case) after ``":``, ``[``
  or ``,`` is not ok (inside a string such text only sends the line to Python);
- trailing commas (DuckDB accepts them): a ``,`` followed by ``]`` or ``}`` is not ok;
- duplicate keys (DuckDB reads the first, Python keeps the last): a line with a duplicate key
  in any object the row reads is not ok;
- ``\\u`` escapes (lone surrogates, NUL, non-ASCII re-encoding), non-ASCII bytes (invalid UTF-8),
  nesting beyond orjson's depth limit: not ok (the first two are screened in Python);
- times: only Vault's own ``...Z`` form with a valid date is converted here.

The screen is deliberately coarse (a ``NaN`` inside a string sends its line to Python too): a
false alarm costs a few microseconds, a miss would change a case.
"""

from __future__ import annotations

#: Values read from every line, one parse (``j``; ``J[name]`` is the SQL of one).
PATHS = (
    "time",
    "type",
    "error",
    "forwarded_from",
    "auth.accessor",
    "auth.display_name",
    "auth.entity_id",
    "auth.metadata",
    "auth.policies",
    "auth.token_policies",
    "auth.identity_policies",
    "auth.token_type",
    "auth.token_ttl",
    "auth.token_issue_time",
    "auth.remaining_uses",
    "auth.entity_created",
    "auth.policy_results.allowed",
    "auth.metadata.email",
    "auth.metadata.username",
    "auth.metadata.agent_id",
    'auth.metadata."agent-id"',
    "auth.metadata.agent",
    "request.id",
    "request.operation",
    "request.path",
    "request.namespace.id",
    "request.namespace.path",
    "request.mount_type",
    "request.mount_point",
    "request.mount_accessor",
    "request.mount_class",
    "request.client_token_accessor",
    "request.remote_address",
    'request.headers."user-agent"',
    "request.client_id",
    "request.request_uri",
    "request.remote_port",
    "request.data.accessor",
    "response.mount_type",
    "response.mount_point",
    "response.mount_accessor",
    "response.mount_class",
    "response.secret.lease_id",
    "response.data.keys",
    "response.auth.accessor",
    "response.auth.display_name",
    "response.auth.entity_id",
    "response.auth.policies",
    "response.auth.token_type",
    "response.auth.token_ttl",
    "response.auth.metadata",
    "response.auth.num_uses",
    "response.wrap_info.accessor",
    "response.wrap_info.wrapped_accessor",
    "response.wrap_info.creation_path",
    "response.wrap_info.ttl",
)
J = {p: f"j[{i}]" for i, p in enumerate(PATHS, 1)}
#: Objects whose keys are read (one more parse: ``ks``): duplicate keys anywhere the row reads
#: send the line to Python; ``data`` keys are listed; an object's presence is a non-empty list.
OBJECTS = (
    "",
    "auth",
    "auth.metadata",
    "auth.policy_results",
    "request",
    "request.namespace",
    "request.headers",
    "request.data",
    "response",
    "response.auth",
    "response.auth.metadata",
    "response.wrap_info",
    "response.data",
    "response.secret",
)
K = {p: f"ks[{i}]" for i, p in enumerate(OBJECTS, 1)}

MACROS = r"""
CREATE OR REPLACE TEMP MACRO kt_s(j) AS
  CASE WHEN starts_with(j, '"') AND j <> '""'
       THEN CASE WHEN contains(j, '\') THEN json_extract_string(j, '$') ELSE j[2:-2] END END;
CREATE OR REPLACE TEMP MACRO kt_n(j) AS
  CASE WHEN regexp_full_match(j, '-?[0-9]+') THEN CAST(j AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO kt_any(j) AS
  CASE WHEN j NOT IN ('null', '""', '[]', '{}') THEN j END;
CREATE OR REPLACE TEMP MACRO kt_obj(j) AS
  CASE WHEN starts_with(j, '{') AND j <> '{}' THEN j END;
CREATE OR REPLACE TEMP MACRO kt_nested(j) AS coalesce(contains(j[2:], '{'), false);
CREATE OR REPLACE TEMP MACRO kt_m(k, v) AS '"' || k || '":' || v;
CREATE OR REPLACE TEMP MACRO kt_str(v) AS to_json(v::VARCHAR)::VARCHAR;
CREATE OR REPLACE TEMP MACRO kt_js(j) AS CASE WHEN starts_with(j, '"') AND j <> '""' THEN j END;
CREATE OR REPLACE TEMP MACRO kt_rtype(path, mt) AS
  CASE WHEN split_part(path, '/', 1) = 'auth' THEN 'vault-auth'
       WHEN split_part(path, '/', 1) = 'sys' THEN 'vault-sys'
       WHEN split_part(path, '/', 1) = 'identity' THEN 'vault-identity'
       WHEN regexp_matches(path, '/(?:creds|sts|static-creds)/') THEN 'vault-creds'
       WHEN lower(coalesce(mt, '')) IN ('kv', 'secret', 'generic', 'cubbyhole')
         OR (coalesce(mt, '') = '' AND regexp_matches(split_part(path, '/', 1), '^(kv|secret|cubbyhole)'))
         THEN 'vault-secret'
       WHEN coalesce(mt, '') <> '' THEN 'vault-' || lower(mt)
       WHEN regexp_matches(split_part(path, '/', 1), '^(?:transit|pki|totp|database|ssh|aws|gcp|azure|consul|nomad)')
         THEN 'vault-' || regexp_extract(split_part(path, '/', 1),
                '^(transit|pki|totp|database|ssh|aws|gcp|azure|consul|nomad)', 1)
       ELSE 'vault-path'
  END;
"""

#: Vault's own time form, strictly (what ``datetime.fromisoformat`` reads the same way).
_TIME = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?Z$"
_ADDR = r"^(?:\[([0-9A-Fa-f:.]+)\]|([0-9]{1,3}(?:\.[0-9]{1,3}){3})):([0-9]+)\n?$"
#: Number tokens the readers disagree on, trailing commas (see the module docstring).
_NUMBERS = (
    r"(?:\"[ \t\r]*:|[\[,])[ \t\r]*-?(?:[0-9]+[.eE]|[0-9]{16}|[Nn][Aa]|[Ii][Nn])|,[ \t\r]*[\]}]"
)


def _paths() -> str:
    return "[" + ", ".join("'$." + p.replace("'", "''") + "'" for p in PATHS) + "]"


def _objects() -> str:
    return "[" + ", ".join("'$" + ("." if p else "") + p + "'" for p in OBJECTS) + "]"


#: One window of lines (``_kt_vw``: ln, off, line) -> typed rows of ``_kt_vl``.
WINDOW = f"""
INSERT INTO _kt_vl
WITH s AS (
  SELECT ln, off, line,
         starts_with(line, '{{') AND ends_with(line, '}}' || chr(10)) AND NOT contains(line, '\\u')
         AND NOT regexp_matches(line, '{_NUMBERS}')
         AND NOT (length(line) > 2000
                  AND length(line) - length(replace(replace(line, '{{', ''), '[', '')) > 1000)
         AND json_valid(line) AS ok0
  FROM _kt_vw),
x AS MATERIALIZED (
  SELECT ln, off, line, ok0,
         CASE WHEN ok0 THEN json_extract(line, {_paths()})::VARCHAR[] END AS j,
         CASE WHEN ok0 THEN json_keys(line, {_objects()}) END AS ks
  FROM s),
y AS (
  SELECT ln, off, line, ok0, j, ks,
         kt_s({J["time"]}) AS time_raw, kt_s({J["type"]}) AS typ, kt_s({J["request.id"]}) AS rid,
         kt_s({J["request.operation"]}) AS op0, kt_s({J["request.path"]}) AS path, kt_s({J["request.namespace.path"]}) AS ns_path,
         coalesce(kt_s({J["request.mount_type"]}), kt_s({J["response.mount_type"]})) AS mount_type,
         kt_s({J["auth.display_name"]}) AS display, kt_s({J["auth.entity_id"]}) AS entity,
         coalesce(kt_s({J["auth.accessor"]}), kt_s({J["request.client_token_accessor"]})) AS caller, kt_s({J["request.remote_address"]}) AS addr
  FROM x)
SELECT ln, off, line,
  ok0 AND typ IN ('request', 'response') AND rid IS NOT NULL
  AND NOT list_contains(ks[1], '@message') AND NOT list_contains(ks[1], '@level')
  AND NOT list_bool_or(list_transform(ks, lambda l: coalesce(len(l) <> list_unique(l), false)))
  AND NOT (kt_nested({J["auth.metadata"]}) OR kt_nested({J["response.auth.metadata"]}) OR contains(coalesce({J["auth.policies"]}, ''), '{{')
           OR contains(coalesce({J["auth.token_policies"]}, ''), '{{') OR contains(coalesce({J["auth.identity_policies"]}, ''), '{{')
           OR contains(coalesce({J["response.auth.policies"]}, ''), '{{') OR contains(coalesce({J["auth.entity_created"]}, ''), '{{')
           OR contains(coalesce({J["auth.policy_results.allowed"]}, ''), '{{'))
  AND (time_raw IS NULL OR (regexp_matches(time_raw, '{_TIME}')
                            AND try_cast(left(time_raw, 19) AS TIMESTAMP) IS NOT NULL
                            AND left(time_raw, 4) <> '0000'))
  AND coalesce(length(regexp_extract(addr, '{_ADDR}', 3)) <= 18, true) AS ok,
  typ, rid, time_raw,
  try_cast(left(time_raw, 19) AS TIMESTAMP) + to_microseconds(
    CAST(rpad(left(coalesce(nullif(regexp_extract(time_raw, '\\.([0-9]+)', 1), ''), '0'), 6), 6, '0')
         AS BIGINT)) AS time,
  kt_s({J["error"]}) AS err, kt_s({J["forwarded_from"]}) AS fwd,
  {J["auth.policy_results.allowed"]} = 'false' AS denied_by_policy,
  coalesce(op0, 'unknown') AS op, path, ns_path, mount_type, display, entity, caller,
  CASE WHEN addr IS NULL THEN NULL
       WHEN regexp_matches(addr, '{_ADDR}')
         THEN coalesce(nullif(regexp_extract(addr, '{_ADDR}', 1), ''),
                       regexp_extract(addr, '{_ADDR}', 2))
       ELSE addr END AS src_ip,
  CASE WHEN starts_with({J['request.headers."user-agent"']}, '[') THEN array_to_string(list_transform(list_filter(
         json_extract({J['request.headers."user-agent"']}, '$[*]')::VARCHAR[],
         lambda e: starts_with(e, '"') AND NOT starts_with(e, '"hmac-sha256:')),
         lambda e: json_extract_string(e, '$')), ', ') END AS user_agent,
  coalesce(kt_s({J["auth.metadata.agent_id"]}), kt_s({J['auth.metadata."agent-id"']}), kt_s({J["auth.metadata.agent"]})) AS agent_id,
  CASE WHEN contains(kt_s({J["auth.metadata.email"]}), '@') THEN kt_s({J["auth.metadata.email"]})
       WHEN starts_with(display, 'oidc-') AND length(display) > 5 THEN NULL
       WHEN starts_with(display, 'userpass-') AND length(display) > 9
         THEN coalesce(kt_s({J["auth.metadata.username"]}), display[10:])
       WHEN starts_with(display, 'ldap-') AND length(display) > 5
         THEN coalesce(kt_s({J["auth.metadata.username"]}), display[6:])
       WHEN starts_with(display, 'okta-') AND length(display) > 5
         THEN coalesce(kt_s({J["auth.metadata.username"]}), display[6:])
       WHEN starts_with(display, 'radius-') AND length(display) > 7
         THEN coalesce(kt_s({J["auth.metadata.username"]}), display[8:])
  END AS human0,
  CASE WHEN NOT coalesce(contains(kt_s({J["auth.metadata.email"]}), '@'), false)
        AND starts_with(display, 'oidc-') AND length(display) > 5 THEN display[6:] END AS oidc,
  -- details from namespace_id to remote_port (rows.build's order)
  nullif(concat_ws(',',
    kt_m('namespace_id', kt_js({J["request.namespace.id"]})),
    kt_m('mount_type',
         coalesce(kt_js({J["request.mount_type"]}), kt_js({J["response.mount_type"]}))),
    kt_m('mount_point', coalesce(kt_js({J["request.mount_point"]}), kt_js({J["response.mount_point"]}))),
    kt_m('mount_accessor', coalesce(kt_js({J["request.mount_accessor"]}), kt_js({J["response.mount_accessor"]}))),
    kt_m('mount_class', coalesce(kt_js({J["request.mount_class"]}), kt_js({J["response.mount_class"]}))),
    kt_m('display_name', kt_js({J["auth.display_name"]})),
    kt_m('entity_id', kt_js({J["auth.entity_id"]})),
    kt_m('policies', kt_any({J["auth.policies"]})),
    kt_m('token_policies', kt_any({J["auth.token_policies"]})),
    kt_m('identity_policies', kt_any({J["auth.identity_policies"]})),
    kt_m('token_type', kt_js({J["auth.token_type"]})),
    kt_m('metadata', kt_obj({J["auth.metadata"]})),
    kt_m('token_ttl', kt_n({J["auth.token_ttl"]})::VARCHAR),
    kt_m('token_issue_time', kt_js({J["auth.token_issue_time"]})),
    kt_m('remaining_uses', kt_n({J["auth.remaining_uses"]})::VARCHAR),
    kt_m('entity_created', CASE WHEN {J["auth.entity_created"]} NOT IN ('false', '0', '""', '[]', '{{}}', 'null')
                                THEN {J["auth.entity_created"]} END),
    kt_m('policy_allowed', kt_any({J["auth.policy_results.allowed"]})),
    kt_m('client_token_accessor', kt_js({J["request.client_token_accessor"]})),
    kt_m('client_id', kt_js({J["request.client_id"]})),
    kt_m('request_uri', kt_js({J["request.request_uri"]})),
    kt_m('remote_port', coalesce(nullif(kt_n({J["request.remote_port"]}), 0),
         try_cast(nullif(regexp_extract(addr, '{_ADDR}', 3), '') AS BIGINT))::VARCHAR)
  ), '') AS d1,
  -- details from data_keys to listed_keys
  nullif(concat_ws(',',
    kt_m('data_keys', CASE WHEN len({K["request.data"]}) > 0
                           THEN to_json(list_sort({K["request.data"]}))::VARCHAR END),
    kt_m('response_data_keys', CASE WHEN len({K["response.data"]}) > 0
                                    THEN to_json(list_sort({K["response.data"]}))::VARCHAR END),
    kt_m('lease_id', kt_js({J["response.secret.lease_id"]})),
    kt_m('response_auth', CASE WHEN len({K["response.auth"]}) > 0 THEN '{{' || nullif(concat_ws(',',
      kt_m('accessor', kt_js({J["response.auth.accessor"]})),
      kt_m('display_name', kt_js({J["response.auth.display_name"]})),
      kt_m('entity_id', kt_js({J["response.auth.entity_id"]})),
      kt_m('policies', CASE WHEN {J["response.auth.policies"]} NOT IN ('null', '[]', '{{}}') THEN {J["response.auth.policies"]} END),
      kt_m('token_type', kt_js({J["response.auth.token_type"]})),
      kt_m('token_ttl', kt_n({J["response.auth.token_ttl"]})::VARCHAR),
      kt_m('metadata', kt_obj({J["response.auth.metadata"]})),
      kt_m('num_uses', kt_n({J["response.auth.num_uses"]})::VARCHAR)), '') || '}}' END),
    kt_m('wrap_info', CASE WHEN len({K["response.wrap_info"]}) > 0 THEN '{{' || nullif(concat_ws(',',
      kt_m('accessor', kt_js({J["response.wrap_info.accessor"]})),
      kt_m('wrapped_accessor', kt_js({J["response.wrap_info.wrapped_accessor"]})),
      kt_m('creation_path', kt_js({J["response.wrap_info.creation_path"]})),
      kt_m('ttl', kt_n({J["response.wrap_info.ttl"]})::VARCHAR)), '') || '}}' END),
    kt_m('revoked_accessor', kt_str(CASE WHEN path = 'auth/token/revoke-self' THEN caller
                                         WHEN path = 'auth/token/revoke-accessor'
                                           THEN kt_s({J["request.data.accessor"]}) END)),
    kt_m('listed_keys', CASE WHEN coalesce(op0, 'unknown') = 'list'
                             THEN CASE WHEN starts_with({J["response.data.keys"]}, '[')
                                       THEN json_array_length({J["response.data.keys"]})
                                       ELSE kt_n({J["response.data.keys"]}) END END::VARCHAR)
  ), '') AS d2,
  -- what rows.mint / engines.engine_issues may read something from
  typ = 'response' AND (kt_s({J["response.auth.accessor"]}) IS NOT NULL OR kt_s({J["response.secret.lease_id"]}) IS NOT NULL
    OR kt_s({J["response.wrap_info.accessor"]}) IS NOT NULL OR contains(coalesce(path, ''), '/creds/')
    OR contains(coalesce(path, ''), '/sts/') OR contains(coalesce(path, ''), 'secret-id')
    OR (path IS NOT NULL AND (mount_type IN ('pki', 'ssh', 'totp')
        OR (mount_type IS NULL AND regexp_matches(path, '^(pki|ssh|totp)'))))) AS mint
FROM y
"""

#: Staging table of each table the Python path writes in a bulk read (adapter ``_Writer``).
STAGED = {
    "events": "_kt_vs_events",
    "event_resources": "_kt_vs_resources",
    "credential_issues": "_kt_vs_issues",
}

#: The per-file table the windows fill.
TABLE = """
CREATE OR REPLACE TEMP TABLE _kt_vl (
  ln BIGINT, off BIGINT, line VARCHAR, ok BOOLEAN, typ VARCHAR, rid VARCHAR, time_raw VARCHAR,
  time TIMESTAMP, err VARCHAR, fwd VARCHAR, denied_by_policy BOOLEAN, op VARCHAR, path VARCHAR,
  ns_path VARCHAR, mount_type VARCHAR, display VARCHAR, entity VARCHAR, caller VARCHAR,
  src_ip VARCHAR, user_agent VARCHAR, agent_id VARCHAR, human0 VARCHAR, oidc VARCHAR,
  d1 VARCHAR, d2 VARCHAR, mint BOOLEAN);
CREATE OR REPLACE TEMP TABLE _kt_vpy (ln BIGINT, typ VARCHAR, rid VARCHAR);
"""

#: Request/response pairing over the whole file (the ok lines and the Python path's entries),
#: exactly the adapter's sequential rules: a response takes the first request of its id written
#: before it, if it is the first response of that id; other requests before the first response
#: are repeats, requests after it are late; a request never answered is its own event.
PAIRS = """
CREATE OR REPLACE TEMP TABLE _kt_vpair AS
WITH u AS (SELECT ln, typ, rid, false AS py FROM _kt_vl WHERE ok
           UNION ALL SELECT ln, typ, rid, true FROM _kt_vpy),
g AS (SELECT ln, typ, rid, py,
             min(ln) FILTER (WHERE typ = 'response') OVER (PARTITION BY rid) AS r1,
             min(ln) FILTER (WHERE typ = 'request') OVER (PARTITION BY rid) AS q1,
             arg_min(py, ln) FILTER (WHERE typ = 'request') OVER (PARTITION BY rid) AS q1_py
      FROM u)
SELECT 'vault:' || rid AS uid, ln AS main, py AS main_py,
       CASE WHEN typ = 'response' AND ln = r1 AND q1 < r1 THEN q1 END AS req,
       CASE WHEN typ = 'response' AND ln = r1 AND q1 < r1 THEN q1_py ELSE false END AS req_py,
       typ = 'response' AS answered,
       CASE WHEN typ = 'response' THEN 'event'
            WHEN r1 IS NULL AND ln = q1 THEN 'event'
            WHEN ln = q1 AND q1 < r1 THEN 'merged'
            WHEN r1 IS NULL OR ln < r1 THEN 'repeated'
            ELSE 'late' END AS role
FROM g
"""

#: Events (and their resources) of the pairs whose both sides are ok lines.
_PAIRED = """
FROM _kt_vpair p JOIN _kt_vl m ON m.ln = p.main
LEFT JOIN _kt_vl q ON q.ln = p.req
LEFT JOIN _kt_vwf wf ON wf.name = m.oidc
WHERE p.role = 'event' AND NOT p.main_py AND NOT p.req_py
"""

#: The events of those pairs (a temp table: ``events`` and ``event_resources`` are read off it).
EVENTS = f"""
CREATE OR REPLACE TEMP TABLE _kt_vev AS
SELECT ?::INTEGER AS file_id, p.uid AS event_uid, 'vault' AS source, ?::VARCHAR AS format, m.rid AS source_event_id,
  CASE WHEN q.time IS NOT NULL THEN q.time ELSE m.time END AS time,
  CASE WHEN q.time IS NOT NULL THEN q.time_raw ELSE m.time_raw END AS time_raw,
  'vault:' || m.op AS action, 'vault' AS service, m.op AS operation,
  CASE WHEN m.op IN ('read', 'list', 'help') THEN true
       WHEN m.op IN ('create', 'update', 'delete', 'patch', 'revoke', 'renew', 'rollback')
         THEN false END AS read_only,
  CASE WHEN coalesce(m.err, q.err) IS NOT NULL
         THEN CASE WHEN contains(lower(coalesce(m.err, q.err)), 'permission denied')
                   THEN 'denied' ELSE 'failure' END
       WHEN m.denied_by_policy THEN 'denied'
       WHEN p.answered THEN 'success' ELSE 'unknown' END AS outcome,
  coalesce(m.err, q.err) AS error_message,
  coalesce(m.entity, m.display) AS actor_uid,
  CASE WHEN coalesce(m.entity, m.display, m.caller) IS NOT NULL THEN 'vault-token' END
    AS actor_type,
  m.display AS actor_name, m.caller AS credential_id,
  CASE WHEN m.caller IS NOT NULL THEN 'vault-token' END AS credential_kind,
  m.agent_id, CASE WHEN m.oidc IS NOT NULL AND NOT wf.workload THEN m.oidc ELSE m.human0 END
    AS human_id,
  m.src_ip, m.user_agent, m.ns_path AS account, m.path AS target,
  '{{' || concat_ws(',',
    kt_m('entry', CASE WHEN q.ln IS NOT NULL THEN '"pair"'
                       WHEN p.answered THEN '"response"' ELSE '"request"' END),
    kt_m('request_record_no', q.ln::VARCHAR), kt_m('request_byte_offset', q.off::VARCHAR),
    kt_m('request_time', kt_str(CASE WHEN p.answered THEN q.time_raw ELSE m.time_raw END)),
    kt_m('response_time', kt_str(CASE WHEN p.answered THEN m.time_raw END)),
    m.d1, kt_m('forwarded_from', kt_str(coalesce(m.fwd, q.fwd))), m.d2) || '}}' AS details,
  m.line[:-2] AS raw, m.ln AS record_no, m.off AS byte_offset, m.mount_type AS _mount_type,
  CASE WHEN p.answered THEN 0 ELSE 1 END AS _phase, m.ln AS _key, 0::BIGINT AS _seq
{_PAIRED}
ORDER BY m.ln
"""

RESOURCES = """
SELECT event_uid, 'vault:' || coalesce(account, '') || target AS resource_id,
       kt_rtype(target, _mount_type) AS resource_type, account, _phase, _key, _seq
FROM _kt_vev WHERE target IS NOT NULL
"""

#: Answered responses (both sides ok, no ``error``) that may mint: read by rows.pair_issues.
MINTS = f"""
SELECT p.uid, m.ln, m.off, m.line, q.time_raw
{_PAIRED} AND m.mint AND m.err IS NULL
ORDER BY m.ln
"""
