"""The one plot helper of both tasks and the experiment scripts: matplotlib on its file backend (no
display needed), figures written the same way."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 120


def save_figure(fig: plt.Figure, file: Path) -> None:
    """Lay `fig` out, write it to `file` (format from the suffix, DPI dots per inch) and free it."""
    fig.tight_layout()
    fig.savefig(file, dpi=DPI)
    plt.close(fig)
