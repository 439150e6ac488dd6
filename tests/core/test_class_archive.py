"""The local profile's JVM class archive (make class-archive): a local Spark JVM maps Spark's classes and the
SSTable writer's (cassandra-all, in a class loader of its own) from it rather than loading them."""
import subprocess
import sys

import pytest

from digitforge.core.config import PROJECT_ROOT

pytestmark = pytest.mark.integration

ARCHIVE = PROJECT_ROOT / "build" / "cds" / "spark-local.jsa"

SESSION = """
import sys
from digitforge.core.spark import get_spark, read_profile
opts = read_profile("local")["spark.driver.extraJavaOptions"] + " -Xlog:class+load=info:file=" + sys.argv[1]
spark = get_spark("class-archive-check", profile_overrides={"spark.driver.extraJavaOptions": opts})
spark.range(10).count()
spark.stop()
"""


def loaded_from(log: str, name: str) -> str:
    """Where the JVM's class-load log says class `name` came from (the text after `source:`)."""
    for line in log.splitlines():
        if f" {name} source: " in line:
            return line.split(" source: ", 1)[1]
    raise AssertionError(f"{name} was not loaded")


def test_a_local_spark_jvm_maps_sparks_classes_from_the_archive(tmp_path):
    assert ARCHIVE.is_file(), "make class-archive (part of make test) builds it"
    log = tmp_path / "class-load.log"
    subprocess.run([sys.executable, "-c", SESSION, str(log)], check=True, cwd=PROJECT_ROOT, timeout=300)
    text = log.read_text()
    assert loaded_from(text, "org.apache.spark.SparkContext") == "shared objects file (top)"
    shared = sum("source: shared objects file" in line for line in text.splitlines())
    assert shared > 3000, f"only {shared} classes came from the archive"
