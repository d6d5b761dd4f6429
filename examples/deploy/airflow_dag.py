"""An Airflow DAG for distributed chunked runs (docs/scale.md).

One task per export: each plans the export's chunks, queues them for the `rivet worker`
processes (a Kubernetes Deployment, a systemd service, ...) and waits for the run's outcome,
so the task succeeds exactly when the run does (`rivet run --distributed --wait` exits 0 on
success, 1 on failure). A retry of a failed task continues the run with `--resume` rather
than starting over: completed chunks are not read again.

The machine running the task needs `pip install 'rivet-cli[distributed]'`, the project's
config, and RIVET_STATE_URL (here from an Airflow connection named `rivet_state`).
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.operators.bash import BashOperator

CONFIG = "/opt/rivet/shop/rivet.toml"
EXPORTS = ["orders", "order_lines", "customers"]

# First try: a new run. A retry (try_number > 1): continue the run that failed.
COMMAND = (
    "rivet run --distributed --wait -c {{ params.config }} -e {{ params.export }}"
    "{% if ti.try_number > 1 %} --resume{% endif %}"
)

with DAG(
    dag_id="rivet_shop_exports",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    tags=["rivet"],
) as dag:
    for export in EXPORTS:
        BashOperator(
            task_id=f"export_{export}",
            bash_command=COMMAND,
            params={"config": CONFIG, "export": export},
            env={"RIVET_STATE_URL": "{{ conn.rivet_state.get_uri() }}"},
            append_env=True,
        )
