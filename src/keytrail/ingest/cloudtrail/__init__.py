"""CloudTrail adapters: event files (JSON, console CSV: adapter, parse, sql) and digest files
(digest)."""
