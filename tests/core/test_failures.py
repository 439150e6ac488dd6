"""Which JVM-side failures (the connector inside Spark tasks) mean "the cluster went away": exit 3, one line.
Pure: the texts are what Py4J hands Python, the exception class is named as Py4J's is."""
import pytest

from digitforge.core import failures


class Py4JJavaError(Exception):
    """Named like py4j's: java_failure reads only failures that come through the JVM."""


CFG = {"cassandra": {"hosts": ["127.0.0.5"], "port": 9042}}


@pytest.mark.parametrize("cause", [
    "com.datastax.oss.driver.api.core.NodeUnavailableException: No connection was available to Node(endPoint=/127.0.0.5:9042)",
    "com.datastax.oss.driver.api.core.connection.ConnectionInitException: [s0|connecting...] Protocol initialization request",
    "com.datastax.oss.driver.api.core.AllNodesFailedException: All 1 node(s) tried for the query failed",
    "com.datastax.oss.driver.api.core.servererrors.ReadFailureException: Cassandra failure during read query",
    "com.datastax.oss.driver.shaded.netty.channel.StacklessClosedChannelException",
    "java.io.IOException: Connection reset by peer",
])
def test_a_node_lost_mid_job_is_exit_3_naming_the_hosts(cause):
    e = Py4JJavaError(f"An error occurred while calling o93.save.\norg.apache.spark.SparkException: Job aborted due "
                      f"to stage failure: Task 0 in stage 4.0 failed 1 times\nCaused by: {cause}\n\tat com.datastax...")
    code, line = failures.explain(e, CFG)
    assert code == 3 and "cassandra.hosts=127.0.0.5" in line and "re-run" in line


def test_other_jvm_failures_are_not_hidden():
    assert failures.explain(Py4JJavaError("java.lang.OutOfMemoryError: Java heap space"), CFG) is None
