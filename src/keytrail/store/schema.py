"""The case schema as data: every table, column, type and meaning in one place.

``docs/schema.md`` is generated from this module (``python -m keytrail.store.schema``)
and a test checks the two agree, so the documentation cannot drift from the DDL.

Conventions:
- Times are ``TIMESTAMP`` holding UTC (naive); the source's own string is kept in a
  ``*_raw`` column where sources disagree on formats.
- Identifiers are exactly as logged (access key ids, Vault accessors or their HMACs,
  lease ids, ARNs, Vault paths, agent ids) so a responder can grep for them.
- Column names follow OCSF where OCSF has a name, flattened (``actor_uid``,
  ``src_ip``, ``user_agent``, ``action``).
- Tables marked *derived* are rebuilt from the others at the end of every ingest
  (``ingest.finalize``; a CloudTrail-only ingest updates the rows its events change,
  ``graph.derive_incr``); ingest adapters write only the *ingested* tables.
"""

from __future__ import annotations

from dataclasses import dataclass

#: 2: secrets are masked at ingest (``case_meta`` ``secrets`` = :data:`SECRETS_MASKED`); a version-1
#: case stores them as logged, so keytrail refuses to add to it and ``--reveal`` asks to re-ingest.
#: 3: ``events`` has the ``ct_*`` columns (:mod:`keytrail.store.carried`); a version-2 case opened
#: for writing gets them added, NULL for its rows (:data:`ADDED_COLUMNS`), which every reader of
#: them takes as "read ``raw``".
SCHEMA_VERSION = 3
#: The first version whose cases keytrail adds to (migrated to :data:`SCHEMA_VERSION` first).
MASKED_SINCE = 2
SECRETS_MASKED = "masked-at-ingest"

