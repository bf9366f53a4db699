"""Finding levels, ordered so they compare: informational < low < medium < high < critical.

One ordered type lets ``--min-level`` and ``--fail-on`` filter with ``>=`` and lets
every front end sort findings the same way. Parsing is strict: an unknown level is
an error that lists the allowed values, never a silent default.
"""

from __future__ import annotations

from enum import IntEnum

from keytrail.errors import UsageError

#: Short forms users type; mapped onto the canonical names.
_ALIASES = {"info": "informational", "med": "medium", "crit": "critical"}


class Level(IntEnum):
    INFORMATIONAL = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in JSON, TOML and on screen."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, value: str | int | Level, *, what: str = "level") -> Level:
        """Parse ``value`` (a name such as ``high``, case-insensitive, or a Level).

        Raises:
            UsageError: the value is not a level; the message names ``what`` and the allowed values.
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            text = _ALIASES.get(text, text)
            for level in cls:
                if level.label == text:
                    return level
        raise UsageError(
            f"{what}: {value!r} is not a level; allowed values: {', '.join(allowed_levels())}",
            "bad level",
        )


def allowed_levels() -> list[str]:
    return [level.label for level in Level]
