"""Full garbage collections only while the user is idle (keytrail.tui.idle_gc): the policy with
a given clock, and the app holding it while it runs and giving the thresholds back after."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from keytrail.tui.app import KeytrailApp
from keytrail.tui.idle_gc import IDLE_SECONDS, IdleCollector
from tests.tui.conftest import run, settle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def thresholds() -> Any:
    saved = gc.get_threshold()
    yield saved
    gc.set_threshold(*saved)


def _promote() -> None:
    """Objects reach the oldest generation: a collection of the middle one counts there."""
    keep = [[] for _ in range(10)]  # noqa: F841 - alive through the collection
    gc.collect(1)
    assert gc.get_count()[2] > 0


def test_the_oldest_generation_waits_for_idle_and_the_thresholds_come_back(
    thresholds: tuple[int, int, int],
) -> None:
    clock, busy = Clock(), [False]
    idle = IdleCollector(busy=lambda: busy[0], clock=clock)
    idle.start()
    young, middle, oldest = gc.get_threshold()
    assert (young, middle) == thresholds[:2] and oldest > 1 << 20  # never reached by counting
    _promote()
    idle.touch()
    clock.now += IDLE_SECONDS / 2
    assert not idle.tick()  # the user typed a moment ago
    assert gc.get_count()[2] > 0
    clock.now += IDLE_SECONDS
    busy[0] = True
    assert not idle.tick()  # a view is loading
    busy[0] = False
    assert idle.tick() and idle.collections == 1
    assert gc.get_count()[2] == 0
    assert not idle.tick()  # nothing reached the oldest generation since
    idle.stop()
    assert gc.get_threshold() == thresholds


def test_nothing_is_collected_when_the_collector_is_off(thresholds: tuple[int, int, int]) -> None:
    clock = Clock()
    idle = IdleCollector(clock=clock)
    _promote()
    clock.now += 2 * IDLE_SECONDS
    gc.disable()
    try:
        assert not idle.tick()
    finally:
        gc.enable()


def test_the_app_holds_the_policy_while_it_runs(small_case: Path) -> None:
    before = gc.get_threshold()
    app = KeytrailApp(small_case)

    async def body() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert gc.get_threshold()[2] > 1 << 20
            last = app.idle_gc.last_input
            await pilot.press("c")
            await settle(pilot)
            assert app.idle_gc.last_input > last  # a key is input

    run(body)
    assert gc.get_threshold() == before
