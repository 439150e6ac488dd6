"""Issue 13.1 and 13.7: every client works against a secured node (PasswordAuthenticator, TLS-only CQL, JMX
authentication), the stored config holds no secret, and a wrong password, an untrusted certificate or a
plain-text client is one error line, exit 2.

The secured node runs beside the plain dev node (127.0.0.1), on its own loopback address with its own home,
JMX port and security folder, started by the project's script (`scripts/cassandra.sh up` with SECURE=1) and
stopped at the end if this module started it. DIGITFORGE_TEST_SECURE_ADDRESS / _JMX_PORT / _HOME pick
another one (a developer's node already running)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import BIN, ROOT, last_json, run

pytestmark = [pytest.mark.integration, pytest.mark.secure]
SUBMIT = str(ROOT / "scripts" / "submit.sh")
ADDRESS = os.environ.get("DIGITFORGE_TEST_SECURE_ADDRESS", "127.0.0.4")
JMX_PORT = os.environ.get("DIGITFORGE_TEST_SECURE_JMX_PORT", "7204")
HOME = Path(os.environ.get("DIGITFORGE_TEST_SECURE_HOME", ROOT / "var" / "cassandra-secure"))
SECURE_DIR = HOME / "secure"


def node_env() -> dict:
    return {"SECURE": "1", "CASSANDRA_HOST": ADDRESS, "CASSANDRA_JMX_PORT": JMX_PORT, "CASSANDRA_HEAP": "768M",
            "DIGITFORGE_CASSANDRA_HOME": str(HOME / "node"), "DIGITFORGE_SECURE_DIR": str(SECURE_DIR)}


@pytest.fixture(scope="module")
def secure_node():
    script = str(ROOT / "scripts" / "cassandra.sh")
    was_up = run([script, "status"], check=False, env=node_env()).returncode == 0
    run([script, "up"], timeout=400, env=node_env())
    yield SECURE_DIR / "credentials"
    if not was_up:
        run([script, "down"], check=False, timeout=200, env=node_env())


@pytest.fixture(scope="module")
def client(secure_node, tmp_path_factory):
    """Environment and --set flags of a client of the secured node, in a keyspace of its own."""
    ks = f"it_secure_{os.getpid()}"
    tmp = tmp_path_factory.mktemp("secure")
    env = {"DIGITFORGE_CASSANDRA": "secure", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(secure_node)}
    sets = ["--set", f"cassandra.hosts=[{ADDRESS}]", "--set", f"cassandra.jmx_port={JMX_PORT}",
            "--set", f"datasets.mnist.keyspace={ks}", "--set", f"convert.snapshot_root={tmp / 'snapshots'}",
            "--set", f"report.root={tmp / 'reports'}", "--set", f"train.checkpoint_dir={tmp / 'checkpoints'}",
            "--set", f"ingest.staging_dir={tmp / 'staging'}"]
    yield {"env": env, "sets": sets, "keyspace": ks, "tmp": tmp}
    session_do(env, sets, f"DROP KEYSPACE IF EXISTS {ks}")


def session_do(env: dict, sets: list[str], query: str):
    """One query through the library's own session factory, as the secured client."""
    code = ("import sys, json; from digitforge.core import config, connection\n"
            "cfg = config.resolve(sys.argv[2:])\n"
            "with connection.session(cfg) as s:\n"
            "    print(json.dumps([dict(r._asdict()) for r in s.execute(sys.argv[1])], default=str))\n")
    out = run([str(BIN / "python"), "-c", code, query, *[v for k, v in zip(sets[::2], sets[1::2])]], env=env)
    return last_json_list(out.stdout)


def last_json_list(stdout: str):
    import json

    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("[")][-1])


