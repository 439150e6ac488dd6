# digitforge: `make demo` runs the whole pipeline, `make test` runs the tests.
# Both install everything they need on a fresh machine (Python venv, JVM jars, a local Cassandra node).
SHELL := /bin/bash
PY        := .venv/bin/python
SBT_VER   := 1.10.7
SBT_JAR   := build/tools/sbt-launch-$(SBT_VER).jar
SBT       := java -Xmx1g -Dsbt.repository.config=project/repositories -Dsbt.override.build.repos=true \
             -Dsbt.log.noformat=true -Dsbt.server.forcestart=false -jar $(SBT_JAR)
SUBMIT    := scripts/submit.sh
DATASET   ?= mnist
KEYSPACE  ?=
KS_FLAG   := $(if $(KEYSPACE),--keyspace $(KEYSPACE))

.PHONY: setup jars dist cassandra-up cassandra-down cassandra-status schema demo test unit bench-ingest bench-train clean \
        spark-cluster-up spark-cluster-down spark-cluster-status train-cluster sql-server-up sql-server-down sql-server-status \
        ring-up ring-down ring-status ring-wait test-ring bench-ingest-ring

setup: .venv/.installed
.venv/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# petastorm without its declared deps (setuptools<70 clashes with torch); see README.
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -c "import torch, torchvision, petastorm, pyspark, pyarrow, cassandra; print('python deps ok: torch', torch.__version__, 'pyspark', pyspark.__version__)"
	touch $@

# JVM side: sbt (its launcher comes from Maven Central) stages the jars named in build.sbt.
jars: build/jars/.staged
$(SBT_JAR):
	mkdir -p build/tools
	curl -fsSL -o $@.part https://repo1.maven.org/maven2/org/scala-sbt/sbt-launch/$(SBT_VER)/sbt-launch-$(SBT_VER).jar
	mv $@.part $@
# digitforge-bulk.jar compiles against the venv's pyspark jars: setup comes first.
build/jars/.staged: build.sbt project/build.properties $(SBT_JAR) .venv/.installed $(shell find jvm -type f 2>/dev/null)
	$(SBT) stageJars < /dev/null
	touch $@

# The local profile's JVM class archive (AppCDS, lib/digitforge/core/class_archive.py): one-off local jobs
# start in about half the time. Made for this JDK and these jars; without it jobs only start slower.
.PHONY: class-archive
class-archive: build/cds/spark-local.jsa
build/cds/spark-local.jsa: build/jars/.staged lib/digitforge/core/class_archive.py
	$(PY) -m digitforge.core.class_archive $@

# `make dist`: what executors that share nothing with this checkout run on. The project as a wheel (not
# editable: venv-pack refuses those) and a fresh venv of the pinned requirements plus that wheel, packed by
# venv-pack into var/dist/digitforge-env.tar.gz; scripts/submit.sh ships it as `--archives ...#environment`
# (profiles with spark.archives) and executors run ./environment/bin/python. venv-pack leaves the
# interpreter out: executors need the same Python at the same prefix (DIST_PYTHON_PREFIX to name another,
# e.g. /usr/local for the Dockerfile's image). DIST_COMPRESS: gzip level (1 packs fastest). Cassandra's jars (the
# ingest writers' SSTable writer and bulk loader) travel inside it, under share/digitforge/cassandra-jars.
DIST_ENV := var/dist/digitforge-env.tar.gz
DIST_COMPRESS ?= 1
DIST_PYTHON_PREFIX ?=
.PHONY: dist
dist: $(DIST_ENV)
$(DIST_ENV): .venv/.installed build/jars/.staged requirements.txt requirements-nodeps.txt pyproject.toml $(shell find lib -name '*.py' -o -name '*.j2')
	rm -rf var/dist/env var/dist/digitforge-*.whl
	mkdir -p var/dist
	$(PY) -m pip wheel -q --no-deps -w var/dist .
	python3 -m venv var/dist/env
	var/dist/env/bin/python -m pip install -q --upgrade pip
	var/dist/env/bin/python -m pip install -q -r requirements.txt
	var/dist/env/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt var/dist/digitforge-*.whl
	cd /tmp && $(CURDIR)/var/dist/env/bin/python -c "import digitforge, torch, petastorm, pyspark; print('dist env: digitforge from', digitforge.__file__)"
	mkdir -p var/dist/env/share/digitforge && cp -r build/jars/cassandra var/dist/env/share/digitforge/cassandra-jars
	$(PY) -m venv_pack -p var/dist/env -o $@.part --format tar.gz --compress-level $(DIST_COMPRESS) --force --quiet \
	  $(if $(DIST_PYTHON_PREFIX),--python-prefix $(DIST_PYTHON_PREFIX))
	mv $@.part $@
	rm -rf var/dist/env
	ls -l var/dist

# SECURE=1 (`make cassandra-up SECURE=1`, `make ring-up SECURE=1`): password logins, TLS-only CQL and
# JMX authentication, with keys and credentials made under var/secure (see README). Unset, a node keeps
# the mode its home was set up with.
SECURE ?=
cassandra-up: setup jars
	SECURE=$(SECURE) scripts/cassandra.sh up
cassandra-down:
	scripts/cassandra.sh down
cassandra-status:
	scripts/cassandra.sh status

