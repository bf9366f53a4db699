"""Treat log text as hostile: neutralise it for terminals and CSV, mask secrets.

Every string in a log may have been written by an attacker. The TUI, the CLI's
tables, the reports and the exports all pass log text through these functions:

- :func:`keytrail.safetext.shown` (not here) shows ANSI/OSC escape sequences, control and
  zero-width/bidi characters as their escapes (``\\x1b``, ``\\u200b``), so text is
  displayed, never obeyed, and nothing in it is hidden;
- :func:`csv_safe` stops spreadsheet formula injection (OWASP: prefix ``'``);
- :func:`mask_secrets` / :func:`mask_record` hide secrets that logs sometimes carry
  (STS session tokens, secret access keys, passwords, raw Vault tokens) unless the
  user asks to reveal them;
- :data:`STORED_RULES` / :func:`mask_stored` are the rules ingest applies before anything is
  written to a case (``keytrail.store.sqltext.mask_stored_sql`` runs the same patterns in
  DuckDB), so secrets never reach the case file and no query can return them
  (docs/security.md, "Secrets in the case").
"""

from __future__ import annotations

import re
from typing import Any

MASK = "****"

#: Keys whose values are secrets wherever they appear (case-insensitive).
SECRET_KEYS = frozenset(
    k.lower()
    for k in (
        "sessionToken",
        "secretAccessKey",
        "secret_key",
        "secret_access_key",
        "security_token",
        "password",
        "passwd",
        "client_token",
        "clientToken",
        "token",
        "secret_id",
        "private_key",
        "privateKey",
        "apiKey",
        "api_key",
        "authorization",
        "x-amz-security-token",
        "refresh_token",
        "access_token",
        "id_token",
        "accessToken",
        "refreshToken",
        "idToken",
        "newPassword",
        "oldPassword",
        "secretString",
        "secretBinary",
        "clientSecret",
        "tokenValue",
    )
)

_SECRET_VALUE = re.compile(
    r"(?P<key>\"?(?:sessionToken|secretAccessKey|SecretAccessKey|SessionToken|password|client_token|"
    r"secret_id|api_key|apiKey|access_token|refresh_token|id_token)\"?\s*[:=]\s*\"?)(?P<val>[^\"\s,}]+)",
)
#: Vault service tokens (hvs./s.), batch tokens (hvb./b.), recovery tokens (hvr.) that are not HMACs.
_VAULT_TOKEN = re.compile(r"\b(hv[sbr]\.[A-Za-z0-9_-]{20,}|[sb]\.[A-Za-z0-9]{24,})")


