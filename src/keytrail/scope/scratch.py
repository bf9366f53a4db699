"""The scratch case of a scope's pass 1, held in memory.

Pass 1 writes the narrow rows of the whole trail (:mod:`keytrail.scope.narrow`,
:mod:`keytrail.scope.no_raw`) only to walk them once and throw them away. In a case file each
batch's transaction is logged, compressed and checkpointed to disk (about 6.5 of 29 CPU-s at 1M
events). A named in-memory DuckDB database costs none of that; the runner and the adapters see
an ordinary case (:meth:`keytrail.store.case.CaseStore.open` of its name) because DuckDB hands
every connection to one ``:memory:NAME`` in a process the same database.

Memory stays bounded: the database has the writer's memory limit and spills to ``spill``
(a temporary directory) beyond it, so a trail bigger than memory is slower, not fatal; and it
merges small row groups as DuckDB does by default (the case writer does not).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

from keytrail.store.case import CaseStore
from keytrail.store.sqltext import quote_literal

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


#: DuckDB's own default (the case writer's is ``store.case.MAX_VACUUM_TASKS``).
SCRATCH_VACUUM_TASKS = 100


@contextmanager
def memory_case(spill: Path) -> Iterator[str]:
    """The name of a new in-memory case (``:memory:...``, for :meth:`CaseStore.open`), alive
    while the block runs and then as long as a connection opened inside it stays open.

    The first connection is a :class:`CaseStore` (its config: the writer's memory limit), so
    every later :meth:`CaseStore.open` of the name joins the same database."""
    name = f":memory:keytrail-scope-{uuid.uuid4().hex}"
    hold = CaseStore.open(name, read_only=False, create=True)
    try:
        hold.con.execute(f"SET temp_directory = {quote_literal(str(spill))}")
        # The case writer turns DuckDB's row-group merges off (``MAX_VACUUM_TASKS``: they cost
        # CPU at every checkpoint of a file). In memory there is no checkpoint to pay for, and
        # unmerged groups held more: 1.23 against 0.97 GiB peak RSS at 1M events, same CPU.
        hold.con.execute(f"SET max_vacuum_tasks = {SCRATCH_VACUUM_TASKS}")
        yield name
    finally:
        hold.con.close()
