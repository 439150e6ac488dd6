"""Cluster profiles (conf/spark/*.conf) that cannot run here: each renders a complete spark-submit
command through `DIGITFORGE_SUBMIT_DRY_RUN=1 scripts/submit.sh`, names only files that exist or are
shipped with the job, and the Kubernetes profile matches the executor image (Dockerfile)."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

PROFILES = ["local", "standalone", "standalone-dist", "gpu", "yarn", "k8s"]
ARCHIVE = ROOT / "var" / "dist" / "digitforge-env.tar.gz"


def dry_run(profile: str, *args: str, dry: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITFORGE_SPARK")} | (env or {})
    env["DIGITFORGE_SPARK_PROFILE"] = profile
    if dry:
        env["DIGITFORGE_SUBMIT_DRY_RUN"] = "1"
    return subprocess.run([str(ROOT / "scripts" / "submit.sh"), "train", "--dataset", "mnist", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def rendered(profile: str) -> tuple[dict, dict]:
    """(spark-submit options, the rendered properties file) of a profile's dry run."""
    proc = dry_run(profile, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.splitlines()
    assert cmd[0].endswith("/spark-submit")
    options, rest = {}, cmd[1:]
    while rest[0].startswith("--"):
        options[rest[0]], rest = rest[1], rest[2:]
    assert rest == [str(ROOT / "jobs" / "train.py"), "--dataset", "mnist", "--epochs", "1"]
    props = {}
    for line in open(options["--properties-file"]).read().splitlines():
        line = line.split("#", 1)[0].strip() if not line.startswith("spark.archives") else line.strip()
        if line:
            key, _, value = line.partition(" ")
            props[key] = value.strip()
    return options, props


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_renders_a_complete_spark_submit_command(profile):
    options, props = rendered(profile)
    assert {"--properties-file", "--jars", "--driver-java-options"} <= set(options)
    assert any("spark-cassandra-connector_" in j for j in options["--jars"].split(","))
    assert options["--conf"] == f"spark.pyspark.driver.python={ROOT / '.venv' / 'bin' / 'python'}"  # the driver runs here
    shipped = options.get("--files", "").split(",") if "--files" in options else []
    assert all(os.path.isfile(f) for f in shipped)
    zip_ = str(ROOT / "var" / "dist" / "digitforge.zip")
    if "spark.archives" in props:  # executors on the packed environment take the package from its wheel
        assert zip_ not in shipped and props["spark.pyspark.python"] == "./environment/bin/python"
    if props.get("spark.pyspark.python", "").endswith("environment/bin/python"):  # and Cassandra's jars from it
        env_dir = props["spark.pyspark.python"].removesuffix("/bin/python")
        assert props["spark.digitforge.cassandraJars"] == f"{env_dir}/share/digitforge/cassandra-jars"
    if "spark.archives" not in props and "spark.kubernetes.container.image" not in props:
        assert shipped[0] == zip_
    assert "spark.files" not in props  # merged into --files, which would override it
    assert props["spark.master"] and not any("@ROOT@" in v or "@DIST@" in v for v in props.values())
    for key in ("spark.kubernetes.driver.podTemplateFile", "spark.kubernetes.executor.podTemplateFile"):
        if key in props:
            assert os.path.isfile(props[key]), key


def test_yarn_ships_the_packed_environment_and_the_gpu_discovery_script():
    options, props = rendered("yarn")
    assert props["spark.master"] == "yarn"
    assert props["spark.archives"] == f"{ARCHIVE}#environment"
    assert props["spark.pyspark.python"] == "./environment/bin/python"
    # the script travels with the job and is found in the container's folder, not on the submitting host
    assert str(ROOT / "conf" / "spark" / "gpu-discovery.sh") in options["--files"].split(",")
    assert props["spark.executor.resource.gpu.discoveryScript"] == "./gpu-discovery.sh"
    assert props["spark.executor.resource.gpu.vendor"] == "nvidia.com"


def test_k8s_runs_executors_from_the_image_that_holds_the_packed_environment():
    options, props = rendered("k8s")
    assert props["spark.master"].startswith("k8s://")
    assert props["spark.kubernetes.container.image"]
    assert props["spark.executor.resource.gpu.vendor"] == "nvidia.com"
    for key in ("spark.kubernetes.driver.podTemplateFile", "spark.kubernetes.executor.podTemplateFile"):
        pod = yaml.safe_load(open(props[key]))
        assert pod["kind"] == "Pod" and pod["spec"]["containers"]
    docker = (ROOT / "Dockerfile").read_text()
    # the interpreter and discovery script the profile names are the ones the image installs
    env_dir = props["spark.pyspark.python"].removesuffix("/bin/python")
    assert f"ADD var/dist/digitforge-env.tar.gz {env_dir}" in docker
    assert f"COPY conf/spark/gpu-discovery.sh {props['spark.executor.resource.gpu.discoveryScript']}" in docker


def test_the_image_installs_the_environment_yarn_ships_on_the_venvs_python():
    docker = (ROOT / "Dockerfile").read_text()
    _, yarn = rendered("yarn")
    archive = os.path.relpath(yarn["spark.archives"].split("#")[0], ROOT)
    assert re.search(rf"^ADD {re.escape(archive)} ", docker, re.M)
    # venv-pack does not pack the interpreter: the image's Python must be the venv's version
    version = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+\.\d+)", docker, re.M).group(1)
    assert version == "%d.%d.%d" % sys.version_info[:3]


def test_a_profile_whose_archive_is_missing_stops_before_submitting(tmp_path):
    proc = dry_run("yarn", dry=False, env={"DIGITFORGE_DIST_DIR": str(tmp_path)})  # no make dist there
    assert proc.returncode == 2 and "digitforge-env.tar.gz, which does not exist: run 'make dist'" in proc.stderr


def test_spark_conf_overrides_reach_the_command_as_conf_flags_and_a_bad_one_stops():
    proc = dry_run("standalone", env={"DIGITFORGE_SPARK_CONF": "spark.cores.max=1  spark.executor.memory=3g"})
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout.splitlines()
    confs = [cmd[i + 1] for i, token in enumerate(cmd) if token == "--conf"]
    assert "spark.cores.max=1" in confs and "spark.executor.memory=3g" in confs
    bad = dry_run("standalone", env={"DIGITFORGE_SPARK_CONF": "cores.max=1"})
    assert bad.returncode == 2 and "DIGITFORGE_SPARK_CONF: 'cores.max=1' is not spark.KEY=VALUE" in bad.stderr
