"""ServerApp: validates the run config once, then runs the task's server side (semfed.tasks): the
retrieval federation (server/retrieval.py) or seed 001's D-JSCC (server/jscc.py)."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from semfed.config import SemfedConfig
from semfed.tasks import load

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = SemfedConfig.from_run_config(context.run_config)
    cfg.check_environment()  # work-dir, GPU, D-JSCC images: once per run, here (clients check only the values)
    load(cfg.job.server)(grid, cfg)
