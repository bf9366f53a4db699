"""The terminal explorer (``keytrail tui``): the only package that imports textual.

Every number on screen comes from the store or from ``keytrail.analysis``; widgets
only display. DuckDB work runs in thread workers with their own cursors.
"""
