"""Each client's label ledger (semfed.retrieval.labels.LabelLedger) on disk, so that a resumed run continues
with the ledgers the checkpoint's round left: <ledger-dir>/<run-name>/partition-<id>/round-<r>.npz holds
a client's ledger after round r (ledger-dir defaults to <work-dir>/ledgers; in a cluster each ClientApp
executor mounts its own writable ledger-dir, since the work dir is read-only to clients). A client loads its newest file before the round it trains, writes the
round's file atomically and keeps only that and the one it loaded (the one a resume from the previous
checkpoint needs); the server removes the files of rounds after its checkpoint when it (re)starts."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from semfed.retrieval.labels import LabelLedger

FILE = re.compile(r"round-(\d+)\.npz")


def ledger_folder(run_ledgers: Path, partition_id: int) -> Path:
    """One client's folder in a run's ledger folder (SemfedConfig.run_ledgers)."""
    return run_ledgers / f"partition-{partition_id}"


def ledger_rounds(folder: Path) -> list[int]:
    """Rounds with a ledger file in `folder`, ascending (none when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := FILE.fullmatch(p.name)))


def load_ledger(folder: Path, server_round: int, n: int) -> tuple[LabelLedger, int | None]:
    """The newest ledger written before `server_round` and its round; an empty ledger of `n` labels and
    None when there is none. ValueError naming the file when it does not hold `n` labels."""
    earlier = [r for r in ledger_rounds(folder) if r < server_round]
    if not earlier:
        return LabelLedger.empty(n), None
    file = folder / f"round-{earlier[-1]}.npz"
    with np.load(file, allow_pickle=False) as arrays:
        ledger = LabelLedger.from_arrays(dict(arrays))
    if ledger.pruned.shape != (n,) or ledger.history.shape[1:] != (n,):
        raise ValueError(f"label ledger {file} holds {len(ledger.pruned)} labels, this client's shard {n}")
    return ledger, earlier[-1]


def save_ledger(folder: Path, server_round: int, ledger: LabelLedger, keep: int | None) -> Path:
    """Write round-<server_round>.npz atomically (temporary file, fsync, rename), then remove the
    folder's other rounds except `keep` (the round the ledger was loaded from)."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"round-{server_round}.npz"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".round.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **ledger.to_arrays())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)
    for old in ledger_rounds(folder):
        if old not in (server_round, keep):
            (folder / f"round-{old}.npz").unlink(missing_ok=True)
    return file


def discard_after(run_ledgers: Path, done: int) -> None:
    """Remove every client's ledger files of rounds after `done` (all of them when 0): a client may have
    trained a round the server never checkpointed, and a fresh run must not find an earlier run's."""
    for folder in run_ledgers.iterdir() if run_ledgers.is_dir() else ():
        for r in ledger_rounds(folder):
            if r > done:
                (folder / f"round-{r}.npz").unlink(missing_ok=True)