# A 3-node ring on 127.0.0.1-3 (JMX 7201-7203), data under var/ring; it cannot run beside the single
# node (same 127.0.0.1 ports). ring-up returns once all three nodes are UN.
ring-up: setup jars
	SECURE=$(SECURE) scripts/ring.sh up
ring-down:
	scripts/ring.sh down
ring-status:
	scripts/ring.sh status
ring-wait:
	scripts/ring.sh wait

schema: cassandra-up
	.venv/bin/digitforge schema apply $(KS_FLAG)

# The demo ends with the dataset's models (the first one is its champion) and the command that predicts
# with the champion (IDX files fill raw_train / raw_test; raw_predict is filled by an unlabelled CSV).
demo: schema class-archive
	$(SUBMIT) ingest --dataset $(DATASET) $(KS_FLAG)
	$(SUBMIT) convert --dataset $(DATASET) $(KS_FLAG)
	$(SUBMIT) train --dataset $(DATASET) $(KS_FLAG)
	.venv/bin/digitforge registry list --dataset $(DATASET) $(KS_FLAG)
	@echo "predict the test images with the champion: $(SUBMIT) predict --dataset $(DATASET) $(KS_FLAG) --table raw_test"

# The single-node tests, then the ring's: the ring needs 127.0.0.1's ports, so the single node stops
# first; the ring is stopped at the end whatever the result.
# The three set-ups run side by side (pip unpacking torch twice and the node starting overlap: minutes off a
# fresh machine); their output is kept per target.
test:
	$(MAKE) -j3 --output-sync=target schema class-archive airflow-env mlflow-env s3-env dist
	$(MAKE) share-venv-files
	$(PY) -m pytest tests -m "not ring"
	scripts/cassandra.sh down
	$(MAKE) test-ring

# Tests marked `ring` on the 3-node ring (RING_ADDRESSES / RING_JMX_PORTS as for scripts/ring.sh).
test-ring: setup jars class-archive
	scripts/ring.sh up
	status=0; $(PY) -m pytest tests -m ring || status=$$?; scripts/ring.sh down; exit $$status

unit: setup airflow-env mlflow-env s3-env
	$(PY) -m pytest tests -m "not integration and not ring"

# Side venvs, each with pins that clash with the jobs': Apache Airflow (tests load the nightly DAG in it),
# MLflow (no digitforge, no Spark: tests load an exported model in it) and moto (the S3-compatible server the
# storage tests start). One recipe; CHECK_<name> proves the install.
.PHONY: airflow-env mlflow-env s3-env
airflow-env: .venv-airflow/.installed
mlflow-env: .venv-mlflow/.installed
s3-env: .venv-s3/.installed
CHECK_airflow := import airflow, airflow.providers.apache.spark; print('airflow', airflow.__version__)
CHECK_mlflow  := import mlflow, torch; print('mlflow', mlflow.__version__, 'torch', torch.__version__)
CHECK_s3      := import moto.server; print('moto', moto.__version__)
# .venv-mlflow holds the same torch and CUDA libraries as .venv (6.6 GB): identical files become hard links
# to one copy (util-linux hardlink; pip replaces files rather than writing into them, so an upgrade in one
# venv leaves the other whole). A disk-tight machine (CI, then the shared-nothing test's 3 unpacked
# environments) needs the room.
.PHONY: share-venv-files
share-venv-files:
	@command -v hardlink >/dev/null || { echo "no hardlink (util-linux) here: each venv keeps its own copies"; exit 0; }; \
	for v in .venv-*/; do \
	  if [ -d .venv ] && [ -d "$$v" ]; then hardlink --ignore-time --respect-name --minimum-size 256K --quiet .venv "$$v"; fi; \
	done; \
	du -sh .venv .venv-*/ 2>/dev/null | paste -sd' '

.venv-%/.installed: requirements-%.txt
	test -x .venv-$*/bin/python || python3 -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q -r $<
	.venv-$*/bin/python -c "$(CHECK_$*)"
	touch $@

bench-ingest: schema class-archive
	$(PY) bench/ingest.py

# stream vs cql into the ring (start it first: make cassandra-down ring-up).
bench-ingest-ring: setup jars
	$(PY) bench/ingest.py --ring

bench-train: schema class-archive
	$(PY) bench/train.py

# A Spark standalone cluster on this machine (one master, two 1-core workers) and training on it:
# one rank per executor.
spark-cluster-up: setup
	scripts/spark-cluster.sh up
spark-cluster-down:
	scripts/spark-cluster.sh down
spark-cluster-status:
	scripts/spark-cluster.sh status
train-cluster: schema spark-cluster-up
	DIGITFORGE_SPARK_PROFILE=standalone $(SUBMIT) train --dataset $(DATASET) --no-local-mode

# Spark's Thrift JDBC/ODBC server on 127.0.0.1:10000 with the `cass` catalog (scripts/sql-server.sh,
# scripts/beeline.sh for Hive's JDBC shell).
sql-server-up: setup jars
	scripts/sql-server.sh up
sql-server-down:
	scripts/sql-server.sh down
sql-server-status:
	scripts/sql-server.sh status

# var/ holds the nodes' data (var/cassandra, var/ring) and the security material (var/secure).
clean: sql-server-down cassandra-down ring-down
	rm -rf var build/jars
