"""Check a run's config before submitting it: the `--run-config` overrides are parsed as `flwr run`
parses them (Flower's own parser), merged into pyproject.toml's defaults, and validated (semfed.config:
every value, then this machine: work-dir writable, a GPU for device='cuda', D-JSCC crops that fit).
A problem is one line on stderr naming the key (an unknown key with the closest valid one), exit 2.

    python scripts/check_config.py "num-server-rounds=3 seed=1"     # prints: semfed config: ok (...)
    python scripts/check_config.py --supernodes "task='jscc'"       # prints the SuperNodes the run needs
    python scripts/check_config.py --values-only "..."              # skip the machine checks (remote runs)

No torch import for a retrieval config (it answers in about a second); D-JSCC configs import it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click
from flwr.common.config import parse_config_args

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's semfed

from semfed.config import ConfigError, from_overrides  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_config", nargs="*", help="run-config overrides, as given to flwr run --run-config")
    parser.add_argument("--supernodes", action="store_true",
                        help="print only the number of SuperNodes the run needs (client profiles, or D-JSCC decoders)")
    parser.add_argument("--values-only", action="store_true",
                        help="check the values only, not this machine (a deployment whose work-dir is elsewhere)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_config_args([text for text in args.run_config if text] or None)
        cfg = from_overrides(overrides)
        if not args.values_only:
            cfg.check_environment()
    except (ConfigError, click.ClickException, OSError, ValueError) as error:
        message = error.message if isinstance(error, click.ClickException) else str(error)
        print(f"semfed config: {message}", file=sys.stderr)
        return 2
    if args.supernodes:
        print(cfg.supernodes)
    else:
        print(f"semfed config: ok ({len(overrides)} override(s); task {cfg.task}, {cfg.supernodes} SuperNodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
