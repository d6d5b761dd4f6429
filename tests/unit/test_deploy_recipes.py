"""The deployment recipes of examples/deploy/ (docs/scale.md) are valid files: the
Kubernetes manifest parses and runs the documented commands, the Airflow DAG compiles
(Airflow itself is not installed to import it)."""

from __future__ import annotations

from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def test_the_kubernetes_recipe_runs_workers_and_a_job_that_waits_for_the_run():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"ConfigMap", "Deployment", "Job"}
    worker = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert worker[:2] == ["rivet", "worker"]
    job = kinds["Job"]["spec"]["template"]["spec"]
    assert job["restartPolicy"] == "Never"
    args = job["containers"][0]["args"]
    assert args[:2] == ["rivet", "run"] and "--distributed" in args and "--wait" in args
    config = kinds["ConfigMap"]["data"]["rivet.toml"]
    assert "chunk_checkpoint = true" in config and 'url_env = "RIVET_STATE_URL"' in config


def test_the_kubernetes_recipes_config_is_a_valid_rivet_config():
    import tomllib

    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    config = tomllib.loads(config_map["data"]["rivet.toml"])
    (export,) = config["exports"]
    assert export["mode"] == "chunked" and export["chunk_checkpoint"] is True


def test_the_airflow_dag_compiles_and_waits_for_each_run():
    source = (DEPLOY / "airflow_dag.py").read_text()
    compile(source, "airflow_dag.py", "exec")
    assert "rivet run --distributed --wait" in source
    assert "--resume" in source
