"""When a D-JSCC phase has stopped improving: the plateau rule, and the file that says where each phase ended.

A phase (the anchor's stage 1, its stage 2, or the whole run of the other frameworks) is scored after
every round by the mean held-out PSNR (dB) of the decoders it trains, over jscc-eval-snrs on the
training channel. The rule reads that score smoothed: the mean of the phase's last `smoothing` scores
(fewer at its start; 1: the score itself). It has plateaued when `patience` rounds in a row have not beaten
its best smoothed score by at least `min_gain` dB (a round that beats it by less counts as no gain and
leaves the best where it was).
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PLATEAU = "jscc_plateau.json"  # in the run directory: {"phases": [{name, first_round, last_round, best_psnr, best_round,
#                                                                     plateaued, window}]}


@dataclass
class Plateau:
    """The plateau rule over one phase's scores (dB), fed one round at a time."""

    patience: int
    min_gain: float
    smoothing: int = 1
    best: float = -math.inf
    best_round: int = 0
    rounds_without_gain: int = 0
    recent: deque[float] = field(init=False)  # the last `smoothing` scores, oldest first

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"plateau patience must be >= 1 round, got {self.patience}")
        if not self.min_gain >= 0:
            raise ValueError(f"plateau gain must be >= 0 dB, got {self.min_gain}")
        if self.smoothing < 1:
            raise ValueError(f"plateau smoothing must be >= 1 score, got {self.smoothing}")
        self.recent = deque(maxlen=self.smoothing)

    def update(self, server_round: int, score: float) -> bool:
        """Take a round's score; True once `patience` rounds in a row brought the smoothed score less than
        min_gain dB over its best."""
        self.recent.append(score)
        score = sum(self.recent) / len(self.recent)
        if score >= self.best + self.min_gain:
            self.best, self.best_round, self.rounds_without_gain = score, server_round, 0
        else:
            self.rounds_without_gain += 1
        return self.rounds_without_gain >= self.patience


def write_phases(run_dir: Path, phases: list[dict]) -> None:
    """PLATEAU in run_dir: each ended phase as {name, first_round, last_round, best_psnr, best_round, plateaued,
    window} (plateaued False: the phase ended at its round cap; window [first, last]: the rounds of its last
    `patience` scorings, over which a plateaued phase moved less than the least gain)."""
    (run_dir / PLATEAU).write_text(json.dumps({"phases": phases}, indent=1) + "\n")


def _last_phase(run_dir: Path) -> dict | None:
    """The last phase recorded in run_dir's PLATEAU file; None without one (or with no phase in it)."""
    path = run_dir / PLATEAU
    phases = json.loads(path.read_text())["phases"] if path.is_file() else []
    return phases[-1] if phases else None


def last_window(run_dir: Path) -> tuple[int, int] | None:
    """The [first, last] rounds of the run's last phase's window, None without a PLATEAU file."""
    phase = _last_phase(run_dir)
    return None if phase is None else (int(phase["window"][0]), int(phase["window"][1]))


def stopped_round(run_dir: Path) -> int | None:
    """The round at which the run stopped because its last phase plateaued, None if it did not."""
    phase = _last_phase(run_dir)
    return int(phase["last_round"]) if phase is not None and phase["plateaued"] else None
