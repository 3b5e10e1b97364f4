"""Assertions shared by tests that read a run's outputs."""

from pathlib import Path

import pandas as pd
from PIL import Image


def assert_trained(table: pd.DataFrame) -> None:
    """A metrics table of a run that trained: every scored RSUM is positive (a diverged model scores 0,
    semfed.retrieval.metrics) and the best scored round after round 0 beats the untrained round-0 model by more
    than float32 rounding (one retrieval hit moves RSUM by 100 / items). On the tiny configs RSUM moves
    by a few hits from round to round, so the best trained round is compared, not the last."""
    scored = table.set_index("round")["rsum"].dropna()
    assert (scored > 0).all() and scored.drop(0).max() > scored[0] + 0.01, scored.to_dict()


def assert_plot(path: Path) -> None:
    """`path` is a PNG that PIL decodes, with something drawn on it (more than two colours)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 24)) > 2