@pytest.fixture(scope="module")
def pipeline(client, make_idx_dataset_module):
    env, sets, ks = client["env"], client["sets"], client["keyspace"]
    data = make_idx_dataset_module(n_train=240, n_test=120)
    run([str(BIN / "digitforge"), *sets, "schema", "apply"], env=env)
    ingest = run([SUBMIT, "ingest", "--data-dir", str(data), "--keyspace", ks, *sets,
                  "--set", "ingest.writer=sstable"], env=env)
    convert = last_json(run([SUBMIT, "convert", "--dataset", "mnist", *sets], env=env).stdout)
    model = last_json(run([SUBMIT, "train", "--dataset", "mnist", "--epochs", "3", "--set", "train.num_processes=1",
                           *sets], env=env).stdout)
    predict = run([SUBMIT, "predict", "--dataset", "mnist", "--model", model["id"], "--table", "raw_test", *sets],
                  env=env)
    return {"ingest": last_json(ingest.stdout), "ingest_log": ingest.stderr, "convert": convert, "model": model,
            "predict": predict, **client}


@pytest.fixture(scope="module")
def make_idx_dataset_module(tmp_path_factory):
    from conftest import write_idx
    import numpy as np

    def make(n_train, n_test):
        rng = np.random.default_rng(0)
        folder = tmp_path_factory.mktemp("tiny")
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            labels = rng.integers(0, 10, n).astype(np.uint8)
            images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
            for i, lb in enumerate(labels):
                images[i, 2 * lb:2 * lb + 6, 4:24] = 255
            write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
        return folder

    return make


def secrets(credentials: Path) -> list[str]:
    from digitforge.core.connection import read_key_values

    values = read_key_values(credentials)
    return [v for k, v in values.items() if "password" in k and v]


def test_ingest_imports_sstables_over_authenticated_jmx(pipeline):
    tables = {t["table"].split(".")[-1]: t for t in pipeline["ingest"]["tables"]}
    assert tables["raw_train"]["written"] == 240 and tables["raw_test"]["written"] == 120
    counts = session_do(pipeline["env"], pipeline["sets"], f"SELECT count(*) AS n FROM {pipeline['keyspace']}.raw_train")
    assert counts == [{"n": 240}]


def test_convert_train_and_predict_through_the_secured_connector(pipeline):
    assert pipeline["convert"]["rows"]["train"] == 240 and pipeline["convert"]["rows"]["test"] == 120
    assert pipeline["model"]["test_accuracy"] > 0.3
    rows = session_do(pipeline["env"], pipeline["sets"],
                      f"SELECT count(*) AS n FROM {pipeline['keyspace']}.predictions")
    assert rows == [{"n": 120}]


def test_stored_config_holds_no_secret(pipeline, secure_node):
    row = session_do(pipeline["env"], pipeline["sets"],
                     f"SELECT config FROM {pipeline['keyspace']}.models WHERE id = {pipeline['model']['id']}")
    stored = row[0]["config"]
    assert '"ssl": true' in stored and ADDRESS in stored  # it is the resolved config of the secured run
    for secret in secrets(secure_node):
        assert secret not in stored
    for log in (pipeline["ingest_log"], pipeline["predict"].stderr, pipeline["predict"].stdout):
        for secret in secrets(secure_node):
            assert secret not in log


def test_spark_sql_catalog_reads_the_registry(pipeline):
    out = run([str(ROOT / "scripts" / "sql.sh"), *pipeline["sets"][:4], "-e",
               f"SELECT count(*) AS n FROM cass.{pipeline['keyspace']}.models"], env=pipeline["env"], timeout=300)
    assert out.stdout.strip().splitlines()[-1].strip() == "1"


def test_cqlsh_with_the_generated_cqlshrc(pipeline):
    out = run([str(BIN / "cqlsh"), "--cqlshrc", str(SECURE_DIR / "cqlshrc"), "--ssl", ADDRESS, "-e",
               f"SELECT count(*) FROM {pipeline['keyspace']}.raw_test"])
    assert " 120" in out.stdout


