"""Features once: a run's first start (an empty work dir: the scenes generated, both detectors pre-trained on
them, every frozen encoder's features extracted and cached) against its second (all of it read from the
cache), each to the end of round 1, in one process (server/in_process.py) with the default clients on a
smaller scene set; and each encoder's extraction throughput on the first, read from its progress lines
(items per second at the end of each split). Target: the second start at least 10x faster.

    .venv/bin/python -m benchmarks.features_once [--scenes-train 200] [--scenes-test 50]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.startup import ROOT, timed

PROGRESS = re.compile(r"INFO semfed\.encoders: (\S+) (\w+) (images|regions|captions) (\d+)/(\d+) \(([\d.]+) items/s\)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes-train", type=int, default=200)
    parser.add_argument("--scenes-test", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="semfed-features-once-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    config = (f"work-dir='{work}' num-server-rounds=1 scenes-train={args.scenes_train} scenes-val=4 "
              f"scenes-test={args.scenes_test}")
    command = [sys.executable, "-m", "server.in_process"]
    first, lines = timed(command + [f"{config} run-name='first'"], env, ("round 1/1",))
    second, _ = timed(command + [f"{config} run-name='second'"], env, ("round 1/1",))
    print(f"| start (default clients, {args.scenes_train} training and {args.scenes_test} test scenes) "
          "| to the end of round 1 | to exit |")
    print("|---|---|---|")
    print(f"| first: empty work dir | {first[0]:.1f} s | {first[1]:.1f} s |")
    print(f"| second: everything cached | {second[0]:.1f} s | {second[1]:.1f} s |")
    print(f"| ratio | {first[0] / second[0]:.1f}x | {first[1] / second[1]:.1f}x |")
    rates = {}
    for line in lines:
        match = PROGRESS.search(line)
        if match and match[4] == match[5]:  # a split's last progress line: its whole throughput
            rates[(match[1], match[2], match[3])] = (int(match[5]), float(match[6]))
    print("\n| encoder | split | items | items/s (first run) |")
    print("|---|---|---|---|")
    for (encoder, split, kind), (items, rate) in sorted(rates.items()):
        print(f"| {encoder} | {split} | {items} {kind} | {rate:.1f} |")
    print("\nthe first run's pre-training and adaptation:")
    for line in lines:
        if "attribute pre-training" in line and "epoch" in line or "adapted" in line and "BatchNorm" in line:
            print("  " + line.strip())


if __name__ == "__main__":
    main()
