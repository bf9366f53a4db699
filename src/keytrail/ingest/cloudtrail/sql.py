"""CloudTrail records to case rows, in bulk SQL.

Every CloudTrail shape (S3 ``Records`` files read by DuckDB, or records salvaged by the
tolerant Python reader) ends up as one Arrow table of staged records: ``file_id``,
``record_no``, ``byte_offset`` and ``rec`` (the record's JSON text). :func:`map_staged`
turns that table into ``events``, ``event_resources``, ``credential_issues`` and
``rejects`` rows with four INSERT ... SELECT statements over one TEMP table, so Python
never loops over records here. The inserts go through :meth:`LoadContext.insert_sql`, the
same gate (``WRITABLE_TABLES``) every adapter writes through. ``docs/formats/cloudtrail.md``
documents the mapping.

Invariants:
- one staged record becomes exactly one event or one reject (never silently dropped);
- ``raw`` is the staged JSON text with secret values masked, like ``details``, ``error_message``,
  ``user_agent``, ``target`` and reject excerpts: every insert goes through
  :meth:`keytrail.ingest.base.LoadContext.insert_sql`, which applies
  :data:`keytrail.redact.STORED_RULES` in DuckDB, so session tokens, secret keys and passwords never
  reach the case. A batch read ahead may have ``raw`` masked by the staging itself
  (:func:`stage_select` ``premask``, with the same SQL; ``insert_sql(premasked=...)`` then passes it
  as it is). The TEMP staging table holds the original text only while the file loads (fields are
  parsed from it, and ``event_uid`` falls back to its hash);
- only successful issuing calls produce ``credential_issues`` rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytrail.store import carried
from keytrail.store.sqltext import mask_stored_sql, quote_literal

if TYPE_CHECKING:
    import pyarrow as pa

    from keytrail.ingest.base import LoadContext

#: The fields json_transform extracts in one parse per record; the rest stays in ``raw``.
SPEC = (
    '{"eventID":"VARCHAR","eventTime":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR",'
    '"readOnly":"VARCHAR","errorCode":"VARCHAR","errorMessage":"VARCHAR","awsRegion":"VARCHAR",'
    '"sourceIPAddress":"VARCHAR","userAgent":"VARCHAR","recipientAccountId":"VARCHAR",'
    '"sharedEventID":"VARCHAR","requestID":"VARCHAR","requestParameters":"JSON",'
    '"responseElements":"JSON","additionalEventData":"JSON","resources":"JSON",'
    '"eventType":"VARCHAR","sessionCredentialFromConsole":"VARCHAR",'
    '"userIdentity":{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR",'
    '"accessKeyId":"VARCHAR","userName":"VARCHAR","invokedBy":"VARCHAR","onBehalfOf":{"userId":"VARCHAR"},'
    '"sessionContext":{"sourceIdentity":"VARCHAR","sessionIssuer":{"type":"VARCHAR"}}}}'
)

#: Error codes meaning "not allowed" (outcome ``denied``); other error codes are ``failure``.
_DENIED = (
    "r.errorCode ILIKE '%AccessDenied%' OR r.errorCode ILIKE '%UnauthorizedOperation%' "
    "OR r.errorCode ILIKE '%NotAuthorized%' OR r.errorCode ILIKE '%Unauthorized%Access%'"
)

STS_ISSUERS = (
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetFederationToken",
)


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


_PARAM_PATHS = (
    "$.bucketName",
    "$.key",
    "$.roleArn",
    "$.secretId",
    "$.name",
    "$.userName",
    "$.roleName",
    "$.functionName",
    "$.policyArn",
    "$.instanceId",
    "$.modelId",
)


def _candidates() -> list[tuple[str, str, str]]:
    """Resources implied by request parameters, most specific first: (id expression, type, account).

    Expressions use ``svc`` (service, e.g. ``s3``), ``acct``, ``reg`` and ``p`` (the
    ``_PARAM_PATHS`` values of ``requestParameters``); an id expression is NULL when
    the parameter is absent or the service does not match.
    """

    def arn_acct(x: str) -> str:
        return f"nullif(split_part({x}, ':', 5), '')"

    def named(i: int, svc: str, arn: str) -> str:
        return (
            f"CASE WHEN svc = '{svc}' AND p[{i}] <> '' THEN (CASE WHEN starts_with(p[{i}], 'arn:') "
            f"THEN p[{i}] ELSE {arn} END) END"
        )

    return [
        (
            "CASE WHEN svc = 's3' AND p[1] <> '' AND p[2] <> '' THEN 'arn:aws:s3:::' || p[1] || '/' || p[2] END",
            "AWS::S3::Object",
            "NULL",
        ),
        (
            "CASE WHEN svc = 's3' AND p[1] <> '' THEN 'arn:aws:s3:::' || p[1] END",
            "AWS::S3::Bucket",
            "NULL",
        ),
        ("CASE WHEN starts_with(p[3], 'arn:') THEN p[3] END", "AWS::IAM::Role", arn_acct("p[3]")),
        (
            "CASE WHEN svc = 'secretsmanager' AND p[4] <> '' THEN p[4] END",
            "AWS::SecretsManager::Secret",
            f"coalesce({arn_acct('p[4]')}, acct)",
        ),
        (
            named(
                5,
                "ssm",
                "'arn:aws:ssm:' || reg || ':' || acct || ':parameter/' || ltrim(p[5], '/')",
            ),
            "AWS::SSM::Parameter",
            "acct",
        ),
        (
            "CASE WHEN svc = 'iam' AND p[6] <> '' THEN 'arn:aws:iam::' || acct || ':user/' || p[6] END",
            "AWS::IAM::User",
            "acct",
        ),
        (
            "CASE WHEN svc = 'iam' AND p[7] <> '' THEN 'arn:aws:iam::' || acct || ':role/' || p[7] END",
            "AWS::IAM::Role",
            "acct",
        ),
        (
            named(8, "lambda", "'arn:aws:lambda:' || reg || ':' || acct || ':function:' || p[8]"),
            "AWS::Lambda::Function",
            f"coalesce({arn_acct('p[8]')}, acct)",
        ),
        (
            "CASE WHEN svc = 'iam' AND starts_with(p[9], 'arn:') THEN p[9] END",
            "AWS::IAM::ManagedPolicy",
            arn_acct("p[9]"),
        ),
        (
            "CASE WHEN svc = 'ec2' AND p[10] LIKE 'i-%' THEN 'arn:aws:ec2:' || reg || ':' || acct || ':instance/' || p[10] END",
            "AWS::EC2::Instance",
            "acct",
        ),
        (
            named(11, "bedrock", "'arn:aws:bedrock:' || reg || '::foundation-model/' || p[11]"),
            "AWS::Bedrock::FoundationModel",
            "NULL",
        ),
    ]


def _ssm_arn(name: str) -> str:
    return (
        f"CASE WHEN starts_with({name}, 'arn:') THEN {name} "
        f"ELSE 'arn:aws:ssm:' || reg || ':' || acct || ':parameter/' || ltrim({name}, '/') END"
    )


def params_sql(rp: str) -> str:
    paths = ", ".join(quote_literal(x) for x in _PARAM_PATHS)
    return f"CASE WHEN {rp} IS NOT NULL THEN json_extract_string({rp}, [{paths}]) END"


def stage_columns() -> list[tuple[str, str]]:
    """The staging's computed columns, ``(name, SQL)``, over the parsed record ``r`` and its text
    ``raw``: every value more than one statement needs.

    :func:`stage_sql` computes them all; ``keytrail.scope.narrow`` computes those a scope reads
    with these same expressions (over records parsed with only the fields they read)."""
    ui = "r.userIdentity"
    return [
        (
            "event_uid",
            "'cloudtrail:' || coalesce(nullif(r.eventID, ''), 'sha256-' || left(sha256(raw), 32))",
        ),
        ("time", _time("r.eventTime")),
        (
            "outcome",
            f"""CASE WHEN coalesce(r.errorCode, '') = '' THEN
             CASE WHEN json_extract_string(r.responseElements, '$.ConsoleLogin') = 'Failure' THEN 'failure'
                  ELSE 'success' END
           WHEN {_DENIED} THEN 'denied' ELSE 'failure' END""",
        ),
        (
            "actor_uid",
            f"""coalesce(nullif({ui}.arn, ''), nullif({ui}.principalId, ''), nullif({ui}.invokedBy, ''),
               nullif({ui}.onBehalfOf.userId, ''), nullif({ui}.type, ''))""",
        ),
        (
            "actor_name",
            f"""coalesce(nullif({ui}.userName, ''),
               CASE WHEN {ui}.type IN ('AssumedRole', 'FederatedUser')
                    THEN nullif(regexp_extract({ui}.arn, '[^/]+$'), '') END,
               CASE WHEN {ui}.type = 'Root' THEN 'root' END, nullif({ui}.invokedBy, ''))""",
        ),
        ("key_id", f"nullif({ui}.accessKeyId, '')"),
        ("acct", f"coalesce(nullif(r.recipientAccountId, ''), nullif({ui}.accountId, ''))"),
        ("reg", "nullif(r.awsRegion, '')"),
        ("svc", "replace(r.eventSource, '.amazonaws.com', '')"),
        ("p", params_sql("r.requestParameters")),
        ("bad", "coalesce(r.eventSource, '') = '' AND coalesce(r.eventName, '') = ''"),
    ]


def stage_sql(arrow_name: str) -> str:
    """The staged records of ``arrow_name`` as the TEMP table ``_kt_ct_t`` (:func:`stage_select`)."""
    return "CREATE OR REPLACE TEMP TABLE _kt_ct_t AS" + stage_select(arrow_name)


#: Columns :func:`stage_select` masks when asked to (``premask``): :func:`insert_staged` then
#: inserts them into ``events`` as they are (``insert_sql(premasked=...)``).
STAGED_MASKED = frozenset({"raw"})


def stage_select(source: str, premask: bool = False) -> str:
    """One parse per record (json_transform) plus :func:`stage_columns`.

    ``try()`` turns a record DuckDB cannot parse (invalid Unicode escapes, which the readers pass on as
    text) into a NULL ``r``, so it becomes a reject instead of an error that would abort the file's
    transaction.

    ``premask``: ``raw`` leaves masked (:func:`~keytrail.store.sqltext.mask_stored_sql`, the
    masking ``insert_sql`` applies) for every record that becomes an event, so the masking of
    the biggest column runs where the staging runs: on the read-ahead thread when the runner
    finds that thread has time to spare (:mod:`keytrail.ingest.cloudtrail.ahead`), with no
    extra copy of the text (the staged table holds ``raw`` either way). ``event_uid``'s hash
    fallback and ``r`` are computed from the original text; a reject (``bad``) keeps its
    original text (its excerpt is ``left(raw, 512)``, masked by ``insert_sql`` as before)."""
    cols = ",\n      ".join(f"{e} AS {n}" for n, e in stage_columns())
    staged = f"""
    SELECT *,
      {cols}
    FROM (SELECT s.file_id, s.record_no, s.byte_offset, s.format, s.rec AS raw,
                 try(json_transform(s.rec, {quote_literal(SPEC)})) AS r
          FROM {source} s)
    """
    if not premask:
        return staged
    return masked_with_plain(staged, f"CASE WHEN bad THEN raw ELSE {mask_stored_sql('raw')} END")


def masked_with_plain(source: str, masked: str) -> str:
    """The rows of ``source`` with ``raw`` replaced by ``masked`` (SQL over them) and a column
    ``plain``: whether that left the text as read (:mod:`keytrail.store.carried`; a reject's
    NULL). The masked text is computed once and compared with the original as two strings."""
    return f"""SELECT * EXCLUDE (_kt_masked) REPLACE (_kt_masked AS raw),
                      CASE WHEN NOT bad THEN _kt_masked = raw END AS plain
               FROM (SELECT *, {masked} AS _kt_masked FROM ({source}))"""


def event_columns(fid: str = "file_id") -> list[tuple[str, str]]:
    """``events``' columns, ``(name, SQL)``, over the staged rows (:func:`stage_sql`'s
    ``_kt_ct_t``): :func:`events_sql` selects them all, ``keytrail.scope.narrow`` those a scope
    reads."""
    ui = "r.userIdentity"
    ssm0 = "json_extract_string(r.requestParameters, '$.names[0]')"
    target = (
        "coalesce("
        + ", ".join(
            ["json_extract_string(r.resources, '$[0].ARN')"]
            + [c[0] for c in _candidates()]
            + [f"CASE WHEN svc = 'ssm' THEN {_ssm_arn(ssm0)} END"]
        )
        + ")"
    )
    return [
        ("event_uid", "event_uid"),
        ("source", "'cloudtrail'"),
        ("format", "format"),
        ("source_event_id", "nullif(r.eventID, '')"),
        ("time", "time"),
        ("time_raw", "r.eventTime"),
        ("action", "svc || ':' || r.eventName"),
        ("service", "svc"),
        ("operation", "r.eventName"),
        ("read_only", "CASE lower(r.readOnly) WHEN 'true' THEN true WHEN 'false' THEN false END"),
        ("outcome", "outcome"),
        ("error_code", "nullif(r.errorCode, '')"),
        ("error_message", "nullif(r.errorMessage, '')"),
        ("actor_uid", "actor_uid"),
        ("actor_type", f"nullif({ui}.type, '')"),
        ("actor_name", "actor_name"),
        ("credential_id", "key_id"),
        (
            "credential_kind",
            """CASE WHEN starts_with(key_id, 'AKIA') THEN 'aws-access-key'
           WHEN starts_with(key_id, 'ASIA') THEN 'aws-temporary-key' END""",
        ),
        (
            "session_id",
            f"CASE WHEN {ui}.type IN ('AssumedRole', 'FederatedUser') THEN nullif({ui}.arn, '') END",
        ),
        (
            "human_id",
            f"""coalesce(nullif({ui}.onBehalfOf.userId, ''), nullif({ui}.sessionContext.sourceIdentity, ''),
               nullif(json_extract_string(r.additionalEventData, '$.sourceIdentity'), ''))""",
        ),
        ("src_ip", "nullif(r.sourceIPAddress, '')"),
        ("user_agent", "nullif(r.userAgent, '')"),
        ("account", "acct"),
        ("region", "reg"),
        ("target", target),
        ("shared_event_id", "nullif(r.sharedEventID, '')"),
        ("request_id", "nullif(r.requestID, '')"),
        (
            "details",
            "json_object('requestParameters', r.requestParameters, 'responseElements', r.responseElements)",
        ),
        ("raw", "raw"),
        ("file_id", fid),
        ("record_no", "record_no"),
        ("byte_offset", "byte_offset"),
        *carried.columns("_kt_plain", "raw"),
    ]


def events_sql(src: str = "_kt_ct_t", fid: str = "file_id", premasked: bool = False) -> str:
    """The ``events`` rows of the staged table ``src`` with ``raw`` masked: by the staging
    (``premasked``: :func:`stage_select` ``premask``) or here, where the comparison that gives
    ``ct_plain`` needs the original beside it (:func:`masked_with_plain`)."""
    if not premasked:
        src = f"({masked_with_plain(f'SELECT * FROM {src} WHERE NOT bad', mask_stored_sql('raw'))})"
    # user_agent is masked here (EVENTS_MASKED), so ct_plain can say it is the logged value
    ua = mask_stored_sql("nullif(r.userAgent, '')")
    # (two levels: an alias used in its own SELECT list is its expression again, masked twice)
    src = f"(SELECT *, {ua} AS _kt_ua FROM {src})"
    src = f"(SELECT *, {carried.plain_sql('plain', '_kt_ua')} AS _kt_plain FROM {src})"
    exprs = [(n, "_kt_ua" if n == "user_agent" else e) for n, e in event_columns(fid)]
    cols = ",\n      ".join(f"{e} AS {n}" if e != n else n for n, e in exprs)
    return f"""
    SELECT
      {cols}
    FROM {src} WHERE NOT bad
    """


#: The columns :func:`events_sql` masks itself (``insert_sql(premasked=...)``).
EVENTS_MASKED = frozenset({"raw", "user_agent"})


def resources_sql(src: str = "_kt_ct_t") -> str:
    """One row per (event, resource): the ``resources`` array first, then the most specific
    resource the request parameters imply (``prio``).

    The implied candidates are built as one list per record and unnested (one scan of the staged
    records instead of one per candidate), and the best row per pair is a grouped ``min`` over
    ``(prio, type, account)`` instead of a sort of every candidate (``DISTINCT ON ... ORDER BY``):
    1.4 to 0.8 CPU-s for 270k records, same rows (a tie within ``resources`` now resolves to the
    smallest type and account instead of any)."""
    given = (
        "SELECT event_uid, x->>'ARN' AS resource_id, x->>'type' AS resource_type, x->>'accountId' AS account, "
        f"0 AS prio FROM (SELECT event_uid, unnest(json_extract(r.resources, '$[*]')) AS x FROM {src} "
        "WHERE NOT bad AND json_type(r.resources) = 'ARRAY')"
    )
    cands = ", ".join(
        f"{{'id': {e}, 'type': {quote_literal(t)}, 'account': {a}, 'prio': {i}}}"
        for i, (e, t, a) in enumerate(_candidates(), start=1)
    )
    implied = (
        "SELECT event_uid, c.id AS resource_id, c.type AS resource_type, c.account AS account, "
        f"c.prio AS prio FROM (SELECT event_uid, unnest([{cands}]) AS c FROM {src} "
        "WHERE NOT bad AND p IS NOT NULL)"
    )
    ssm_names = (
        f"SELECT event_uid, {_ssm_arn('n')} AS resource_id, 'AWS::SSM::Parameter', acct, 99 FROM "
        f"(SELECT *, unnest(json_extract_string(r.requestParameters, '$.names[*]')) AS n FROM {src} "
        "WHERE NOT bad AND svc = 'ssm')"
    )
    union = f"{given}\n UNION ALL {implied}\n UNION ALL {ssm_names}"
    return f"""
    SELECT event_uid, resource_id, best.resource_type,
           -- AWS-managed policies (arn:aws:iam::aws:policy/...) and other global ARNs: no account
           CASE WHEN regexp_matches(best.account, '^[0-9]{{12}}$') THEN best.account END AS account
    FROM (SELECT event_uid, resource_id,
                 min({{'prio': prio, 'resource_type': resource_type, 'account': account}}) AS best
          FROM ({union}) WHERE resource_id IS NOT NULL AND resource_id <> ''
          GROUP BY event_uid, resource_id)
    """


def issues_sql(src: str = "_kt_ct_t") -> str:
    sts = ", ".join(quote_literal(n) for n in STS_ISSUERS)
    q = (
        "json_extract_string(r.responseElements, ['$.credentials.accessKeyId', '$.credentials.expiration', "
        "'$.assumedRoleUser.arn', '$.federatedUser.arn', '$.sourceIdentity', '$.accessKey.accessKeyId', "
        "'$.accessKey.userName', '$.accessKey.createDate'])"
    )
    w = (
        "json_extract_string(r.requestParameters, ['$.roleSessionName', '$.name', '$.roleArn', "
        "'$.durationSeconds', '$.sourceIdentity', '$.userName'])"
    )
    base = (
        f"(SELECT event_uid, r.eventName AS event_name, time, key_id, actor_uid, actor_name, acct, {q} AS q, "
        f"{w} AS w FROM {src} WHERE NOT bad AND outcome = 'success' AND r.responseElements IS NOT NULL AND "
    )
    return f"""
    SELECT q[1] AS credential_id, 'aws-temporary-key' AS kind,
           CASE WHEN event_name IN ('AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity') THEN NULL ELSE key_id END
             AS parent_credential_id,
           event_uid, time AS issued_at, {_aws_time("q[2]")} AS expires_at,
           CASE WHEN event_name = 'GetSessionToken' THEN actor_uid ELSE coalesce(q[3], q[4]) END AS principal_uid,
           CASE WHEN event_name = 'GetSessionToken' THEN actor_name
                ELSE coalesce(w[1], w[2], regexp_extract(coalesce(q[3], q[4]), '[^/]+$')) END AS principal_name,
           json_object('sourceIdentity', coalesce(q[5], w[5]), 'roleArn', w[3], 'durationSeconds', w[4])
             AS attributes,
           'proven' AS confidence, event_name || ' responseElements.credentials.accessKeyId' AS reason
    FROM {base} svc = 'sts' AND r.eventName IN ({sts}))
    WHERE q[1] <> ''
    UNION ALL
    SELECT q[6], 'aws-access-key', key_id, event_uid, time, NULL,
           CASE WHEN acct IS NOT NULL THEN 'arn:aws:iam::' || acct || ':user/' || coalesce(q[7], w[6], actor_name) END,
           coalesce(q[7], w[6], actor_name),
           json_object('createDate', q[8], 'userName', coalesce(q[7], w[6])),
           'proven', 'CreateAccessKey responseElements.accessKey.accessKeyId'
    FROM {base} svc = 'iam' AND r.eventName = 'CreateAccessKey')
    WHERE q[6] <> ''
    """


def map_staged(ctx: LoadContext, staged: pa.Table) -> dict[int, tuple[int, int]]:
    """Insert the staged records; return ``{file_id: (records, rejected)}`` for the records mapped here.

    ``staged`` has columns ``file_id``, ``record_no``, ``byte_offset``, ``format``, ``rec`` (JSON text);
    its rows may come from several files of one batch, each row carrying its own ``file_id``, so
    any context of the batch (one connection, one transaction) writes them.
    No try/finally: a failed statement aborts the ingest transaction anyway (the runner rolls back).
    """
    if staged.num_rows == 0:
        return {}
    con = ctx.con
    con.register("_kt_ct_arrow", staged)
    try:
        con.execute(stage_sql("_kt_ct_arrow"))
    finally:
        con.unregister("_kt_ct_arrow")
    counts = insert_staged(ctx, "_kt_ct_t")
    con.execute("DROP TABLE _kt_ct_t")
    return counts


def insert_staged(
    ctx: LoadContext,
    src: str,
    file_ids: list[int] | None = None,
    resources: str | None = None,
    issues: str | None = None,
    premasked: frozenset[str] = frozenset(),
) -> dict[int, tuple[int, int]]:
    """The inserts of :func:`map_staged` from a table already staged by :func:`stage_select`.

    ``file_ids``: when given, the table's ``file_id`` column is an index into it (a batch staged
    ahead on another thread, before the runner gave its files their ids,
    :mod:`keytrail.ingest.cloudtrail.ahead`); the list is a literal, so no join reorders rows.
    ``resources``, ``issues``: tables holding :func:`resources_sql` and :func:`issues_sql` of
    ``src`` already (computed ahead, unmasked: ``insert_sql`` masks them here). ``premasked``:
    :data:`STAGED_MASKED` when ``src`` was staged with ``premask``."""
    fid = "file_id" if file_ids is None else f"{[int(f) for f in file_ids]}[file_id + 1]"
    # events_sql masks raw itself when the staging did not (ct_plain compares the two texts)
    ctx.insert_sql("events", events_sql(src, fid, "raw" in premasked), premasked=EVENTS_MASKED)
    ctx.insert_sql(
        "event_resources", resources_sql(src) if resources is None else f"SELECT * FROM {resources}"
    )
    ctx.insert_sql(
        "credential_issues", issues_sql(src) if issues is None else f"SELECT * FROM {issues}"
    )
    ctx.insert_sql(  # reason and excerpt are masked by insert_sql like every stored text
        "rejects",
        f"""SELECT {fid} AS file_id, record_no, byte_offset,
                  CASE WHEN r IS NULL THEN 'record is not valid JSON text (a bad escape or invalid Unicode, '
                       'e.g. a lone UTF-16 surrogate such as \\ud800)'
                       ELSE 'not a CloudTrail event: no eventSource or eventName' END AS reason,
                  left(raw, 512) AS excerpt
           FROM {src} WHERE bad""",
    )
    rows = ctx.con.execute(
        f"SELECT {fid}, count(*), count(*) FILTER (WHERE bad) FROM {src} GROUP BY ALL"
    ).fetchall()
    return {int(f): (int(n), int(b)) for f, n, b in rows}
