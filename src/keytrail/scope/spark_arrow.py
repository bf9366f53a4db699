"""Arrow tables across the driver's boundary with Spark, on PySpark 4 and 3.5 alike.

PySpark 4 moves Arrow batches both ways as they are; 3.5 only through pandas. Either way no
Python object is made per value: ``collect()`` of 100k rows, or a DataFrame made from a list of
tuples (a Python RDD, read by a job of Python workers each time), cost seconds of a 1M run
(docs/performance.md, spark4 and spark5). The one place that knows which PySpark it runs on.
"""

from __future__ import annotations

from typing import Any


def _pyspark4() -> bool:
    import pyspark

    return int(pyspark.__version__.split(".")[0]) >= 4


def to_arrow(frame: Any) -> Any:
    """A small DataFrame's rows on the driver as one Arrow table."""
    if _pyspark4():
        return frame.toArrow()
    import pyarrow as pa

    return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)


def from_arrow(spark: Any, table: Any) -> Any:
    """A driver-side Arrow ``table`` as a DataFrame whose rows the JVM decodes."""
    if _pyspark4():
        return spark.createDataFrame(table)
    return spark.createDataFrame(table.to_pandas())
