"""Score a retrieval run's checkpoint with today's evaluation: the whole test split per encoder pair and
every user on its own test images (for runs written before an evaluation changed, or to compare runs
on the same per-user test sets). Prints a markdown table; the config is the checkpoint's own.

    .venv/bin/python -m experiments.score_checkpoint work/runs/<run-name>
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semfed.config import SemfedConfig
from semfed.retrieval import report
from semfed.retrieval.evaluation import evaluate_shared_model, mean_recalls
from semfed.retrieval.metrics import users_mean
from semfed.retrieval.participants import build_adapter, client_test_images, federation_encoders


def score(run: Path) -> tuple[dict[str, dict[str, float]], dict[int, float], SemfedConfig, int]:
    """(recalls per pair on the whole split, each user's RSUM on its own test images, the run's config, its round)."""
    checkpoint = report.load_checkpoint(run)
    cfg = SemfedConfig.from_run_config(checkpoint["config"])
    model = build_adapter(cfg, federation_encoders(cfg), seed=cfg.seed)
    model.load_state_dict(checkpoint["adapter"])
    per_pair, users = evaluate_shared_model(model, cfg, federation_encoders(cfg))
    return per_pair, users, cfg, checkpoint["round"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a retrieval run directory (work-dir/runs/<run-name>)")
    run = parser.parse_args().run
    per_pair, users, cfg, server_round = score(run)
    pairs = ", ".join(f"{pair} {recalls['rsum']:.1f}" for pair, recalls in per_pair.items())
    print(f"{run}: round {server_round}, whole-split RSUM {mean_recalls(per_pair)['rsum']:.1f} ({pairs})")
    sizes = [len(images) for images in client_test_images(cfg)]
    print("| user | profile | own test images | own test RSUM |\n|---|---|---|---|")
    for pid, value in users.items():
        print(f"| {pid} | {cfg.client_profiles[pid].group} | {sizes[pid]} | {value:.1f} |")
    for name, clients in cfg.label_groups().items():
        print(f"label group {name}: mean user RSUM {users_mean(users, clients):.1f}")


if __name__ == "__main__":
    main()
