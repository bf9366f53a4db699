"""SQL text shared by ingest and reports: literals, identifiers and secret masking in DuckDB.

Bulk paths (CloudTrail ingest, exports) mask secrets in SQL instead of a Python loop per value,
and they must mask exactly what :mod:`keytrail.redact` masks on screen. So every pattern here is
derived from ``keytrail.redact`` (RE2 accepts its regular expressions unchanged), never written
again: :func:`mask_json_sql` masks string values under :data:`keytrail.redact.SECRET_KEYS` in JSON
text and keeps it valid JSON; :func:`mask_text_sql` masks free text as
:func:`keytrail.redact.mask_secrets` does. Both test cheaply whether a value can hold a secret at
all before running the replacement, which keeps masking off the ingest hot path's cost.
``tests/unit/test_export_safety.py`` and ``tests/unit/test_sqltext.py`` check the agreement.
"""

from __future__ import annotations

import re

from keytrail import redact


def quote_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A SQL identifier (a column name as the case or a user gave it)."""
    return '"' + name.replace('"', '""') + '"'


def _key_alternation() -> str:
    return "|".join(re.escape(k) for k in sorted(redact.SECRET_KEYS))


def json_secret_pattern() -> str:
    """RE2 pattern for a JSON member ``"<secret key>": "<non-empty string>"`` (any key case, escapes inside
    the string allowed): group 1 is the key up to the opening quote of the value, group 2 its closing quote.
    An empty value stays empty, as :func:`keytrail.redact.mask_record` leaves it: it hides nothing."""
    return f'(?i)("(?:{_key_alternation()})"\\s*:\\s*")(?:[^"\\\\]|\\\\.)+(")'


def mask_json_sql(expr: str) -> str:
    """``expr`` (JSON text, VARCHAR or JSON) with every string value under a secret key replaced by
    :data:`keytrail.redact.MASK`; still valid JSON, NULL stays NULL. Keys and other values are untouched.
    Unlike :func:`keytrail.redact.mask_record`, an ``hmac-sha256:`` value is masked too (RE2 has no
    look-ahead to spare it), which hides nothing a responder needs: the raw record keeps it."""
    maybe = quote_literal(f'(?i)"(?:{_key_alternation()})"')
    mask = quote_literal("\\1" + redact.MASK + "\\2")
    return (
        f"(CASE WHEN {expr} IS NULL THEN NULL WHEN regexp_matches({expr}, {maybe}) "
        f"THEN regexp_replace({expr}, {quote_literal(json_secret_pattern())}, {mask}, 'g') ELSE {expr} END)"
    )


def _must_contain() -> tuple[str, ...]:
    """Literal fragments at least one of which every free-text secret match contains (a cheap pre-filter).

    The key names come from the alternatives in ``redact._SECRET_VALUE``; ``s.``/``b.``/``hvr.``
    cover every Vault token form in ``redact._VAULT_TOKEN``."""
    keys = re.search(r"\(\?:([A-Za-z_|]+)\)", redact._SECRET_VALUE.pattern)
    names = tuple(keys.group(1).split("|")) if keys else ()
    return (*names, "s.", "b.", "hvr.")


def mask_text_sql(expr: str) -> str:
    """``expr`` (VARCHAR) with secrets masked as :func:`keytrail.redact.mask_secrets` does.

    The regular expressions only run on values that contain one of :func:`_must_contain`, which
    makes masking a large export several times cheaper."""
    secret = quote_literal(redact._SECRET_VALUE.pattern)
    vault = quote_literal(redact._VAULT_TOKEN.pattern)
    mask = quote_literal(redact.MASK)
    maybe = " OR ".join(f"contains({expr}, {quote_literal(f)})" for f in _must_contain())
    return (
        f"CASE WHEN {maybe} THEN regexp_replace(regexp_replace({expr}, {secret}, '\\1' || {mask}, 'g'), "
        f"{vault}, {mask}, 'g') ELSE {expr} END"
    )


def mask_stored_sql(expr: str) -> str:
    """``expr`` (VARCHAR or JSON text) as ingest stores it: :data:`keytrail.redact.STORED_RULES` applied
    in DuckDB. JSON stays valid JSON, NULL stays NULL; :func:`keytrail.redact.mask_stored` is the Python
    twin (tests hold them equal).

    The Vault-token rule runs first and only where :data:`keytrail.redact.VAULT_TOKEN_HINT` matches
    (same result: the rules touch disjoint text or agree on it); on 157 MB of CloudTrail records that
    takes the masking from about 3 s to 2 s of CPU. The key rules run only where
    :data:`keytrail.redact.KEY_RULES_HINT` (a key used as a key) matches: one scan instead of three
    rewrites for the text that holds no secret (3.4 s to under 1 s of CPU on 472 MB of records),
    and that scan runs over the reversed text (:func:`key_rules_hint_sql`, 1.8 to 0.7 CPU-s)."""
    text = f"CAST({expr} AS VARCHAR)"
    (*key_rules, (vault, vault_repl)) = redact.STORED_RULES
    out = (
        f"(CASE WHEN regexp_matches({text}, {quote_literal(redact.VAULT_TOKEN_HINT)}) "
        f"THEN regexp_replace({text}, {quote_literal(vault)}, {quote_literal(vault_repl)}, 'g') ELSE {text} END)"
    )
    # Rule 2 (an escaped ``\"key\"``) runs only on text holding ``\"``, rule 3 only where its own
    # reversed test matches. Both are tested on the original text: the rules before them only put
    # ``****`` in place of values, and neither test can match a ``*``, so a match in their output
    # is a match in the original.
    gates: tuple[str, ...] = ("true", f"contains({text}, '\\\"')")
    gates += (_reversed_test_sql(text, redact.KEY_VALUE_HINT_REVERSED, "true"),)
    keyed = out
    for (pattern, repl), gate in zip(key_rules, gates, strict=True):
        ruled = f"regexp_replace({keyed}, {quote_literal(pattern)}, {quote_literal(repl)}, 'g')"
        keyed = ruled if gate == "true" else f"(CASE WHEN {gate} THEN {ruled} ELSE {keyed} END)"
    return f"(CASE WHEN {key_rules_hint_sql(text)} THEN {keyed} ELSE {out} END)"


def key_rules_hint_sql(text: str) -> str:
    """Whether ``text`` (VARCHAR) matches :data:`keytrail.redact.KEY_RULES_HINT`, the cheap way
    for ASCII text: its reverse against :data:`keytrail.redact.KEY_RULES_HINT_REVERSED` (a literal
    first byte RE2 finds with memchr). ``strlen = length`` (bytes = characters) is the ASCII test;
    other text is tested with the hint itself. Same answer either way (tests hold them equal)."""
    hint = quote_literal(redact.KEY_RULES_HINT)
    return _reversed_test_sql(
        text, redact.KEY_RULES_HINT_REVERSED, f"regexp_matches({text}, {hint})"
    )


def _reversed_test_sql(text: str, patterns: tuple[str, ...], otherwise: str) -> str:
    """``patterns`` (the ``:`` one, then the ``=`` one) over ``reverse(text)`` for ASCII text,
    ``otherwise`` for other text."""
    rev = f"reverse({text})"
    colon, equals = (quote_literal(p) for p in patterns)
    # ``=`` is rare in logs: contains() (memmem) spares most texts the second regular expression.
    fast = (
        f"regexp_matches({rev}, {colon}) OR "
        f"(contains({text}, '=') AND regexp_matches({rev}, {equals}))"
    )
    return f"(CASE WHEN strlen({text}) = length({text}) THEN ({fast}) ELSE {otherwise} END)"
