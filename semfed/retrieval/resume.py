"""What a resumed run restores besides the model, in the plain containers and tensors that
torch.load(weights_only=True) accepts: random-number states, the metrics table, strategy state;
and the check that the checkpoint belongs to the same experiment."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd
import torch

from semfed.config import ConfigError, SemfedConfig

MAY_DIFFER = ("resume", "num-server-rounds", "stop-after-round")  # a resumed run may extend the number of rounds


def rng_state() -> dict[str, Any]:
    """The process's global random states (Python's drives Flower's node sampling): Python's as its
    (version, 625 ints, gauss) tuple, NumPy's MT19937 key [624] as an int64 tensor, torch's byte tensor."""
    numpy = np.random.get_state(legacy=False)
    return {"python": random.getstate(),
            "numpy": {"key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)), "pos": int(numpy["state"]["pos"]),
                      "has_gauss": int(numpy["has_gauss"]), "gauss": float(numpy["gauss"])},
            "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
                         "has_gauss": numpy["has_gauss"], "gauss": numpy["gauss"]})
    torch.set_rng_state(state["torch"])


def table_state(table: pd.DataFrame) -> dict[str, Any]:
    """A numeric table as its column names in order and one tensor [rows, columns] per dtype (int64, float64,
    bool) with those columns' names: a few tensors, however many columns (a user_rsum[k] column per user)."""
    names: dict[str, list[str]] = {}
    for name, dtype in table.dtypes.items():
        names.setdefault(str(dtype), []).append(str(name))
    return {"columns": [str(name) for name in table.columns],
            "blocks": {dtype: {"names": columns, "values": torch.from_numpy(table[columns].to_numpy().copy())}
                       for dtype, columns in names.items()}}


def table_from_state(state: dict[str, Any]) -> pd.DataFrame:
    """The table table_state saved, equal to it exactly; also a checkpoint's of before 2026-11-30, which kept
    one tensor per column ({column: tensor [rows]})."""
    if "blocks" not in state:
        return pd.DataFrame({name: column.numpy() for name, column in state.items()})
    blocks = [pd.DataFrame(block["values"].numpy(), columns=block["names"]) for block in state["blocks"].values()]
    return pd.concat(blocks, axis=1)[state["columns"]]


def plain(value: Any) -> Any:
    """`value` (dicts, lists, tuples of numbers, strings, NumPy scalars and arrays, as a strategy's state
    holds) with every NumPy scalar as the Python number it equals and every array as a tensor (a copy);
    TypeError for anything else."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} as plain data")


def check_same_run(saved: dict[str, Any], cfg: SemfedConfig, file) -> None:
    """ConfigError naming the keys whose values differ between the checkpoint's config and `cfg`
    (all but MAY_DIFFER must match)."""
    current = cfg.to_run_config()
    differ = sorted(k for k in set(saved) | set(current) if k not in MAY_DIFFER and saved.get(k) != current.get(k))
    if differ:
        raise ConfigError(f"resume: {file} was written with other values of {', '.join(differ)} "
                          f"(e.g. {differ[0]} = {saved.get(differ[0])!r}, now {current.get(differ[0])!r})")
