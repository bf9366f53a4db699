"""CloudTrail records to case rows, in bulk SQL.

Every CloudTrail shape (S3 ``Records`` files read by DuckDB, or records salvaged by the
tolerant Python reader) ends up as one Arrow table of staged records: ``file_id``,
``record_no``, ``byte_offset`` and ``rec`` (the record's JSON text). :func:`map_staged`
turns that table into ``events``, ``event_resources``, ``credential_issues`` and
``rejects`` rows with four INSERT ... SELECT statements over one TEMP table, so Python
never loops over records here. ``docs/formats/cloudtrail.md`` documents the mapping.

Invariants:
- one staged record becomes exactly one event or one reject (never silently dropped);
- ``raw`` is the staged JSON text untouched; ``details`` has secrets masked (session
  tokens, secret keys, passwords never reach it);
- only successful issuing calls produce ``credential_issues`` rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: The fields json_transform extracts in one parse per record; the rest stays in ``raw``.
_SPEC = (
    '{"eventID":"VARCHAR","eventTime":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR",'
    '"readOnly":"VARCHAR","errorCode":"VARCHAR","errorMessage":"VARCHAR","awsRegion":"VARCHAR",'
    '"sourceIPAddress":"VARCHAR","userAgent":"VARCHAR","recipientAccountId":"VARCHAR",'
    '"sharedEventID":"VARCHAR","requestID":"VARCHAR","requestParameters":"JSON",'
    '"responseElements":"JSON","additionalEventData":"JSON","resources":"JSON",'
    '"userIdentity":{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR",'
    '"accessKeyId":"VARCHAR","userName":"VARCHAR","invokedBy":"VARCHAR","onBehalfOf":{"userId":"VARCHAR"},'
    '"sessionContext":{"sourceIdentity":"VARCHAR"}}}'
)

#: Secret-bearing keys whose string values are masked in ``details`` (raw keeps them).
_SECRET_RE = (
    r'(?i)"(sessionToken|secretAccessKey|password|newPassword|oldPassword|privateKey|secretString|'
    r'secretBinary|clientSecret|tokenValue|token|accessToken|refreshToken|idToken)"\s*:\s*"(?:[^"\\]|\\.)*"'
)

#: Error codes meaning "not allowed" (outcome ``denied``); other error codes are ``failure``.
_DENIED = (
    "e.errorCode LIKE 'AccessDenied%' OR e.errorCode ILIKE '%UnauthorizedOperation%' "
    "OR e.errorCode ILIKE '%NotAuthorized%' OR e.errorCode ILIKE '%Unauthorized%Access%'"
)

STS_ISSUERS = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "GetSessionToken",
               "GetFederationToken")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _time(expr: str) -> str:
    """UTC TIMESTAMP from an ISO-ish string; offsets honoured, naive strings taken as UTC."""
    return (
        f"(CASE WHEN regexp_matches({expr}, '[+-]\\d\\d:?\\d\\d$') "
        f"THEN try_cast({expr} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' ELSE try_cast({expr} AS TIMESTAMP) END)"
    )


def _aws_time(expr: str) -> str:
    """STS/IAM response dates: ``Oct 8, 2024, 4:15:32 PM`` (UTC) or ISO."""
    return (
        f"coalesce(try_strptime({expr}, ['%b %d, %Y, %I:%M:%S %p', '%b %d, %Y %I:%M:%S %p']), "
        f"{_time(expr)})"
    )


def _mask(expr: str) -> str:
    return (
        f"(CASE WHEN {expr} IS NULL THEN NULL "
        f"ELSE regexp_replace({expr}, {_lit(_SECRET_RE)}, '\"\\1\":\"****\"', 'g') END)"
    )


def _res(id_expr: str, type_: str, account: str) -> str:
    return f"{{'id': {id_expr}, 'type': {_lit(type_)}, 'account': {account}}}"


def _arn_account(expr: str) -> str:
    return f"nullif(split_part({expr}, ':', 5), '')"


def _resource_list() -> str:
    """Resources the event names: ``resources[]`` first, then common request parameters."""
    src = "e.eventSource"
    acct = "e.acct"
    reg = "e.awsRegion"
    p = "e.p"
    given = (
        "coalesce(list_transform(json_transform(e.resources, "
        "'[{\"ARN\":\"VARCHAR\",\"type\":\"VARCHAR\",\"accountId\":\"VARCHAR\"}]'), "
        "lambda x: {'id': x.ARN, 'type': x.type, 'account': x.accountId}), [])"
    )
    parts = [
        _res(f"CASE WHEN {src} = 's3.amazonaws.com' AND {p}[2] IS NOT NULL AND {p}[2] <> '' "
             f"THEN 'arn:aws:s3:::' || {p}[1] || '/' || {p}[2] END", "AWS::S3::Object", "NULL"),
        _res(f"CASE WHEN {src} = 's3.amazonaws.com' AND {p}[1] <> '' THEN 'arn:aws:s3:::' || {p}[1] END",
             "AWS::S3::Bucket", "NULL"),
        _res(f"CASE WHEN starts_with({p}[3], 'arn:') THEN {p}[3] END", "AWS::IAM::Role", _arn_account(f"{p}[3]")),
        _res(f"CASE WHEN {src} = 'secretsmanager.amazonaws.com' THEN {p}[4] END", "AWS::SecretsManager::Secret",
             f"coalesce({_arn_account(f'{p}[4]')}, {acct})"),
        _res(f"CASE WHEN {src} = 'ssm.amazonaws.com' AND {p}[5] <> '' THEN (CASE WHEN starts_with({p}[5], 'arn:') "
             f"THEN {p}[5] ELSE 'arn:aws:ssm:' || {reg} || ':' || {acct} || ':parameter/' || ltrim({p}[5], '/') END) END",
             "AWS::SSM::Parameter", acct),
        _res(f"CASE WHEN {src} = 'iam.amazonaws.com' AND {p}[6] <> '' THEN 'arn:aws:iam::' || {acct} || ':user/' || {p}[6] END",
             "AWS::IAM::User", acct),
        _res(f"CASE WHEN {src} = 'iam.amazonaws.com' AND {p}[7] <> '' THEN 'arn:aws:iam::' || {acct} || ':role/' || {p}[7] END",
             "AWS::IAM::Role", acct),
        _res(f"CASE WHEN {src} = 'lambda.amazonaws.com' AND {p}[8] <> '' THEN (CASE WHEN starts_with({p}[8], 'arn:') "
             f"THEN {p}[8] ELSE 'arn:aws:lambda:' || {reg} || ':' || {acct} || ':function:' || {p}[8] END) END",
             "AWS::Lambda::Function", f"coalesce({_arn_account(f'{p}[8]')}, {acct})"),
        _res(f"CASE WHEN {src} = 'iam.amazonaws.com' AND starts_with({p}[9], 'arn:') THEN {p}[9] END",
             "AWS::IAM::ManagedPolicy", _arn_account(f"{p}[9]")),
        _res(f"CASE WHEN {src} = 'ec2.amazonaws.com' AND {p}[10] LIKE 'i-%' "
             f"THEN 'arn:aws:ec2:' || {reg} || ':' || {acct} || ':instance/' || {p}[10] END", "AWS::EC2::Instance", acct),
        _res(f"CASE WHEN {src} = 'bedrock.amazonaws.com' AND {p}[11] <> '' THEN (CASE WHEN starts_with({p}[11], 'arn:') "
             f"THEN {p}[11] ELSE 'arn:aws:bedrock:' || {reg} || '::foundation-model/' || {p}[11] END) END",
             "AWS::Bedrock::FoundationModel", "NULL"),
    ]
    ssm_names = (
        f"CASE WHEN {src} = 'ssm.amazonaws.com' THEN list_transform(e.pnames, lambda n: "
        f"{{'id': CASE WHEN starts_with(n, 'arn:') THEN n ELSE 'arn:aws:ssm:' || {reg} || ':' || {acct} || "
        f"':parameter/' || ltrim(n, '/') END, 'type': 'AWS::SSM::Parameter', 'account': {acct}}}) ELSE [] END"
    )
    all_ = f"list_concat({given}, [{', '.join(parts)}], {ssm_names})"
    keep = f"list_filter({all_}, lambda x: x.id IS NOT NULL AND x.id <> '')"
    # First occurrence of each id wins (resources[] carries the type and owner account).
    return (f"list_filter({keep}, lambda x, i: list_position(list_transform({keep}, lambda y: y.id), x.id) = i)")


_PARAM_PATHS = ("$.bucketName", "$.key", "$.roleArn", "$.secretId", "$.name", "$.userName", "$.roleName",
                "$.functionName", "$.policyArn", "$.instanceId", "$.modelId")


def _stage_sql(arrow_name: str) -> str:
    paths = ", ".join(_lit(p) for p in _PARAM_PATHS)
    return f"""
    CREATE OR REPLACE TEMP TABLE _kt_ct_t AS
    SELECT file_id, record_no, byte_offset, format, raw, r.*,
           nullif(r.userIdentity.accessKeyId, '') AS key_id,
           coalesce(nullif(r.recipientAccountId, ''), nullif(r.userIdentity.accountId, '')) AS acct,
           CASE WHEN r.requestParameters IS NOT NULL THEN json_extract_string(r.requestParameters, [{paths}]) END AS p,
           CASE WHEN r.eventSource = 'ssm.amazonaws.com' AND r.requestParameters IS NOT NULL
                THEN json_extract_string(r.requestParameters, '$.names[*]') ELSE [] END AS pnames
    FROM (SELECT s.file_id, s.record_no, s.byte_offset, s.format, s.rec AS raw,
                 json_transform(s.rec, {_lit(_SPEC)}) AS r
          FROM {arrow_name} s)
    """


def _events_sql() -> str:
    ui = "e.userIdentity"
    return f"""
    CREATE OR REPLACE TEMP TABLE _kt_ct_e AS
    SELECT
      'cloudtrail:' || coalesce(nullif(e.eventID, ''), 'sha256-' || left(sha256(e.raw), 32)) AS event_uid,
      'cloudtrail' AS source, e.format, nullif(e.eventID, '') AS source_event_id,
      {_time('e.eventTime')} AS time, e.eventTime AS time_raw,
      replace(e.eventSource, '.amazonaws.com', '') || ':' || e.eventName AS action,
      replace(e.eventSource, '.amazonaws.com', '') AS service, e.eventName AS operation,
      CASE lower(e.readOnly) WHEN 'true' THEN true WHEN 'false' THEN false END AS read_only,
      CASE WHEN coalesce(e.errorCode, '') = '' THEN
             CASE WHEN json_extract_string(e.responseElements, '$.ConsoleLogin') = 'Failure' THEN 'failure'
                  ELSE 'success' END
           WHEN {_DENIED} THEN 'denied' ELSE 'failure' END AS outcome,
      nullif(e.errorCode, '') AS error_code, nullif(e.errorMessage, '') AS error_message,
      coalesce(nullif({ui}.arn, ''), nullif({ui}.principalId, ''), nullif({ui}.invokedBy, ''),
               nullif({ui}.onBehalfOf.userId, ''), nullif({ui}.type, '')) AS actor_uid,
      nullif({ui}.type, '') AS actor_type,
      coalesce(nullif({ui}.userName, ''),
               CASE WHEN {ui}.type IN ('AssumedRole', 'FederatedUser') THEN nullif(regexp_extract({ui}.arn, '[^/]+$'), '') END,
               CASE WHEN {ui}.type = 'Root' THEN 'root' END, nullif({ui}.invokedBy, '')) AS actor_name,
      e.key_id AS credential_id,
      CASE WHEN starts_with(e.key_id, 'AKIA') THEN 'aws-access-key'
           WHEN starts_with(e.key_id, 'ASIA') THEN 'aws-temporary-key' END AS credential_kind,
      CASE WHEN {ui}.type IN ('AssumedRole', 'FederatedUser') THEN nullif({ui}.arn, '') END AS session_id,
      coalesce(nullif({ui}.onBehalfOf.userId, ''), nullif({ui}.sessionContext.sourceIdentity, ''),
               nullif(json_extract_string(e.additionalEventData, '$.sourceIdentity'), '')) AS human_id,
      nullif(e.sourceIPAddress, '') AS src_ip, nullif(e.userAgent, '') AS user_agent,
      e.acct AS account, nullif(e.awsRegion, '') AS region,
      nullif(e.sharedEventID, '') AS shared_event_id, nullif(e.requestID, '') AS request_id,
      json_object('requestParameters', {_mask('e.requestParameters')}::JSON,
                  'responseElements', {_mask('e.responseElements')}::JSON) AS details,
      e.raw, e.file_id, e.record_no, e.byte_offset,
      {_resource_list()} AS res,
      e.eventSource AS event_source, e.eventName AS event_name, e.requestParameters AS rp,
      e.responseElements AS re, e.acct AS acct,
      coalesce(e.eventSource, '') = '' AND coalesce(e.eventName, '') = '' AS bad
    FROM _kt_ct_t e
    """


_EVENT_COLS = (
    "event_uid, source, format, source_event_id, time, time_raw, action, service, operation, read_only, "
    "outcome, error_code, error_message, actor_uid, actor_type, actor_name, credential_id, credential_kind, "
    "session_id, human_id, src_ip, user_agent, account, region, res[1].id AS target, shared_event_id, "
    "request_id, details, raw, file_id, record_no, byte_offset"
)


def _issues_sql() -> str:
    sts = ", ".join(_lit(n) for n in STS_ISSUERS)
    q = ("json_extract_string(e.re, ['$.credentials.accessKeyId', '$.credentials.expiration', "
         "'$.assumedRoleUser.arn', '$.federatedUser.arn', '$.sourceIdentity', '$.accessKey.accessKeyId', "
         "'$.accessKey.userName', '$.accessKey.createDate'])")
    w = ("json_extract_string(e.rp, ['$.roleSessionName', '$.name', '$.roleArn', '$.durationSeconds', "
         "'$.sourceIdentity', '$.userName'])")
    return f"""
    SELECT q[1] AS credential_id, 'aws-temporary-key' AS kind,
           CASE WHEN event_name IN ('AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity') THEN NULL ELSE credential_id END
             AS parent_credential_id,
           event_uid, time AS issued_at, {_aws_time('q[2]')} AS expires_at,
           CASE WHEN event_name = 'GetSessionToken' THEN actor_uid ELSE coalesce(q[3], q[4]) END AS principal_uid,
           CASE WHEN event_name = 'GetSessionToken' THEN actor_name
                ELSE coalesce(w[1], w[2], regexp_extract(coalesce(q[3], q[4]), '[^/]+$')) END AS principal_name,
           json_object('sourceIdentity', coalesce(q[5], w[5]), 'roleArn', w[3], 'durationSeconds', w[4]) AS attributes,
           'proven' AS confidence, event_name || ' responseElements.credentials.accessKeyId' AS reason
    FROM (SELECT *, {q} AS q, {w} AS w FROM _kt_ct_e e
          WHERE NOT bad AND outcome = 'success' AND event_source = 'sts.amazonaws.com'
            AND event_name IN ({sts}) AND re IS NOT NULL)
    WHERE q[1] IS NOT NULL AND q[1] <> ''
    UNION ALL
    SELECT q[6], 'aws-access-key', credential_id, event_uid, time, NULL,
           CASE WHEN acct IS NOT NULL THEN 'arn:aws:iam::' || acct || ':user/' || coalesce(q[7], w[6], actor_name) END,
           coalesce(q[7], w[6], actor_name),
           json_object('createDate', q[8], 'userName', coalesce(q[7], w[6])),
           'proven', 'CreateAccessKey responseElements.accessKey.accessKeyId'
    FROM (SELECT *, {q} AS q, {w} AS w FROM _kt_ct_e e
          WHERE NOT bad AND outcome = 'success' AND event_source = 'iam.amazonaws.com'
            AND event_name = 'CreateAccessKey' AND re IS NOT NULL)
    WHERE q[6] IS NOT NULL AND q[6] <> ''
    """


def map_staged(con: duckdb.DuckDBPyConnection, staged: pa.Table) -> dict[int, tuple[int, int]]:
    """Insert the staged records; return ``{file_id: (records, rejected)}`` for the records mapped here.

    ``staged`` has columns ``file_id``, ``record_no``, ``byte_offset``, ``format``, ``rec`` (JSON text).
    """
    if staged.num_rows == 0:
        return {}
    con.register("_kt_ct_arrow", staged)
    try:
        con.execute(_stage_sql("_kt_ct_arrow"))
    finally:
        con.unregister("_kt_ct_arrow")
    # No try/finally: a failed statement aborts the ingest transaction anyway (the runner rolls back).
    if True:
        con.execute(_events_sql())
        con.execute(f"INSERT INTO events BY NAME SELECT {_EVENT_COLS} FROM _kt_ct_e WHERE NOT bad")
        con.execute(
            """INSERT INTO event_resources BY NAME
               SELECT event_uid, x.id AS resource_id, x.type AS resource_type, x.account
               FROM (SELECT event_uid, unnest(res) AS x FROM _kt_ct_e WHERE NOT bad AND len(res) > 0)"""
        )
        con.execute(f"INSERT INTO credential_issues BY NAME {_issues_sql()}")
        con.execute(
            """INSERT INTO rejects BY NAME
               SELECT file_id, record_no, byte_offset,
                      'not a CloudTrail event: no eventSource or eventName' AS reason, left(raw, 512) AS excerpt
               FROM _kt_ct_e WHERE bad"""
        )
        rows = con.execute(
            "SELECT file_id, count(*), count(*) FILTER (WHERE bad) FROM _kt_ct_e GROUP BY file_id"
        ).fetchall()
        con.execute("DROP TABLE IF EXISTS _kt_ct_t")
        con.execute("DROP TABLE IF EXISTS _kt_ct_e")
    return {int(f): (int(n), int(b)) for f, n, b in rows}
