"""Which Spark scopes run pass 1a on the driver (:func:`keytrail.scope.engine_spark._driver_pass1`).

On a local master of two cores the driver's one core beat the tasks' job (docs/performance.md,
spark7); on a master of many cores a large trail is the tasks' to share, and a cluster or a
remote path never reads files on the driver. No JVM is started: the masters are given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from keytrail.scope import engine_spark
from keytrail.scope.engine_spark import _cores, _driver_pass1

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("master", "cores"),
    [("local", 1), ("local[2]", 2), ("local[16]", 16), ("local[3,2]", 3)],
)
def test_the_cores_of_a_local_master(master: str, cores: int) -> None:
    assert _cores(master) == cores


def test_the_driver_takes_pass_1a_by_cores_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}.json"
        f.write_bytes(b"x" * 1000)
        files.append(str(f))
    assert _driver_pass1("local[2]", files)
    assert _driver_pass1("local[16]", files)  # small: done while the JVM starts
    monkeypatch.setattr(engine_spark, "DRIVER_PASS1_BYTES", 2999)
    assert not _driver_pass1("local[16]", files)  # large on many cores: the tasks share it
    assert _driver_pass1("local[2]", files)  # two cores: the driver's one core is faster
    assert not _driver_pass1("spark://host:7077", files)  # a cluster's tasks read the files
    assert not _driver_pass1("local[2]", [*files, "s3a://bucket/trail.json.gz"])
