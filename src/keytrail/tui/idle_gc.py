"""Python's full garbage collections moved to the moments the responder is not typing.

At 1M events the explorer holds hundreds of thousands of Python containers (the whole ranking of
tens of thousands of credentials with their score terms, the views' documents and widgets), and
the workers that answer a view allocate as many again. CPython's cycle collector then runs full
(oldest-generation) collections on its own schedule, each one walking every tracked object with
the GIL held: 0.4-0.7 s each, 26 of them in the benchmark's run of five credential opens
(``benchmarks/run.py --tui-only``), so an Enter or PageDown that met one took 0.6-1 s instead of
0.1 s (docs/performance.md, session 19).

So while the app runs, the young generations are collected as before (they are small and
cheap), the oldest is never collected on its own (its threshold out of reach), and
:meth:`IdleCollector.tick`, called every second by the app, collects it once the user has been
idle for :data:`IDLE_SECONDS`, no worker is running and something was allocated since the last
full collection. A
key pressed during that collection waits for it, as it would have for CPython's own; it just
happens far less often and not while a view is loading in answer to a key.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

#: Seconds without input before a full collection may run.
IDLE_SECONDS = 2.0

#: The oldest generation's threshold while the app runs: never reached by counting.
_NEVER = 1 << 30


class IdleCollector:
    """Full collections at idle moments (``busy``: whether a view is loading; ``clock``:
    seconds, monotonic, given in tests)."""

    def __init__(
        self,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy = busy
        self.clock = clock
        self.last_input = clock()
        self.saved: tuple[int, int, int] | None = None
        self.collections = 0

    def start(self) -> None:
        """Keep the young generations' thresholds; put the oldest's out of reach."""
        if self.saved is None:
            self.saved = gc.get_threshold()
            young, middle, _ = self.saved
            gc.set_threshold(young, middle, _NEVER)

    def stop(self) -> None:
        """The thresholds as they were before :meth:`start`."""
        if self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None

    def touch(self) -> None:
        """The user did something (a key, the mouse)."""
        self.last_input = self.clock()

    def tick(self) -> bool:
        """Collect in full if the user is idle, no view is loading (``busy``: a collection
        would hold its worker's Python for as long) and the middle generation was collected
        since the last full collection (so objects reached the oldest); ``True`` when it did."""
        if not gc.isenabled() or self.clock() - self.last_input < IDLE_SECONDS:
            return False
        if self.busy():
            return False
        if gc.get_count()[2] == 0:  # nothing promoted since the last full collection
            return False
        gc.collect()
        self.collections += 1
        return True
