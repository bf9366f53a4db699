"""A text every match of a Sigma regular expression must contain, so a cheap ``contains`` can
spare the regular expression most rows.

``regexp_matches`` over a million CloudTrail records is one of the costliest parts of a rule
that may match any event: SigmaHQ's ``userIdentity.arn|re: '.+:assumed-role/aws:.+'`` cost
about 0.45 CPU-s at 1M events where ``contains(arn, ':assumed-role/aws:')`` costs next to
nothing, and a value without that text cannot match. The backend
(:mod:`keytrail.analysis.sigma.backend`) puts ``contains(field, literal) AND`` before the
regular expression when :func:`required_literal` finds such a text.

Only a small, plain part of RE2's syntax is read: literal characters, punctuation escaped with
a backslash, ``.`` and the quantifiers ``*``, ``+``, ``?``. Anything else (groups, classes,
alternation, counted repetition, escapes such as ``\\d``, flags) gives None: no pre-filter, the
regular expression alone, as before. In a pattern made of these only, every character outside
a quantifier that may skip it is in every match, and characters next to each other in the
pattern with none between them are next to each other in the match; so the longest such run is
a necessary condition, and ``contains(...) AND regexp_matches(...)`` is true, false or NULL
exactly when ``regexp_matches(...)`` is.
"""

from __future__ import annotations

#: Punctuation a backslash makes literal (RE2 reads every escaped ASCII punctuation character
#: as itself; these are the ones a rule writes).
_ESCAPABLE = frozenset(".^$*+?()[]{}|\\/-:'\"#@!%&,;<=>_`~ ")
#: Characters that end the plain part of the syntax read here.
_UNSUPPORTED = frozenset("()[]{}|")
#: A shorter text saves too little to be worth a second test.
MIN_LENGTH = 3


def required_literal(pattern: str) -> str | None:
    """The longest text every match of ``pattern`` (RE2, no flags) contains, when the pattern
    is plain enough to tell (see the module's docstring) and the text has at least
    :data:`MIN_LENGTH` characters; else None."""
    runs: list[str] = []
    run: list[str] = []
    last_literal = False  # whether the last atom read is the last character of `run`
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c in _UNSUPPORTED:
            return None
        if c == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _ESCAPABLE:
                return None
            run.append(pattern[i + 1])
            last_literal = True
            i += 2
            continue
        if c in "*?":
            if last_literal:
                run.pop()  # the character before may not be in the match
            runs.append("".join(run))
            run, last_literal = [], False
        elif c == "+":
            runs.append("".join(run))  # the character repeats: what follows is not next to it
            run, last_literal = [], False
        elif c in ".^$":
            runs.append("".join(run))
            run, last_literal = [], False
        else:
            run.append(c)
            last_literal = True
        i += 1
    runs.append("".join(run))
    best = max(runs, key=len)
    return best if len(best) >= MIN_LENGTH else None
