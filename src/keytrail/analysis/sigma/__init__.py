"""Community Sigma rules (SigmaHQ, DRL 1.1) run offline over a case's CloudTrail records.

:mod:`.rules` loads and converts a rule folder with pySigma (:mod:`.backend` is the DuckDB
backend), :mod:`.fields` builds the table of CloudTrail fields the rules name, and
``keytrail.analysis.findings.sigma`` turns the hits into findings joined to the graph.
"""
