"""digitforge: train MNIST-style image classifiers as Spark batch jobs on data kept in Cassandra."""

__version__ = "0.1.0"