#: Columns stored with ZSTD instead of DuckDB's default string compression (FSST / dictionary
#: analysis). On 270k CloudTrail records (472 MB of ``raw``) ZSTD wrote in 1.4 CPU-s instead of 4.0,
#: into 33 MB instead of 226 MB, and scans as fast; the column type (and every query) is unchanged.
ZSTD_COLUMNS = frozenset({("events", "raw"), ("events", "details")})
#: Columns stored uncompressed: the raw pass's cache is written whole by a case's first snapshot
#: (888k distinct event ids at 1M events), where DuckDB's dictionary/FSST analysis and
#: compression cost 0.50 CPU-s against 0.11 (insert and commit), for 44 MB instead of 20 MB;
#: reading them back costs less too. A case made before keeps the default (the same rows).
UNCOMPRESSED_COLUMNS = frozenset({("raw_pass_cache", "event_uid")})
#: (table, column) -> the ``USING COMPRESSION`` of the two sets above.
_COMPRESSION = {
    **{key: "zstd" for key in ZSTD_COLUMNS},
    **{key: "uncompressed" for key in UNCOMPRESSED_COLUMNS},
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    derived: bool = False

    def ddl(self) -> str:
        cols = ",\n  ".join(
            f"{c.name} {c.type}"
            + (
                f" USING COMPRESSION {_COMPRESSION[(self.name, c.name)]}"
                if (self.name, c.name) in _COMPRESSION
                else ""
            )
            for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _t(name: str, doc: str, *cols: tuple[str, str, str], derived: bool = False) -> Table:
    return Table(name, doc, tuple(Column(*c) for c in cols), derived)


CASE_META = _t(
    "case_meta",
    "Key/value facts about the case: schema version, keytrail version, whether the last ingest finished.",
    (
        "key",
        "VARCHAR PRIMARY KEY",
        "fact name (`schema_version`, `created_at`, `finalized`, `keytrail_version`, `secrets` (`masked-at-ingest`: secret values were removed before anything was stored, docs/security.md), `snapshot.rank`, `snapshot.findings`: fingerprints of the analysis snapshot; `rawpass.cache`: which rules, code and files `raw_pass_cache` covers (JSON); `derived.through_file_id`, `derived.code`, `derived.resource_rows`: the last file the derived tables cover, a hash of the code that derived them and the count of `event_resources` rows then (a later ingest's rows follow them) (a later ingest of CloudTrail, Vault or agent files derives only what its events change, docs/performance.md); `provenance.<sha256>`: a `keytrail scope` manifest ingested with the case)",
    ),
    ("value", "VARCHAR", "its value as text"),
)

EVIDENCE = _t(
    "evidence",
    "One row per input file ever offered to the case, including skipped and digest files.",
    ("file_id", "INTEGER PRIMARY KEY", "case-local file number, referenced by events and rejects"),
    ("path", "VARCHAR NOT NULL", "absolute path at ingest time"),
    (
        "sha256",
        "VARCHAR NOT NULL",
        "SHA-256 of the file's bytes as stored (compressed if gz); re-ingest key",
    ),
    ("bytes", "BIGINT", "file size in bytes"),
    (
        "source",
        "VARCHAR",
        "`cloudtrail`, `vault`, `agent`, `inventory`, `policy`, `digest` or NULL when unrecognised",
    ),
    (
        "format",
        "VARCHAR",
        "detected format, e.g. `cloudtrail-records`, `vault-audit-jsonl`, `otlp-traces`",
    ),
    ("adapter", "VARCHAR", "name of the adapter that read it"),
    (
        "status",
        "VARCHAR",
        "`loaded`, `partial` (stopped at a break such as truncated gzip; records before it kept), `skipped` (no known format), `digest`, `provenance` (a `keytrail scope` manifest: its text is in `case_meta`, its note says whether the files match)",
    ),
    ("records", "BIGINT", "records read from the file (events + rejects + non-event records)"),
    ("events", "BIGINT", "events stored from this file after de-duplication"),
    ("duplicates", "BIGINT", "events in this file already present from earlier files or records"),
    ("rejected", "BIGINT", "records quarantined in `rejects`"),
    (
        "skipped",
        "BIGINT",
        "records kept out of `events` on purpose, the reason in `note` (e.g. a Vault request entry merged into its response event)",
    ),
    ("first_time", "TIMESTAMP", "earliest event time in the file (UTC)"),
    ("last_time", "TIMESTAMP", "latest event time in the file (UTC)"),
    ("ingested_at", "TIMESTAMP", "when keytrail read it (UTC)"),
    (
        "integrity",
        "VARCHAR",
        "`verified`, `failed`, `no-digest` (CloudTrail without a digest naming it), `not-applicable`",
    ),
    ("integrity_detail", "VARCHAR", "which digest file checked it, or why it failed"),
    ("note", "VARCHAR", "why a file was skipped or where it broke"),
)

EVENTS = _t(
    "events",
    "One normalised action from any source. `raw` is the original record.",
    (
        "event_uid",
        "VARCHAR NOT NULL",
        "case-unique id: `<source>:<source id>` (CloudTrail `cloudtrail:<eventID>`, Vault `vault:<request.id>`, spans `otlp:<traceId>:<spanId>`, see docs/formats)",
    ),
    ("source", "VARCHAR NOT NULL", "`cloudtrail`, `vault` or `agent`"),
    ("format", "VARCHAR", "detected format of the file it came from"),
    (
        "source_event_id",
        "VARCHAR",
        "the source's own id: CloudTrail `eventID`, Vault `request.id`, span id, MCP/native event id",
    ),
    ("time", "TIMESTAMP", "event time, UTC"),
    ("time_raw", "VARCHAR", "the time as written in the source"),
    (
        "action",
        "VARCHAR",
        "`<service>:<operation>`: `s3:GetObject`, `vault:read`, `tool:<tool name>`, `mcp:tools/call`",
    ),
    ("service", "VARCHAR", "service part of action: `s3`, `sts`, `vault`, `tool`, `llm`, `mcp`"),
    ("operation", "VARCHAR", "operation part of action: `GetObject`, `read`, tool name"),
    ("read_only", "BOOLEAN", "CloudTrail `readOnly` / Vault read-like operation when known"),
    ("outcome", "VARCHAR", "`success`, `failure`, `denied` or `unknown`"),
    ("error_code", "VARCHAR", "CloudTrail `errorCode`, Vault/MCP/span error type"),
    ("error_message", "VARCHAR", "error text as logged"),
    (
        "actor_uid",
        "VARCHAR",
        "acting identity: CloudTrail `userIdentity.arn` (or principalId), Vault `auth.entity_id` or display name, agent id",
    ),
    ("actor_type", "VARCHAR", "CloudTrail `userIdentity.type`; `vault-token`; `agent`; `human`"),
    (
        "actor_name",
        "VARCHAR",
        "human-readable actor: user name, session name, Vault `display_name`, agent name",
    ),
    (
        "credential_id",
        "VARCHAR",
        "credential used, as logged: AKIA/ASIA key id, Vault token accessor (or its HMAC), agent credential ref",
    ),
    (
        "credential_kind",
        "VARCHAR",
        "`aws-access-key`, `aws-temporary-key`, `vault-token`, `agent-credential-ref`, ...",
    ),
    (
        "session_id",
        "VARCHAR",
        "session: CloudTrail role session ARN / session name, agent `session.id` / conversation id",
    ),
    (
        "agent_id",
        "VARCHAR",
        "agent id or name when the source says (`gen_ai.agent.id`, native `agent_id`)",
    ),
    (
        "human_id",
        "VARCHAR",
        "human on whose behalf: `enduser.id`, `user.id`, `onBehalfOf.userId`, `sourceIdentity`",
    ),
    ("src_ip", "VARCHAR", "CloudTrail `sourceIPAddress`, Vault `request.remote_address`"),
    ("user_agent", "VARCHAR", "CloudTrail `userAgent`, HTTP user agent"),
    (
        "account",
        "VARCHAR",
        "AWS account the event was recorded in (`recipientAccountId`), Vault namespace",
    ),
    ("region", "VARCHAR", "AWS region"),
    ("target", "VARCHAR", "main target as text: Vault path, tool target, primary resource ARN"),
    ("trace_id", "VARCHAR", "OTLP trace id (lower-case hex)"),
    ("span_id", "VARCHAR", "OTLP span id (lower-case hex)"),
    ("parent_span_id", "VARCHAR", "OTLP parent span id"),
    ("shared_event_id", "VARCHAR", "CloudTrail `sharedEventID` (cross-account copies of one call)"),
    ("request_id", "VARCHAR", "CloudTrail `requestID`, MCP JSON-RPC id"),
    (
        "details",
        "JSON",
        "source-specific extracted fields (request parameters, tool arguments, mint details), secrets masked",
    ),
    (
        "raw",
        "VARCHAR",
        "the original record as JSON text (for Vault: the response entry, which repeats the request), secrets masked (`keytrail sql --reveal` reads the original back from the evidence file)",
    ),
    ("file_id", "INTEGER", "evidence file it came from"),
    (
        "record_no",
        "BIGINT",
        "1-based record number in that file (line for line formats, array index for `Records`)",
    ),
    ("byte_offset", "BIGINT", "byte offset of the record in the (decompressed) file when known"),
    (
        "ct_plain",
        "BOOLEAN",
        (
            "CloudTrail: whether the masking left `raw` as read and `operation`, `service`, "
            "`src_ip`, `user_agent`, `actor_uid` and `actor_type` hold the record's own "
            "`eventName`, `eventSource` (without `.amazonaws.com`), `sourceIPAddress`, "
            "`userAgent`, `userIdentity.arn` and `.type`, as `raw` gives them (then "
            "`ct_event_type`, `ct_issuer_type` and `ct_console` are filled: the analysis reads "
            "these instead of parsing `raw`, `keytrail.store.carried`); NULL for other sources "
            "and rows written before schema 3"
        ),
    ),
    ("ct_event_type", "VARCHAR", "CloudTrail `eventType`, where `ct_plain`"),
    (
        "ct_issuer_type",
        "VARCHAR",
        "CloudTrail `userIdentity.sessionContext.sessionIssuer.type`, where `ct_plain`",
    ),
    (
        "ct_console",
        "BOOLEAN",
        (
            "CloudTrail: the record holds `sessionCredentialFromConsole` with the value `true`, "
            "where `ct_plain`"
        ),
    ),
)

EVENT_RESOURCES = _t(
    "event_resources",
    "Resources an event touched: (event, resource) pairs.",
    ("event_uid", "VARCHAR NOT NULL", "the event"),
    (
        "resource_id",
        "VARCHAR NOT NULL",
        "ARN, `s3://bucket/key`, Vault path (`vault:<mount>/<path>`), tool target",
    ),
    (
        "resource_type",
        "VARCHAR",
        "`AWS::S3::Object`, `AWS::IAM::Role`, `vault-secret`, `tool-target`, ...",
    ),
    ("account", "VARCHAR", "owning AWS account when known"),
)

CREDENTIAL_ISSUES = _t(
    "credential_issues",
    "Credentials created by an event (ingested): the raw material of `MINTED` edges.",
    (
        "credential_id",
        "VARCHAR NOT NULL",
        "the new credential as logged (ASIA/AKIA key id, Vault accessor or HMAC, lease id)",
    ),
    (
        "kind",
        "VARCHAR",
        (
            "`aws-temporary-key`, `aws-access-key`, `vault-token`, `vault-lease`, "
            "`vault-secret-id`, `x509-certificate`, `ssh-certificate`, `totp-key`, `totp-code`"
        ),
    ),
    (
        "parent_credential_id",
        "VARCHAR",
        "credential that made the call (NULL when the call carried none, e.g. a Vault login)",
    ),
    ("event_uid", "VARCHAR NOT NULL", "issuing event"),
    ("issued_at", "TIMESTAMP", "issue time (UTC)"),
    ("expires_at", "TIMESTAMP", "expiry when logged (STS `expiration`, Vault `ttl`)"),
    (
        "principal_uid",
        "VARCHAR",
        "identity the new credential acts as: assumed-role ARN, federated user ARN, Vault entity id, IAM user",
    ),
    ("principal_name", "VARCHAR", "session name, Vault display name, IAM user name"),
    (
        "attributes",
        "JSON",
        "source facts: Vault role, policies, metadata, token type, renewable, STS source identity",
    ),
    (
        "confidence",
        "VARCHAR",
        "`proven` (same identifier logged on both sides) or `strong` (documented rule)",
    ),
    (
        "reason",
        "VARCHAR",
        "why this is an issuance, e.g. `AssumeRole responseElements.credentials.accessKeyId`",
    ),
)

INVENTORY_AGENTS = _t(
    "inventory_agents",
    "The agent register from `--inventory` files.",
    ("agent_id", "VARCHAR NOT NULL", "agent id as the inventory names it"),
    ("name", "VARCHAR", "display name"),
    ("owner", "VARCHAR", "accountable human or team"),
    ("purpose", "VARCHAR", "what it is for"),
    ("created", "TIMESTAMP", "lifecycle start (UTC)"),
    ("retired", "TIMESTAMP", "lifecycle end (UTC), NULL while active"),
    (
        "identities",
        "VARCHAR[]",
        "IAM role/user ARNs, AWS access key ids, `vault:<mount>/<role>` it is meant to use",
    ),
    ("environment", "VARCHAR", "optional environment label (prod, staging)"),
    ("file_id", "INTEGER", "inventory file"),
    ("record_no", "BIGINT", "row or table number in that file"),
    ("raw", "VARCHAR", "the entry as JSON text"),
)

GRANTS = _t(
    "grants",
    "Authorization snapshot (ingested): one row per policy statement granted to a principal, from "
    "`aws iam get-account-authorization-details` output or Vault/OpenBao ACL policies. Read by "
    "`keytrail.analysis.potential` for the potential blast radius (docs/formats/policies.md).",
    ("source", "VARCHAR NOT NULL", "`aws-iam` or `vault-policy`"),
    ("account", "VARCHAR", "AWS account of the principal (from its ARN); NULL for Vault"),
    (
        "principal_kind",
        "VARCHAR",
        "`user`, `role`, `group` (AWS), `policy` (a Vault policy: tokens carry policies by name), NULL for a managed policy attached to nobody in the snapshot",
    ),
    (
        "principal_arn",
        "VARCHAR",
        "IAM ARN of the user/role/group as in the snapshot (with its path); NULL for Vault",
    ),
    (
        "principal_name",
        "VARCHAR",
        "user/role/group name (last ARN segment) or the Vault policy name",
    ),
    ("policy_name", "VARCHAR", "inline policy name, managed policy name, or Vault policy name"),
    ("policy_arn", "VARCHAR", "managed policy ARN (NULL for inline and Vault policies)"),
    (
        "attachment",
        "VARCHAR",
        "`inline`, `managed`, `group-inline`, `group-managed` (granted to a user through `via_group`), `unattached`, `vault`; `missing-document` (a managed policy attached but not in the snapshot) and `permissions-boundary` rows carry no statement",
    ),
    ("via_group", "VARCHAR", "group name for `group-*` rows"),
    ("effect", "VARCHAR", "`Allow` or `Deny`; NULL on rows that carry no statement"),
    (
        "actions",
        "VARCHAR[]",
        "`Action` patterns (AWS `service:Operation` globs) or Vault capabilities",
    ),
    ("not_actions", "VARCHAR[]", "`NotAction` patterns (AWS)"),
    (
        "resources",
        "VARCHAR[]",
        "`Resource` patterns (ARN globs) or the Vault path (with `*`/`+` globs)",
    ),
    ("not_resources", "VARCHAR[]", "`NotResource` patterns (AWS)"),
    (
        "conditions",
        "JSON",
        "AWS `Condition` block; Vault parameter constraints (`allowed_parameters`, ...); never evaluated",
    ),
    (
        "statement_no",
        "INTEGER",
        "1-based statement (AWS) or path block (Vault) number within the policy document",
    ),
    ("file_id", "INTEGER", "snapshot file"),
    (
        "record_no",
        "BIGINT",
        "1-based entry number in the file (user/group/role/policy in list order; 1 for a Vault policy)",
    ),
    ("raw", "VARCHAR", "the statement or path block as JSON text"),
)

REJECTS = _t(
    "rejects",
    "Records that could not be ingested, with where and why. Nothing is dropped silently.",
    ("file_id", "INTEGER", "evidence file"),
    ("record_no", "BIGINT", "record/line number when known"),
    ("byte_offset", "BIGINT", "byte offset in the (decompressed) file when known"),
    ("reason", "VARCHAR", "what was wrong, in words"),
    ("excerpt", "VARCHAR", "up to 512 characters of the record"),
)

CREDENTIALS = _t(
    "credentials",
    "Every credential seen used or issued (derived).",
    ("credential_id", "VARCHAR NOT NULL", "as logged"),
    ("kind", "VARCHAR", "see `credential_issues.kind` and `events.credential_kind`"),
    ("origin", "VARCHAR", "`issued` (issuing event in evidence) or `unknown` (no issuing event)"),
    ("parent_credential_id", "VARCHAR", "minting credential when known"),
    ("issued_at", "TIMESTAMP", "when issued"),
    ("issued_by_event", "VARCHAR", "event_uid of the issuing event"),
    ("expires_at", "TIMESTAMP", "expiry when known"),
    (
        "principal_uid",
        "VARCHAR",
        (
            "identity it authenticates as: from its issuance, else the identity most of its events "
            "show (a tie goes to the smallest value)"
        ),
    ),
    ("first_seen", "TIMESTAMP", "first use or issue"),
    ("last_seen", "TIMESTAMP", "last use"),
    ("events", "BIGINT", "events signed with it"),
    ("sources", "VARCHAR[]", "sources it appears in"),
    derived=True,
)

PRINCIPALS = _t(
    "principals",
    "Identities: humans, agents, IAM users/roles/sessions, Vault entities, services (derived).",
    ("principal_id", "VARCHAR NOT NULL", "ARN, Vault entity id, agent id, human id"),
    (
        "kind",
        "VARCHAR",
        "`human`, `agent`, `iam-user`, `iam-role`, `assumed-role`, `federated-user`, `root`, `aws-service`, `vault-entity`, `vault-role`",
    ),
    ("name", "VARCHAR", "display name"),
    ("account", "VARCHAR", "AWS account or Vault namespace"),
    ("first_seen", "TIMESTAMP", "first event"),
    ("last_seen", "TIMESTAMP", "last event"),
    ("events", "BIGINT", "events by it"),
    ("attributes", "JSON", "inventory fields for agents, metadata for Vault entities"),
    derived=True,
)

LINKS = _t(
    "links",
    "Edges of the identity graph (derived). Every edge has a reason, a confidence and evidence.",
    (
        "src_kind",
        "VARCHAR NOT NULL",
        "`human`, `agent`, `credential`, `principal`, `resource`, `account`",
    ),
    ("src", "VARCHAR NOT NULL", "source node id as logged"),
    ("dst_kind", "VARCHAR NOT NULL", "node kind"),
    ("dst", "VARCHAR NOT NULL", "destination node id"),
    (
        "kind",
        "VARCHAR NOT NULL",
        "`DELEGATED`, `USES`, `MINTED`, `AUTHENTICATES_AS`, `ACTED_ON`, `SAME_AGENT`",
    ),
    ("reason", "VARCHAR NOT NULL", "why the edge exists, in words"),
    ("confidence", "VARCHAR NOT NULL", "`proven`, `strong` or `inferred`"),
    (
        "evidence",
        "VARCHAR[]",
        "event_uids that prove it (at most 100; `evidence_count` has the total)",
    ),
    ("evidence_count", "BIGINT", "number of events behind the edge"),
    ("first_seen", "TIMESTAMP", "earliest evidence"),
    ("last_seen", "TIMESTAMP", "latest evidence"),
    ("attributes", "JSON", "edge facts: for `ACTED_ON` the actions with counts and denied count"),
    derived=True,
)

PRINCIPAL_CLASSES = _t(
    "principal_classes",
    "Who is a person, who is a workload (derived, `keytrail.graph.principal_class`, "
    "docs/graph.md): one decision per credential and per principal, with a reason, a confidence "
    "and evidence like an edge.",
    ("subject_kind", "VARCHAR NOT NULL", "`credential` or `principal`"),
    (
        "subject",
        "VARCHAR NOT NULL",
        "credential id or principal id as in `credentials` / `principals`",
    ),
    ("class", "VARCHAR NOT NULL", "`person`, `workload`, `agent`, `aws-service` or `unknown`"),
    (
        "detail",
        "VARCHAR",
        (
            "what kind: `console`, `identity-center`, `saml`, `mfa`, `github-actions`, "
            "`kubernetes`, `terraform-cloud`, `gitlab-ci`, `circleci`, `ec2-instance`, `lambda`, `ecs-task`, "
            "`eks-pod-identity`, `vault-<auth method>`, `agent:<id>`, `sdk`, `browser`, ..."
        ),
    ),
    ("person", "VARCHAR", "the person's name when the evidence gives one (human node id)"),
    ("reason", "VARCHAR NOT NULL", "why, in words"),
    ("confidence", "VARCHAR NOT NULL", "`proven`, `strong` or `inferred`"),
    (
        "evidence",
        "VARCHAR[]",
        "event uids (or `inventory:<file>:<record>`) that show it, at most 5",
    ),
    (
        "attributes",
        "JSON",
        (
            "facts used: instance id, web-identity provider and subject, Vault mount/role, "
            "inherited_from"
        ),
    ),
    derived=True,
)


def _evidence(fact: str, shows: str) -> tuple[str, str, str]:
    """A ``credential_facts`` evidence column: the first events (by time, at most 5) showing it."""
    return (f"ev_{fact}" if fact else "ev", "VARCHAR[]", shows)


CREDENTIAL_FACTS = _t(
    "credential_facts",
    "What each credential's CloudTrail events say about who held it (derived, "
    "`keytrail.graph.principal_class`): the person/workload classifier's per-credential input, "
    "kept between ingests because it reads every event of a credential, so a second ingest "
    "recomputes only the credentials its new CloudTrail events signed "
    "(`keytrail.graph.derive_incr`). One row per credential with a CloudTrail event; the `ev*` "
    "columns hold the first event uids (by time, at most 5) that show the fact.",
    ("credential_id", "VARCHAR", "the credential (c)"),
    *(
        _evidence(f, d)
        for f, d in (
            ("", "its first events"),
            ("console", "console sign-in or console session events"),
            ("mfa", "events of an MFA-authenticated session"),
            ("webid", "events of a web-identity session"),
            ("src_id", "events carrying a `sourceIdentity`"),
            ("ec2", "events of an EC2 instance-profile session"),
            ("service", "events by an `AWSService` identity"),
            ("saml", "events by a `SAMLUser` identity"),
            ("sso", "events of an Identity Center (`AWSReservedSSO_*`) role session"),
        )
    ),
    ("webid", "VARCHAR", "the web-identity provider (smallest seen)"),
    ("src_id", "VARCHAR", "the `sourceIdentity` (smallest seen)"),
    ("instance", "VARCHAR", "the EC2 instance id of its session name"),
    ("sso_user", "VARCHAR", "the Identity Center user of its session name"),
    ("actor_uid", "VARCHAR", "its most frequent `actor_uid` (ties: the smallest)"),
    ("actor_name", "VARCHAR", "its most frequent `actor_name`"),
    ("actor_type", "VARCHAR", "its most frequent `actor_type`"),
    ("uas", "VARCHAR[]", "its user-agent families (`sdk`, `cli`, `browser`, `lambda`, ...)"),
    _evidence("browser", "events with a browser or console user agent"),
    _evidence("runtime", "events with a Lambda or ECS runtime user agent"),
    ("runtime", "VARCHAR", "`lambda` or `ecs-task`"),
    derived=True,
)

EVENT_LINKS = _t(
    "event_links",
    (
        "Which agent action caused which API or MCP call (derived, `keytrail.graph.derive_causes`): "
        "the per-call link that lets a trace name the person of one call when several people share "
        "an agent."
    ),
    (
        "cause_uid",
        "VARCHAR NOT NULL",
        "the agent's tool call (OTLP tool span, native `tool_call`, MCP `tools/call`)",
    ),
    ("effect_uid", "VARCHAR NOT NULL", "the Vault, CloudTrail or MCP event it caused"),
    ("kind", "VARCHAR NOT NULL", "`CAUSED`"),
    (
        "rule",
        "VARCHAR NOT NULL",
        (
            "`traceparent` (the call carries the tool span's id), `target` (the tool's arguments name "
            "what the call touched, within the time window), `issued-token` (a login whose token a "
            "caused call used)"
        ),
    ),
    ("reason", "VARCHAR NOT NULL", "why, in words"),
    ("confidence", "VARCHAR NOT NULL", "`proven`, `strong` or `inferred` (docs/graph.md)"),
    (
        "rank",
        "INTEGER",
        "1 for the best candidate cause of the effect; candidates sharing rank 1 are ambiguous",
    ),
    ("attributes", "JSON", "`target`, `delay_ms` (effect time - cause time), `within_span`"),
    derived=True,
)

RANK_CACHE = _t(
    "rank_cache",
    "The analysis snapshot's credential ranking (`keytrail.analysis.snapshot`): what `keytrail credentials` "
    "answers without a window, computed at the end of `keytrail ingest`. Used only while `case_meta` "
    "`snapshot.rank` matches the running keytrail's analysis code.",
    ("credential_id", "VARCHAR NOT NULL", "the credential (c)"),
    ("kind", "VARCHAR", "as in `credentials`"),
    ("origin", "VARCHAR", "as in `credentials`"),
    ("principal_uid", "VARCHAR", "as in `credentials`"),
    ("expires_at", "TIMESTAMP", "as in `credentials`"),
    ("own_events", "BIGINT", "events signed by c itself"),
    ("events", "BIGINT", "events signed by c and every credential minted from it (D(c))"),
    ("t0", "TIMESTAMP", "first event of D(c)"),
    ("t1", "TIMESTAMP", "last event of D(c)"),
    ("writes", "BIGINT", "score term values, see docs/blast-radius.md"),
    ("deletes", "BIGINT", "score term value"),
    ("permission_changes", "BIGINT", "score term value"),
    ("secrets_read", "BIGINT", "score term value"),
    ("denied", "BIGINT", "score term value"),
    ("resources", "BIGINT", "score term value"),
    ("accounts", "BIGINT", "score term value"),
    ("principals", "BIGINT", "score term value"),
    ("credentials_minted", "BIGINT", "score term value"),
    ("derived", "VARCHAR[]", "D(c) without c"),
    ("agents", "VARCHAR[]", "agents with a USES edge into D(c)"),
    ("humans", "VARCHAR[]", "humans who delegated to those agents or to D(c)"),
    (
        "findings",
        "DOUBLE",
        "score term value: finding points on c and, a quarter per hop, on what it minted",
    ),
    ("holder", "VARCHAR", "principal classifier class of c (`principal_classes`)"),
    ("score", "DOUBLE", "the blast-radius score (sort key; recomputed from the terms when read)"),
    derived=True,
)

FINDING_CACHE = _t(
    "finding_cache",
    "The analysis snapshot's findings under the effective configuration, in `keytrail findings` order. Used "
    "only while `case_meta` `snapshot.findings` matches the analysis code and configuration.",
    ("ord", "INTEGER", "position in the sorted list"),
    ("rule", "VARCHAR", "rule id (docs/findings.md)"),
    ("title", "VARCHAR", "one-line title"),
    ("level", "INTEGER", "0 informational .. 4 critical"),
    ("frameworks", "VARCHAR[]", "OWASP NHI / ASI / NIST SP 800-207 ids"),
    ("subjects", "VARCHAR[]", "credentials, agents, humans it is about"),
    ("evidence", "VARCHAR[]", "the sources' own event ids (sample)"),
    ("evidence_uids", "VARCHAR[]", "`events.event_uid` of that sample"),
    ("evidence_count", "BIGINT", "events behind the finding"),
    ("description", "VARCHAR", "what was found"),
    ("recommendation", "VARCHAR", "what to do, naming the key, accessor, lease or user"),
    ("impact", "VARCHAR", "why it matters"),
    ("first_seen", "TIMESTAMP", "earliest evidence"),
    ("last_seen", "TIMESTAMP", "latest evidence"),
    ("details", "JSON", "rule-specific facts"),
    derived=True,
)

RAW_PASS_CACHE = _t(
    "raw_pass_cache",
    "What the findings' one read of every CloudTrail record's JSON found "
    "(`keytrail.analysis.findings.rawcache`): each Sigma rule's matching events and the events "
    "whose record has the console-session flag, kept so a later snapshot reads only the records "
    "of files added since. Used only while `case_meta` `rawpass.cache` matches the rules, the "
    "analysis code and the case's CloudTrail events.",
    (
        "r",
        "INTEGER",
        "the Sigma rule's position in the loaded rule set; -1: the console-session flag",
    ),
    ("event_uid", "VARCHAR", "the matching event"),
    derived=True,
)

TABLES: tuple[Table, ...] = (
    CASE_META,
    EVIDENCE,
    EVENTS,
    EVENT_RESOURCES,
    CREDENTIAL_ISSUES,
    INVENTORY_AGENTS,
    GRANTS,
    REJECTS,
    CREDENTIALS,
    PRINCIPALS,
    LINKS,
    PRINCIPAL_CLASSES,
    CREDENTIAL_FACTS,
    EVENT_LINKS,
    RANK_CACHE,
    FINDING_CACHE,
    RAW_PASS_CACHE,
)

TABLES_BY_NAME = {t.name: t for t in TABLES}

#: Columns added to a table after :data:`MASKED_SINCE`, with the version that added them: a case
#: of an earlier version opened for writing gets them (``ALTER TABLE ... ADD COLUMN``, NULL for its
#: rows) before anything is written (``keytrail.store.case``).
ADDED_COLUMNS: tuple[tuple[int, str, Column], ...] = tuple(
    (3, "events", c) for c in EVENTS.columns if c.name.startswith("ct_")
)

#: Text columns (besides every JSON column) that ingest passes through secret masking
#: (:func:`keytrail.store.sqltext.mask_stored_sql`): where a log's free text lands.
MASKED_TEXT_COLUMNS = frozenset(
    {"raw", "excerpt", "reason", "error_message", "target", "user_agent"}
)


def masked_columns(table: str) -> list[str]:
    """Columns of an ingested table whose values ingest masks before storing them."""
    return [
        c.name
        for c in TABLES_BY_NAME[table].columns
        if c.type == "JSON"
        or (
            c.name in MASKED_TEXT_COLUMNS
            and c.type.startswith("VARCHAR")
            and not c.type.startswith("VARCHAR[]")
        )
    ]


def render_markdown() -> str:
    """The text of docs/schema.md."""
    out = [
        "# Case schema",
        "",
        (
            "A case is one DuckDB file. Generated from `src/keytrail/store/schema.py` "
            "(`python -m keytrail.store.schema > docs/schema.md`); a test keeps them equal."
        ),
        "",
        (
            f"Schema version: {SCHEMA_VERSION}. Times are UTC `TIMESTAMP`s. *Derived* tables are "
            "rebuilt from the ingested ones at the end of every ingest (an ingest of CloudTrail files "
            "into a derived case updates only the rows its events change, to the same rows). "
            "Secret values (session tokens, "
            "secret keys, passwords, raw Vault tokens) are masked at ingest in every JSON column and in "
            f"`{'`, `'.join(sorted(MASKED_TEXT_COLUMNS))}` "
            '(docs/security.md, "Secrets in the case"). '
            "The `ct_*` columns of `events` are not masked: they are filled only where "
            "the masking left the record's `raw` as read, so they hold nothing `raw` "
            "does not. A schema-2 case opened for writing gets them, NULL for its rows."
        ),
        "",
        (
            "Storage: "
            + ", ".join(f"`{t}.{c}`" for t, c in sorted(ZSTD_COLUMNS))
            + " are stored with ZSTD compression (`USING COMPRESSION zstd`: about a seventh of the"
            " default string compression's size for CloudTrail records, and cheaper to write); the"
            " type and every query are unchanged; "
            + ", ".join(f"`{t}.{c}`" for t, c in sorted(UNCOMPRESSED_COLUMNS))
            + " is stored uncompressed (`USING COMPRESSION uncompressed`: a first snapshot"
            " writes it whole, and DuckDB's string compression cost four times the write at"
            " 1M events; a case made before keeps the default)."
        ),
        "",
    ]
    for table in TABLES:
        suffix = " *(derived)*" if table.derived else ""
        out += [
            f"## `{table.name}`{suffix}",
            "",
            table.doc,
            "",
            "| column | type | meaning |",
            "|---|---|---|",
        ]
        for c in table.columns:
            out.append(f"| `{c.name}` | {c.type} | {c.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