def test_nodetool_over_authenticated_jmx(secure_node):
    out = run([str(ROOT / "scripts" / "cassandra.sh"), "nodetool", "status"], env=node_env())
    assert "UN  " + ADDRESS in out.stdout


def one_error_line(proc) -> str:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    errors = [ln for ln in text.splitlines() if " ERROR " in ln or ln.startswith("ERROR")]
    assert len(errors) == 1, text[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def bad_credentials(secure_node, tmp_path_factory):
    """Credentials files that are wrong in one way each."""
    folder = tmp_path_factory.mktemp("bad")
    good = secure_node.read_text().splitlines()
    wrong_password = folder / "wrong-password"
    wrong_password.write_text("\n".join(ln for ln in good if not ln.startswith("password=")) + "\npassword=not-it\n")
    other_ca = folder / "other-ca"
    run(["keytool", "-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-dname", "CN=some other CA", "-ext", "bc:c",
         "-keystore", str(folder / "other.p12"), "-storetype", "PKCS12", "-storepass", "changeit"])
    run(["keytool", "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(folder / "other.p12"),
         "-storepass", "changeit", "-file", str(folder / "other-ca.pem")])
    other_ca.write_text("\n".join(ln for ln in good if not ln.startswith("ca_pem=")) +
                        f"\nca_pem={folder / 'other-ca.pem'}\n")
    return {"wrong_password": wrong_password, "other_ca": other_ca}


CLI = [str(BIN / "digitforge"), "--set", f"cassandra.hosts=[{ADDRESS}]", "schema", "apply"]


@pytest.mark.parametrize("case, expected", [
    ("wrong_password", "authentication failed for user"),
    ("other_ca", "TLS handshake failed"),
    ("plain_text", "requires TLS"),
])
def test_cli_refusals_are_one_line_exit_2(bad_credentials, secure_node, case, expected):
    env = {"DIGITFORGE_CASSANDRA": "", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(secure_node)} if case == "plain_text" \
        else {"DIGITFORGE_CASSANDRA": "secure", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(bad_credentials[case])}
    proc = run(CLI, check=False, env=env, timeout=120)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert expected in line and ADDRESS in line


@pytest.mark.parametrize("case, expected", [
    ("wrong_password", "authentication failed for user"),
    ("plain_text", "requires TLS"),
])
def test_job_refusals_are_one_line_exit_2(bad_credentials, secure_node, client, case, expected):
    env = {"DIGITFORGE_CASSANDRA": "", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(secure_node)} if case == "plain_text" \
        else {"DIGITFORGE_CASSANDRA": "secure", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(bad_credentials[case])}
    proc = run([SUBMIT, "predict", "--dataset", "mnist", "--table", "raw_test", *client["sets"]], check=False,
               env=env, timeout=300)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert expected in line and ADDRESS in line


def test_spark_connector_with_a_wrong_password_is_one_line_exit_2(bad_credentials, client):
    """The JVM side (the connector in the driver's JVM) refusing the login: failures.run reads Spark's error."""
    code = ("import sys\nfrom digitforge.core import config, failures\nfrom digitforge.core.spark import get_spark, "
            "cassandra_table\n"
            "from digitforge.core.logs import setup_logging\n"
            "def main(argv):\n    setup_logging()\n    cfg = config.resolve(sys.argv[1:])\n    spark = get_spark('t', cfg)\n"
            "    cassandra_table(spark, 'system', 'local').count()\n    return 0\n"
            "sys.exit(failures.run(main))\n")
    env = {"DIGITFORGE_CASSANDRA": "secure", "DIGITFORGE_CASSANDRA_CREDENTIALS": str(bad_credentials["wrong_password"])}
    proc = run([str(BIN / "python"), "-c", code, *[v for v in client["sets"][1:4:2]]], check=False, env=env,
               timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "authentication failed" in [ln for ln in proc.stderr.splitlines() if "ERROR digitforge" in ln][-1]
