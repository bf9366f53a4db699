"""The explorer's screens; each loads its data in thread workers (see :mod:`.base`)."""
