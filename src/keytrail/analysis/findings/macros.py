"""The macros the findings' SQL calls, defined on every cursor a findings run reads through.

Temporary macros belong to the cursor that made them; the context tables do not when the
snapshot makes them in its shared database (:mod:`.context`, :mod:`.run`), so each cursor
defines these itself (:func:`define_macros`) and they find the tables by its search path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_MACROS = (
    # One event's caller is a person (the classifier's tables, :meth:`Context._build`).
    """CREATE OR REPLACE TEMP MACRO _kt_person_held(cred, actor) AS coalesce(
           cred IN (SELECT credential_id FROM _kt_person WHERE subject_kind = 'credential')
           OR (actor IN (SELECT credential_id FROM _kt_person WHERE subject_kind = 'principal')
               AND (cred IS NULL OR cred NOT IN (SELECT credential_id FROM _kt_not_person))),
           FALSE)""",
    # AWS principal key: account + role or user name, so an assumed-role session ARN, the
    # role ARN (with or without a path) and an inventory entry compare equal.
    r"""CREATE OR REPLACE TEMP MACRO _kt_pkey(a) AS CASE
          WHEN regexp_matches(a, '^arn:aws[a-z-]*:sts::\d+:assumed-role/')
            THEN regexp_replace(
              a, '^arn:aws[a-z-]*:sts::(\d+):assumed-role/([^/]+).*$', '\1:role/\2')
          WHEN regexp_matches(a, '^arn:aws[a-z-]*:iam::\d+:(role|user)/')
            THEN regexp_replace(
              a, '^arn:aws[a-z-]*:iam::(\d+):(role|user)/(.*/)?([^/]+)$', '\1:\2/\4')
          ELSE a END""",
)


def define_macros(cur: duckdb.DuckDBPyConnection) -> None:
    for sql in _MACROS:
        cur.execute(sql)
