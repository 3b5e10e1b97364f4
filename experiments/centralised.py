"""Run the centralised upper bound with the same config as a federated run.

    python experiments/centralised.py "work-dir='/abs/work' num-server-rounds=12"
"""

import sys

from flwr.common.config import parse_config_args

from semfed.centralised import train_centralised
from semfed.config import default_run_config, SemfedConfig

if __name__ == "__main__":
    overrides = parse_config_args(sys.argv[1:])
    cfg = SemfedConfig.from_run_config({**default_run_config(), **overrides})
    if not cfg.run_name:
        cfg = cfg.replace(run_name=f"centralised-seed{cfg.seed}")
    print(train_centralised(cfg))
