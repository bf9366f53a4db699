"""Serving the explorer in a browser on loopback (textual-serve)."""
