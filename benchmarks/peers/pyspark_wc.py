"""PySpark, local[N]: read.text, split on ASCII whitespace, explode, groupBy count.

Spark decodes text as UTF-8, replacing bytes that are not UTF-8 with U+FFFD.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(path: str, output: str) -> None:
    spark = (
        SparkSession.builder.master(f"local[{os.cpu_count()}]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    words = spark.read.text(path).select(F.explode(F.split("value", "[ \\t\\n\\u000b\\f\\r]+")).alias("w"))
    counts = words.where(F.col("w") != "").groupBy("w").count()
    with open(output, "wb") as out:
        for row in counts.toLocalIterator():
            out.write(row["w"].encode() + b"\t%d\n" % row["count"])
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
