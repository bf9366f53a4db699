"""Optional engine functions: the explorer degrades view by view when one is missing.

The analysis and report layers are separate packages; a build without one of them
still opens every case. :func:`engine` returns the callable or ``None``, and the
screen says which module is missing instead of inventing an answer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

RANK = ("keytrail.analysis.answers", "rank_credentials")
RANK_PAGE = ("keytrail.analysis.answers", "rank_page")
BLAST = ("keytrail.analysis.answers", "blast_radius")
TRACE = ("keytrail.analysis.delegation", "trace_event")
FINDINGS = ("keytrail.analysis.answers", "run_findings")
LEVEL_COUNTS = ("keytrail.analysis.answers", "level_counts")
POTENTIAL = ("keytrail.analysis.potential", "potential_blast_radius")
BASELINE = ("keytrail.analysis.baseline", "baseline")
REPORT = ("keytrail.report.content", "build_report")
REPORT_HTML = ("keytrail.report.html", "render_html")


def engine(spec: tuple[str, str]) -> Callable[..., Any] | None:
    """The function ``spec = (module, name)``, or ``None`` when the module is not importable."""
    module, name = spec
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def as_doc(result: Any) -> Any:
    """The ``--json`` document of an analysis result (``as_dict()``), lists mapped element-wise."""
    if isinstance(result, list):
        return [as_doc(r) for r in result]
    if hasattr(result, "as_dict"):
        return result.as_dict()
    return result
