"""Run by tests/registry/test_registry.py with MLflow's own Python (.venv-mlflow: MLflow and torch,
no digitforge, no Spark): load an exported model directory with MLflow's pyfunc loader, predict the
images of IMAGES.npy, save the probabilities to OUT.npy and print, as JSON, what MLflow read from the
model and which of digitforge's packages this environment lacks."""
import importlib.util
import json
import sys

import mlflow
import numpy as np


def main(model_dir: str, images: str, out: str) -> None:
    model = mlflow.pyfunc.load_model(model_dir)
    np.save(out, model.predict(np.load(images)))
    print(json.dumps({"mlflow": mlflow.__version__, "flavors": sorted(model.metadata.flavors),
                      "metadata": model.metadata.metadata, "signature": model.metadata.signature.to_dict(),
                      "absent": [m for m in ("digitforge", "pyspark", "petastorm", "cassandra")
                                 if importlib.util.find_spec(m) is None]}, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
