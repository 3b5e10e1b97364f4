"""Sweep files: a name, a base run config and a grid, expanded into points (one Flower run each).

    name = "case-study"                      # runs go to <work-dir>/runs/<name>/<point>
    federation = "client-resources-num-cpus=1"  # num-supernodes: from each point's config unless set here
    compare = "method"                       # the axis the plots and summary compare (default: the first)
    reach = 80.0                             # retrieval: the summary gives the first round at RSUM >= reach
    [base]                                   # run-config overrides shared by every point
    num-server-rounds = 6
    [grid]                                   # every combination of the axes, in file order
    seed = [0, 1, 2]                         # a list: values of that run-config key
    [grid.method.proposed]                   # a table: named sets of overrides
    method = "proposed"
    label-handling = "federated"
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semfed.config import ConfigError, from_overrides

NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its name, the value name it takes on each axis, and its run-config overrides."""

    name: str
    labels: dict[str, str]
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    name: str
    federation: str
    compare: str
    points: tuple[Point, ...]
    reach: float | None = None

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.points[0].labels)


def _axis(path: Path, key: str, values: Any) -> list[tuple[str, dict[str, Any]]]:
    """An axis as (value name, overrides) pairs."""
    if isinstance(values, list) and values:
        return [(str(v), {key: v}) for v in values]
    if isinstance(values, dict) and values and all(isinstance(v, dict) for v in values.values()):
        return list(values.items())
    raise ValueError(f"{path}: grid axis {key!r} must be a non-empty list of values or a table of named "
                     f"override tables, got {values!r}")


def load_sweep(path: Path, base: dict[str, Any] | None = None, name: str | None = None) -> Sweep:
    """Read and validate a sweep file: every point's config is checked before anything runs. `base`
    adds run-config overrides to the file's [base] (e.g. dataset paths); `name` replaces its name."""
    try:
        spec = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: cannot read the sweep file ({error})") from None
    unknown = set(spec) - {"name", "federation", "compare", "reach", "base", "grid"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: name, federation, compare, "
                         "reach, base, grid")
    reach = spec.get("reach")
    if reach is not None and (isinstance(reach, bool) or not isinstance(reach, (int, float)) or reach <= 0):
        raise ValueError(f"{path}: 'reach' must be a positive RSUM, got {reach!r}")
    name = name or spec.get("name", "")
    if not NAME.fullmatch(name):
        raise ValueError(f"{path}: 'name' must be letters, digits, '.', '_' or '-', got {name!r}")
    grid = spec.get("grid", {})
    axes = {key: _axis(path, key, values) for key, values in grid.items()}
    compare = spec.get("compare", next(iter(axes), ""))
    if axes and compare not in axes:
        raise ValueError(f"{path}: compare = {compare!r} is not a grid axis ({', '.join(axes)})")
    points = []
    for combination in itertools.product(*axes.values()):
        labels = {axis: value for axis, (value, _) in zip(axes, combination)}
        overrides = {**spec.get("base", {}), **(base or {})}
        for _, values in combination:
            overrides.update(values)
        point = "_".join(f"{axis}={value}" for axis, value in labels.items()) or "base"
        if not NAME.fullmatch(point.replace("=", "")):
            raise ValueError(f"{path}: point name {point!r} has characters a folder name cannot take; name the "
                             "values with a table axis instead")
        for key in ("work-dir", "run-name"):
            if key in overrides:
                raise ValueError(f"{path}: {key!r} is set by the sweep runner, not the sweep file")
        try:
            from_overrides(overrides)  # the same check and message as scripts/check_config.py
        except ConfigError as error:
            raise ValueError(f"{path}: point {point}: {error}") from None
        points.append(Point(point, labels, overrides))
    return Sweep(name, spec.get("federation", "client-resources-num-cpus=1"), compare,
                 tuple(points), None if reach is None else float(reach))


def run_config_text(overrides: dict[str, Any]) -> str:
    """Overrides as Flower's --run-config text: key=value pairs, strings as TOML literal strings."""
    parts = []
    for key, value in overrides.items():
        if isinstance(value, str):
            if "'" in value or "\n" in value:
                raise ValueError(f"{key}: string values cannot hold quotes or newlines, got {value!r}")
            value = f"'{value}'"
        elif isinstance(value, bool):
            value = str(value).lower()
        parts.append(f"{key}={value}")
    return " ".join(parts)
