"""A pySigma backend that writes DuckDB SQL over keytrail's CloudTrail field table.

Sigma rules name CloudTrail's own JSON fields (``eventSource``, ``userIdentity.arn``,
``requestParameters.bucketName``). :mod:`.fields` materialises exactly the fields the loaded
rules name as text columns of one table, each column called by the Sigma field name, so a
rule's condition becomes a plain ``WHERE`` over that table. pySigma does the parsing, the
modifiers (``contains``, ``startswith``, ``all``, ``re``, ``cidr``, ``fieldref``, ...) and
the condition tree; this class only chooses the SQL for each leaf.

Sigma semantics kept on purpose:

- string matches are case-insensitive unless the rule says ``|cased`` (``LIKE``): a plain value
  is compared with ``=`` to a lower-cased copy of the column (``"lc:<field>"``), a value with
  wildcards by ``ILIKE``;
  wildcards ``*`` and ``?`` become ``%`` and ``_``, literal ``%``, ``_`` and ``\\`` are escaped;
- a negated condition is true when the field is absent: SQL's ``NOT NULL`` is ``NULL``,
  so every ``NOT`` wraps its operand in ``coalesce(..., false)``;
- a regular expression (``|re``) is ``regexp_matches``; when every match must hold some text
  (:mod:`.regex_literal`: plain patterns only), a ``contains`` of that text comes first, with
  the same answer, so most rows never run the expression;
- numbers and booleans are compared as the text CloudTrail logged (every column is text),
  and numeric comparisons (``|gt`` ...) cast with ``TRY_CAST`` so odd values never fail a
  whole query.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from sigma.conditions import ConditionFieldEqualsValueExpression, ConditionNOT
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import RuleFailureTransformation
from sigma.types import (
    SigmaCasedString,
    SigmaCompareExpression,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from keytrail.analysis.sigma.regex_literal import required_literal

#: Column holding the whole record, for Sigma keyword (field-less) searches.
RAW_COLUMN = "_raw"


def cloudtrail_pipeline() -> ProcessingPipeline:
    """Accept only rules whose logsource is AWS CloudTrail: the table holds nothing else, so a
    rule for another log would silently match nothing; it fails conversion with the reason."""
    return ProcessingPipeline(
        name="keytrail CloudTrail",
        priority=20,
        items=[
            ProcessingItem(
                identifier="keytrail_cloudtrail_only",
                transformation=RuleFailureTransformation(
                    "logsource is not product: aws, service: cloudtrail "
                    "(keytrail holds CloudTrail records only)"
                ),
                rule_conditions=[LogsourceCondition(product="aws", service="cloudtrail")],
                rule_condition_negation=True,
            )
        ],
    )


def like_pattern(value: SigmaString) -> str:
    """A LIKE pattern for a Sigma string: wildcards mapped, the rest literal, quoted for SQL."""
    out: list[str] = []
    for part in value.s:
        if part == SpecialChars.WILDCARD_MULTI:
            out.append("%")
        elif part == SpecialChars.WILDCARD_SINGLE:
            out.append("_")
        elif isinstance(part, str):
            out.append(part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        else:  # a placeholder left unresolved: it cannot be matched literally
            raise ValueError(f"unresolved placeholder in value {value}")
    return "".join(out).replace("'", "''")


def plain_text(value: SigmaString) -> str | None:
    """The string itself when it has no wildcard (so it can be compared with ``=``), else None."""
    if not all(isinstance(p, str) for p in value.s):
        return None
    return "".join(str(p) for p in value.s)


def lower_column(field_name: str) -> str:
    """Name of the lower-cased copy of a field's column (built once, so equality needs no ILIKE)."""
    return "lc:" + field_name


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBBackend(TextQueryBackend):
    """Sigma -> DuckDB ``WHERE`` clauses over columns named by Sigma field names."""

    name: ClassVar[str] = "keytrail DuckDB"
    identifier: ClassVar[str] = "keytrail_duckdb"
    formats: ClassVar[dict[str, str]] = {"default": "DuckDB WHERE clause"}
    requires_pipeline: ClassVar[bool] = False

    group_expression: ClassVar[str] = "({expr})"
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "
    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"

    re_expression: ClassVar[str] = "regexp_matches({field}, '{regex}')"
    re_escape_char = "'"
    re_escape = ["'"]  # noqa: RUF012 - the base class declares it a list
    re_flag_prefix = True

    compare_op_expression: ClassVar[str] = "TRY_CAST({field} AS DOUBLE) {operator} {value}"
    compare_operators: ClassVar[dict[Any, str]] = {
        SigmaCompareExpression.CompareOperators.LT: "<",
        SigmaCompareExpression.CompareOperators.LTE: "<=",
        SigmaCompareExpression.CompareOperators.GT: ">",
        SigmaCompareExpression.CompareOperators.GTE: ">=",
    }
    field_equals_field_expression: ClassVar[str] = "lower({field1}) = lower({field2})"
    field_null_expression: ClassVar[str] = "{field} IS NULL"
    field_exists_expression: ClassVar[str] = "{field} IS NOT NULL"
    field_not_exists_expression: ClassVar[str] = "{field} IS NULL"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields_seen: set[str] = set()
        """Every Sigma field name a converted rule referenced (the columns the table needs)."""
        self.lower_seen: set[str] = set()
        """Fields compared case-insensitively: the table also holds their lower-cased copy."""

    def escape_and_quote_field(self, field_name: str) -> str:
        self.fields_seen.add(field_name)
        return '"' + field_name.replace('"', '""') + '"'

    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Any:
        expr = super().convert_condition_not(cond, state)
        prefix = self.not_token + self.token_separator
        if isinstance(expr, str) and expr.startswith(prefix):
            return f"NOT coalesce({expr[len(prefix) :]}, false)"
        return expr

    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self.escape_and_quote_field(cond.field)
        if not isinstance(cond.value, SigmaString):
            raise TypeError(f"not a string value: {cond.value!r}")
        if isinstance(cond.value, SigmaCasedString):
            return f"{field} LIKE '{like_pattern(cond.value)}' ESCAPE '\\'"
        # Case-insensitive. A plain value compares the lower-cased copy of the column with the
        # lower-cased value by `=` (far cheaper than ILIKE over a million rows); a pattern uses
        # ILIKE on the column itself, since patterns mostly search whole objects
        # (`requestParameters|contains`) whose lower-cased copy would cost more than it saves.
        text = plain_text(cond.value)
        if text is None:
            return f"{field} ILIKE '{like_pattern(cond.value)}' ESCAPE '\\'"
        self.lower_seen.add(cond.field)
        lc = '"' + lower_column(cond.field).replace('"', '""') + '"'
        return f"{lc} = {_sql_text(text.lower())}"

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        field = self.escape_and_quote_field(cond.field)
        if not isinstance(cond.value, SigmaString):
            raise TypeError(f"not a string value: {cond.value!r}")
        return f"{field} LIKE '{like_pattern(cond.value)}' ESCAPE '\\'"

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return f"{self.escape_and_quote_field(cond.field)} = {_sql_text(str(cond.value))}"

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        text = "true" if getattr(cond.value, "boolean", False) else "false"
        return f"lower({self.escape_and_quote_field(cond.field)}) = '{text}'"

    def convert_condition_val_str(self, cond: Any, state: ConversionState) -> Any:
        """A keyword (no field): the string anywhere in the record."""
        value = cond.value
        if not isinstance(value, SigmaString):
            value = SigmaString(str(value))
        pattern = like_pattern(value)
        self.fields_seen.add(RAW_COLUMN)
        return f"\"{RAW_COLUMN}\" ILIKE '%{pattern}%' ESCAPE '\\'"

    def convert_condition_val_num(self, cond: Any, state: ConversionState) -> Any:
        self.fields_seen.add(RAW_COLUMN)
        return f'contains("{RAW_COLUMN}", {_sql_text(str(cond.value))})'

    def convert_condition_field_eq_val_re(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        """``regexp_matches`` behind a ``contains`` of a text every match holds, when there is
        one (:mod:`.regex_literal`): the same truth value, without the regular expression for
        the rows that lack the text."""
        expr = super().convert_condition_field_eq_val_re(cond, state)
        value = cond.value
        if (
            not isinstance(expr, str)
            or not isinstance(value, SigmaRegularExpression)
            or value.flags
        ):
            return expr
        return _prefiltered(self.escape_and_quote_field(cond.field), str(value.regexp), expr)

    def convert_condition_val_re(self, cond: Any, state: ConversionState) -> Any:
        self.fields_seen.add(RAW_COLUMN)
        regexp = str(cond.value.regexp)
        expr = f'regexp_matches("{RAW_COLUMN}", {_sql_text(regexp)})'
        return expr if cond.value.flags else _prefiltered(f'"{RAW_COLUMN}"', regexp, expr)

    def finalize_query_default(
        self, rule: Any, query: Any, index: int, state: ConversionState
    ) -> Any:
        return query


def _prefiltered(column: str, regexp: str, expr: str) -> str:
    """``expr`` (a ``regexp_matches`` of ``regexp`` on ``column``), preceded by a ``contains``
    of the text every match holds when :func:`.regex_literal.required_literal` finds one."""
    text = required_literal(regexp)
    return expr if text is None else f"(contains({column}, {_sql_text(text)}) AND {expr})"


_IDENT = re.compile(r"^[A-Za-z0-9_.\-]+$")


def field_is_safe(name: str) -> bool:
    """Field names become JSON paths: only plain dotted names are accepted."""
    return bool(_IDENT.match(name)) or name == RAW_COLUMN