def csv_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not evaluate (cells starting ``= + - @``, tab or CR get a ``'``).

    Control and bidi characters in text are escaped first (:func:`keytrail.safetext.csv_text`).
    """
    if not isinstance(value, str):
        return value
    from keytrail.safetext import csv_text

    value = csv_text(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def mask_secrets(text: str) -> str:
    """Mask secret values inside a text (a raw JSON record, a log line)."""
    text = _SECRET_VALUE.sub(lambda m: m.group("key") + MASK, text)
    return _VAULT_TOKEN.sub(MASK, text)


def mask_record(obj: Any) -> Any:
    """A copy of a parsed JSON record with secret-named keys masked (HMAC'd values are kept)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if (
                isinstance(k, str)
                and k.lower() in SECRET_KEYS
                and isinstance(v, str)
                and v
                and not v.startswith("hmac-sha256:")
            ):
                out[k] = MASK
            else:
                out[k] = mask_record(v)
        return out
    if isinstance(obj, list):
        return [mask_record(v) for v in obj]
    if isinstance(obj, str):
        return _VAULT_TOKEN.sub(MASK, obj)
    return obj


# -- masking at ingest ---------------------------------------------------------------------------
# The patterns below are the single definition of what ingest removes from stored text. They are
# written in the syntax Python's ``re`` and DuckDB's RE2 share (no look-around, no back-references),
# so the bulk paths run them in SQL unchanged. Applied to JSON text they keep it valid JSON: they only
# rewrite characters inside string literals and never touch a quote or an escape outside the value.

HMAC_PREFIX = "hmac-sha256:"


def _keys() -> str:
    return "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=lambda k: (-len(k), k)))


def _body_not_hmac() -> str:
    """A non-empty JSON string body (escapes allowed) that does not start with ``hmac-sha256:``.

    Vault HMACs every secret in its audit log; an HMAC is evidence (``sys/audit-hash`` turns a
    known token into it), never a secret, so it is kept, as :func:`mask_record` keeps it. RE2 has
    no look-ahead: the body is spelled as "diverges from the prefix at position i" for each i, or
    is a proper prefix of it."""
    ch = r'(?:[^"\\]|\\.)'
    alts = [
        re.escape(HMAC_PREFIX[:i]) + r'(?:[^"\\' + re.escape(HMAC_PREFIX[i]) + r"]|\\.)" + ch + "*"
        for i in range(len(HMAC_PREFIX))
    ]
    alts += [re.escape(HMAC_PREFIX[:i]) for i in range(1, len(HMAC_PREFIX))]
    return "(?:" + "|".join(alts) + ")"


#: ``(pattern, replacement)`` pairs applied in order to every stored text column (``\1``, ``\2`` are
#: groups). 1: a JSON member ``"<secret key>": "<string>"`` (any key case; an excerpt cut inside the
#: value is masked to its end); 2: the same inside a JSON document embedded as a string
#: (``{\"password\": \"...\"}``); 3: ``key=value`` / ``key: value`` in free text (command lines, URLs,
#: headers; an ``Authorization`` scheme word is kept); 4: raw Vault tokens anywhere.
STORED_RULES: tuple[tuple[str, str], ...] = (
    (f'(?i)("(?:{_keys()})"\\s*:\\s*"){_body_not_hmac()}("|$)', "\\1" + MASK + "\\2"),
    (
        f'(?i)(\\\\"(?:{_keys()})\\\\"\\s*:\\s*\\\\")(?:[^"\\\\]|\\\\[^"])+(\\\\"|$)',
        "\\1" + MASK + "\\2",
    ),
    (
        f'(?i)(\\b(?:{_keys()})\\s*[:=]\\s*(?:\\\\?")?(?:(?:bearer|basic|token)\\s+)?)[^\\s"\x27\\\\,;&}}]+',
        "\\1" + MASK,
    ),
    (_VAULT_TOKEN.pattern, MASK),
)

#: Necessary for rule 4 (every Vault token has a dot and 20 token characters after it). RE2 finds it
#: at memchr speed from the literal dot, while rule 4 itself (``\b[sb]\.``) is tried at every s and b:
#: the SQL runs rule 4 only on values that contain it.
VAULT_TOKEN_HINT = r"\.[A-Za-z0-9_-]{20}"

#: Necessary for rules 1-3: each needs a secret key followed (after an optional ``"`` or ``\"`` and
#: blanks) by ``:`` or ``=``. A bare key word is common in logs (``vault-token-...`` role session
#: names matched 84% of generated CloudTrail records); the key *as a key* is rare, so the three
#: rewrites (each a full scan plus a copy of the text) run on few values.
KEY_RULES_HINT = f'(?i)(?:{_keys()})(?:\\\\?")?\\s*[:=]'


def _reversed_key_hint(sep: str, quoted: bool = True) -> str:
    keys = sorted(SECRET_KEYS, key=lambda k: (-len(k), k))
    quote = '(?:"\\\\?)?' if quoted else ""
    return f"{sep}\\s*{quote}(?i:" + "|".join(re.escape(k[::-1]) for k in keys) + ")"


#: :data:`KEY_RULES_HINT` for the reversed text, one pattern per separator: an ASCII text matches
#: KEY_RULES_HINT exactly when its reverse matches one of these (a regular language reversed:
#: separator, blanks, optional ``"`` or ``"\``, the key spelled backwards). Reversed, each pattern
#: starts with a literal byte, so RE2 jumps from one ``:`` (or ``=``) to the next at memchr speed
#: instead of stepping its automaton through every byte: on 472 MB of CloudTrail records the test
#: costs 0.7 CPU-s with the reversal and an ASCII test instead of 1.8 (the 29-key
#: case-insensitive alternation has no literal RE2 can search for). Only for ASCII text: DuckDB
#: reverses other text by grapheme clusters (a prefix mark such as U+0600 would move), and
#: ``(?i)`` folds non-ASCII ``ſ`` and the Kelvin sign into ``s`` and ``k``; such text takes
#: :data:`KEY_RULES_HINT` itself.
KEY_RULES_HINT_REVERSED: tuple[str, ...] = tuple(_reversed_key_hint(sep) for sep in ":=")

#: Necessary for rule 3 alone (a key followed by blanks and ``:`` or ``=``, no quote between), for
#: the reversed ASCII text like :data:`KEY_RULES_HINT_REVERSED`. Vault audit lines all match the
#: hint (``"client_token":``) but almost never rule 3, whose case-insensitive alternation costs a
#: full automaton scan: the test spares them 40% of their masking.
KEY_VALUE_HINT_REVERSED: tuple[str, ...] = tuple(_reversed_key_hint(s, quoted=False) for s in ":=")

#: Cheap test run first: text that does not match it cannot match any rule (skips the rewrite).
STORED_PREFILTER = f"{KEY_RULES_HINT}|(?i:\\b(?:hv[sbr]|[sb])\\.[A-Za-z0-9]{{20}})"

_STORED = tuple((re.compile(p), r) for p, r in STORED_RULES)
_STORED_MAYBE = re.compile(STORED_PREFILTER)


def mask_stored(text: str) -> str:
    """``text`` as ingest stores it: :data:`STORED_RULES` applied (Python twin of the SQL masking)."""
    if not _STORED_MAYBE.search(text):
        return text
    for rx, repl in _STORED:
        text = rx.sub(repl, text)
    return text
