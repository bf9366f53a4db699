"""Vault / OpenBao audit adapter: device framing, row building, credential minting (adapter, framing, rows, mint)."""
