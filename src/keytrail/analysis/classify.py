"""SQL predicates that classify an event's action: write, delete, permission change, secret read.

Classification is by action name, in SQL, so it runs over millions of events in one
pass. The rules are documented in ``docs/blast-radius.md``; every predicate reads
the ``events`` columns of an alias ``e``.
"""

from __future__ import annotations

_WRITE_VERBS = (
    "Put|Create|Update|Delete|Attach|Detach|Modify|Add|Remove|Set|Tag|Untag|Upload|Copy|Restore|Replace|"
    "Enable|Disable|Start|Stop|Terminate|Run|Reboot|Associate|Disassociate|Import|Revoke|Authorize|Change|"
    "Reset|Register|Deregister|Write|Rotate|Schedule|Cancel|Complete|Abort|Deactivate|Activate|Upgrade|Merge"
)

AWS = "e.source = 'cloudtrail'"
VAULT = "e.source = 'vault'"
# Vault paths without the ``vault:`` prefix and namespace; ``auth/`` paths are logins and token
# creation (credential mints, counted as such), not writes.
_VPATH = "regexp_replace(coalesce(e.target, ''), '^vault:', '')"

WRITE = f"""(
  ({AWS} AND regexp_matches(coalesce(e.operation, ''), '^({_WRITE_VERBS})'))
  OR ({VAULT} AND e.operation IN ('create', 'update', 'delete') AND NOT starts_with({_VPATH}, 'auth/'))
)"""

DELETE = f"""(
  ({AWS} AND regexp_matches(coalesce(e.operation, ''), '^(Delete|Remove|Terminate|Detach|Deactivate|Revoke)'))
  OR ({VAULT} AND e.operation = 'delete')
)"""

PERMISSION = f"""(
  ({AWS} AND regexp_matches(coalesce(e.operation, ''), '^({_WRITE_VERBS})') AND (
     e.service IN ('iam', 'organizations', 'sso', 'sso-directory', 'identitystore')
     OR (e.service = 'kms' AND regexp_matches(e.operation, '(Policy|Grant)'))
     OR regexp_matches(e.operation, '(Policy|Acl|Permission|Grant|PublicAccessBlock|SecurityGroup)')))
  OR ({VAULT} AND e.operation IN ('create', 'update', 'delete') AND (
     regexp_matches({_VPATH}, '^(sys/(policy|policies|auth|mounts|audit)|identity/)')
     OR regexp_matches({_VPATH}, '^auth/.+/(role|roles|users|groups|map)/')))
)"""

SECRET_READ = f"""(
  (e.action IN ('secretsmanager:GetSecretValue', 'secretsmanager:BatchGetSecretValue'))
  OR (e.action IN ('ssm:GetParameter', 'ssm:GetParameters', 'ssm:GetParametersByPath')
      AND coalesce(
        try_cast(json_extract_string(e.details, '$.requestParameters.withDecryption') AS BOOLEAN),
        try_cast(json_extract_string(e.details, '$.withDecryption') AS BOOLEAN),
        false))
  OR ({VAULT} AND e.operation = 'read'
      AND NOT regexp_matches({_VPATH}, '^(sys/|auth/|identity/|cubbyhole/)'))
)"""

DENIED = "e.outcome = 'denied'"
SUCCESS = "coalesce(e.outcome, 'unknown') IN ('success', 'unknown')"

#: ``(name, predicate)`` for the counters computed per credential.
COUNTERS: tuple[tuple[str, str], ...] = (
    ("writes", f"{WRITE} AND {SUCCESS}"),
    ("deletes", f"{DELETE} AND {SUCCESS}"),
    ("permission_changes", f"{PERMISSION} AND {SUCCESS}"),
    ("secrets_read", f"{SECRET_READ} AND {SUCCESS}"),
    ("denied", DENIED),
)


def counter_columns() -> str:
    """``count(*) FILTER (WHERE ...) AS name`` for every counter."""
    return ",\n".join(f"count(*) FILTER (WHERE {pred}) AS {name}" for name, pred in COUNTERS)
