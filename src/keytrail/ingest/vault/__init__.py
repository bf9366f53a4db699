"""Vault / OpenBao audit adapter: device framing, row building and credential minting
(adapter, framing, rows, mint, engines)."""
