# The digitforge executor image (conf/spark/k8s.conf): Spark's Kubernetes entrypoint on a JVM, and the
# packed environment of `make dist` (var/dist/digitforge-env.tar.gz: the pinned requirements.txt and
# requirements-nodeps.txt plus the digitforge wheel, the very archive scripts/submit.sh ships to YARN)
# unpacked at /opt/digitforge/environment. venv-pack does not pack the interpreter: `make dist` packs
# with --python-prefix /usr/local, the prefix of the python image below, whose version must be the venv's.
#   make dist && docker build -t digitforge-executor:latest .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG SPARK_IMAGE=spark:3.5.7-scala2.12-java17-ubuntu
FROM ${SPARK_IMAGE} AS spark

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/tini /sbin/tini
# Spark itself (spark-class, jars) and its Kubernetes entrypoint from the official image.
COPY --from=spark /opt/spark /opt/spark
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
ENV SPARK_HOME=/opt/spark JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
# The packed environment (ADD unpacks a local tar.gz), and the GPU discovery script at the path
# conf/spark/k8s.conf names (resource discovery runs before an executor fetches the job's files).
ADD var/dist/digitforge-env.tar.gz /opt/digitforge/environment
COPY conf/spark/gpu-discovery.sh /opt/digitforge/gpu-discovery.sh
ENV PYSPARK_PYTHON=/opt/digitforge/environment/bin/python PATH=/opt/digitforge/environment/bin:$PATH
RUN /opt/digitforge/environment/bin/python -c "import digitforge, torch, pyspark, petastorm" \
 && useradd --uid 185 --home-dir /opt/spark/work-dir --create-home spark
WORKDIR /opt/spark/work-dir
USER 185
ENTRYPOINT ["/opt/entrypoint.sh"]
