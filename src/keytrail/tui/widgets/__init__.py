"""Widgets of the explorer: literal text cells, a generic result view, a paged table."""
