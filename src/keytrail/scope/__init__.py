"""``keytrail scope``: cut the records of an investigation out of a trail too big to ingest.

From seeds (credentials, principals, agents, humans) to the MINTED closure around them, then
the original records of every event signed by or issuing a credential of the closure, with a
manifest (chain of custody). Engines: :mod:`keytrail.scope.engine_duckdb` (default, one machine)
and :mod:`keytrail.scope.engine_spark` (PySpark). It sits beside ``analysis`` in the layer order:
it walks the one MINTED closure of :mod:`keytrail.analysis.lineage`; the CLI calls it.
"""
