"""What a resumed run restores besides the model: random-number states, and the check that the
checkpoint belongs to the same experiment."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from semfed.config import ConfigError, SemfedConfig

MAY_DIFFER = ("resume", "num-server-rounds", "stop-after-round")  # a resumed run may extend the number of rounds


def rng_state() -> dict[str, Any]:
    """The process's global random states (Python's drives Flower's node sampling)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def check_same_run(saved: dict[str, Any], cfg: SemfedConfig, file) -> None:
    """ConfigError naming the keys whose values differ between the checkpoint's config and `cfg`
    (all but MAY_DIFFER must match)."""
    current = cfg.to_run_config()
    differ = sorted(k for k in set(saved) | set(current) if k not in MAY_DIFFER and saved.get(k) != current.get(k))
    if differ:
        raise ConfigError(f"resume: {file} was written with other values of {', '.join(differ)} "
                          f"(e.g. {differ[0]} = {saved.get(differ[0])!r}, now {current.get(differ[0])!r})")
