"""Short display of long ids (76-character Vault HMACs, ARNs) for narrow tables.

Display only: every place that shortens an id keeps the full one for copying (``y``
in the explorer) and for lookups, and every command accepts a unique prefix of an id
(:func:`keytrail.analysis.lookup.expand_prefix`), so the short form can be typed back.
"""

from __future__ import annotations

#: Vault audit logs HMAC every accessor and token: ``hmac-sha256:<64 hex>``.
HMAC_PREFIX = "hmac-sha256:"
#: The shorthand the displays use for :data:`HMAC_PREFIX` (also accepted as input).
HMAC_SHORT = "hmac:"


def short_id(ident: str, width: int = 14) -> str:
    """``hmac-sha256:4b900e35…`` as ``hmac:4b900e35…``; other ids over ``width`` cut in the middle.

    A Vault HMAC keeps ``width - 6`` hex digits (at least 8): the start of the hex is
    what tells two HMACs apart and a unique prefix of it is accepted back as input.
    """
    if ident.startswith(HMAC_PREFIX):
        return HMAC_SHORT + ident[len(HMAC_PREFIX) :][: max(8, width - 6)] + "…"
    return middle(ident, width)


def middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle with ``…``.

    The start of an id (its kind, account) and its end (the unique suffix of an ARN,
    a key id's last characters) both matter; the middle is what can go.
    """
    if len(text) <= width or width < 5:
        return text if len(text) <= width else text[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def expand_short(ident: str) -> str:
    """The input form of a displayed id: ``hmac:…`` back to ``hmac-sha256:…``, the ellipsis dropped."""
    ident = ident.strip().rstrip("…")
    if ident.startswith(HMAC_SHORT):
        return HMAC_PREFIX + ident[len(HMAC_SHORT) :]
    return ident
