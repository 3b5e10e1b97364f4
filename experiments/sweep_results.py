"""A sweep's finished runs as one table (one row per point, round and client group), its plots and summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from experiments.run_state import TIMES, is_finished
from experiments.sweep_grid import Point, Sweep
from semfed.plots import plt, save_figure
from semfed.config import from_overrides
from semfed.retrieval.labels import LABEL_COUNTS

LABEL_COLUMNS = (*LABEL_COUNTS, "precision", "recall", "f1")
ROUND_COLUMNS = ("train_loss", "bytes_sent", "bytes_received", "clients_replied", "updates_rejected", "seconds")


def point_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """A run's metrics table in long form: group 'all' carries `rsum` (mean over encoder pairs), each
    label-noise group its `group_rsum[g]`, with that group's label counts and pruning scores."""
    groups = ["all"] + [c[len("group_rsum["):-1] for c in metrics.columns if c.startswith("group_rsum[") and c != "group_rsum[all]"]
    frames = []
    for group in groups:
        frame = pd.DataFrame({"round": metrics["round"], "group": group,
                              "rsum": metrics["rsum" if group == "all" else f"group_rsum[{group}]"]})
        for name in LABEL_COLUMNS:
            if f"{name}[{group}]" in metrics:
                frame[name] = metrics[f"{name}[{group}]"]
        for name in ROUND_COLUMNS:
            if name in metrics:
                frame[name] = metrics[name]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def collect(sweep: Sweep, runs: Path, is_finished: Callable[[Path, Point], bool]) -> pd.DataFrame:
    """Every finished point's rows, labelled with the sweep, the point and its value on each axis."""
    frames = []
    for point in sweep.points:
        if is_finished(runs / point.name, point):
            rows = point_rows(pd.read_csv(runs / point.name / "metrics.csv"))
            frames.append(rows.assign(sweep=sweep.name, point=point.name, **point.labels))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    first = ["sweep", "point", *sweep.axes, "round", "group"]
    return table[first + [c for c in table.columns if c not in first]]


def _others(sweep: Sweep) -> list[str]:
    """Axes that are neither compared nor the seed: each combination gets its own panel."""
    return [a for a in sweep.axes if a not in (sweep.compare, "seed")]


def _panels(table: pd.DataFrame, sweep: Sweep) -> list[tuple[str, pd.DataFrame]]:
    others = _others(sweep)
    if not others:
        return [("", table)]
    return [(", ".join(f"{a}={v}" for a, v in zip(others, key if isinstance(key, tuple) else (key,))), part)
            for key, part in table.groupby(others, sort=False)]


def plot_curves(table: pd.DataFrame, sweep: Sweep, path: Path) -> None:
    """RSUM against rounds: one line per value of the compared axis, a band of one std over seeds;
    a row of panels per combination of the other axes, a column per client group."""
    panels = _panels(table, sweep)
    groups = list(dict.fromkeys(table["group"]))
    fig, axes = plt.subplots(len(panels), len(groups), figsize=(4.2 * len(groups), 3.2 * len(panels)),
                             squeeze=False, sharey=True)
    for row, (title, part) in enumerate(panels):
        for col, group in enumerate(groups):
            ax = axes[row][col]
            scored = part[(part["group"] == group) & part["rsum"].notna()]  # eval-every leaves rounds unscored
            if scored.empty:
                ax.axis("off")
                continue
            for value, runs in scored.groupby(sweep.compare, sort=False):
                by_round = runs.groupby("round")["rsum"]
                mean, std = by_round.mean(), by_round.std().fillna(0)
                ax.plot(mean.index, mean, lw=1.8, marker=".", label=value)
                ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
            ax.set(title=f"{title} group {group}".strip(), xlabel="round", ylabel="RSUM (%)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def final_rounds(table: pd.DataFrame) -> pd.DataFrame:
    """Each point's rows at its last round."""
    last = table.groupby("point")["round"].transform("max")
    return table[table["round"] == last]


def plot_final(table: pd.DataFrame, sweep: Sweep, path: Path) -> None:
    """Bars: final RSUM per client group (x) and compared value (colour), mean over seeds with std whiskers."""
    panels = _panels(final_rounds(table), sweep)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.8), squeeze=False, sharey=True)
    for ax, (title, part) in zip(axes[0], panels):
        stats = part.groupby([sweep.compare, "group"], sort=False)["rsum"].agg(["mean", "std"]).fillna(0)
        values = list(dict.fromkeys(part[sweep.compare]))
        groups = list(dict.fromkeys(part["group"]))
        width = 0.8 / len(values)
        for i, value in enumerate(values):
            cell = stats.loc[value].reindex(groups)
            ax.bar([g + i * width for g in range(len(groups))], cell["mean"], width, yerr=cell["std"], capsize=2,
                   label=value)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
        ax.set(title=title or sweep.name, ylabel="final RSUM (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def final_users(sweep: Sweep, runs: Path) -> pd.DataFrame:
    """Each finished point's users at its last scored round: the point's axis values, user (partition id),
    its profile and label-noise group, and its RSUM on its own test images (user_rsum[k] in metrics.csv)."""
    rows = []
    for point in sweep.points:
        if not is_finished(runs / point.name, point):
            continue
        metrics = pd.read_csv(runs / point.name / "metrics.csv")
        last = metrics.dropna(subset=["rsum"]).iloc[-1]
        cfg = from_overrides(point.overrides)
        noise_group = {pid: name for name, clients in cfg.label_groups().items() if name != "all" for pid in clients}
        for column in (c for c in metrics.columns if c.startswith("user_rsum[")):
            pid = int(column[len("user_rsum["):-1])
            rows.append({"point": point.name, **point.labels, "user": pid, "profile": cfg.client_profiles[pid].group,
                         "group": noise_group.get(pid, ""), "rsum": last[column]})
    return pd.DataFrame(rows)


def plot_final_users(users: pd.DataFrame, sweep: Sweep, path: Path) -> None:
    """Bars: each user's final RSUM on its own test images (x), one colour per compared value, mean over
    seeds with std whiskers; a panel per combination of the other axes."""
    panels = _panels(users, sweep)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False, sharey=True)
    for ax, (title, part) in zip(axes[:, 0], panels):
        stats = part.groupby([sweep.compare, "user"], sort=False)["rsum"].agg(["mean", "std"]).fillna(0)
        values = list(dict.fromkeys(part[sweep.compare]))
        names = part.drop_duplicates("user").sort_values("user")
        width = 0.8 / len(values)
        for i, value in enumerate(values):
            cell = stats.loc[value].reindex(names["user"])
            ax.bar(names["user"] + i * width, cell["mean"], width, yerr=cell["std"], capsize=2, label=value)
        profiles = names["profile"].str.replace("frcnn-", "").str.replace("+", "+\n")  # short, on two lines
        ax.set_xticks(names["user"] + 0.4 - width / 2,
                      [f"{u}\n{p}\n{g}" for u, p, g in zip(names["user"], profiles, names["group"])], fontsize=7)
        ax.set(title=f"{title or sweep.name}: each user's own test images", ylabel="final RSUM (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(fig, path)


def curve_stats(table: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    """Per point (group 'all', scored rounds): its best RSUM, the round of the best, and the first round at
    RSUM >= sweep.reach (NaN when never reached or no reach is set)."""
    rows = []
    for point, part in table[(table["group"] == "all") & table["rsum"].notna()].groupby("point", sort=False):
        reached = part[part["rsum"] >= sweep.reach] if sweep.reach is not None else part.iloc[:0]
        rows.append({**part.iloc[0][[*sweep.axes]].to_dict(), "best": part["rsum"].max(),
                     "best_round": int(part.loc[part["rsum"].idxmax(), "round"]),
                     "reach_round": float(reached["round"].min()) if len(reached) else float("nan")})
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series, digits: int = 1) -> str:
    std = values.std()
    return f"{values.mean():.{digits}f} ± {0 if pd.isna(std) else std:.{digits}f}"


def curve_summary(table: pd.DataFrame, sweep: Sweep) -> str:
    """Markdown: best RSUM and its round, and the rounds to reach sweep.reach, over seeds (group 'all')."""
    stats = curve_stats(table, sweep)
    keys = [sweep.compare, *_others(sweep)]
    header = ["best RSUM", "round of the best"] + ([f"first round at RSUM >= {sweep.reach:g} (seeds reaching it)"]
                                                   if sweep.reach is not None else [])
    lines = [f"| {' '.join(keys)} | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for index, part in stats.groupby(keys, sort=False):
        cells = [_mean_std(part["best"]), _mean_std(part["best_round"])]
        if sweep.reach is not None:
            reached = part["reach_round"].dropna()
            cells.append(f"{_mean_std(reached) if len(reached) else 'never'} ({len(reached)} of {len(part)})")
        name = " ".join(map(str, index if isinstance(index, tuple) else (index,)))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\nBest RSUM over the scored rounds (all users' pairs), mean ± std over seeds:\n\n" + "\n".join(lines) + "\n"


def time_summary(times: pd.DataFrame) -> str:
    """One line: the point runs' total CPU and wall time (each point's last run)."""
    last = times.drop_duplicates("point", keep="last")
    return (f"\nTime: {len(last)} point runs ({', '.join(sorted(set(last['runner'])))}), "
            f"{last['cpu_seconds'].sum() / 3600:.2f} CPU hours, {last['wall_seconds'].sum() / 3600:.2f} hours wall.\n")


def summary(table: pd.DataFrame, sweep: Sweep, times: pd.DataFrame | None = None) -> str:
    """Markdown: final RSUM 'mean ± std (runs)' over seeds, one row per compared value, one column per
    combination of the other axes and client group."""
    final = final_rounds(table)
    columns = [*_others(sweep), "group"]
    stats = final.groupby([sweep.compare, *columns], sort=False)["rsum"].agg(["mean", "std", "count"])
    cells = stats.apply(lambda r: f"{r['mean']:.1f} ± {0 if pd.isna(r['std']) else r['std']:.1f} ({int(r['count'])})",
                        axis=1).unstack(columns)
    cells = cells.reindex(list(dict.fromkeys(final[sweep.compare])))
    header = [" ".join(map(str, c if isinstance(c, tuple) else (c,))) for c in cells.columns]
    lines = [f"| {sweep.compare} | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    lines += [f"| {index} | " + " | ".join(row.fillna("-")) + " |" for index, row in cells.iterrows()]
    rounds = int(final["round"].max())
    text = f"Final RSUM (round {rounds}) of sweep {sweep.name}, mean ± std over seeds (runs):\n\n" + "\n".join(lines) + "\n"
    text += curve_summary(table, sweep)
    pruning = [c for c in ("pruned", "precision", "recall", "f1") if c in final]
    scored = final[final["group"] == "all"].dropna(subset=pruning[:1]) if pruning else final.iloc[:0]
    if not scored.empty:
        stats = scored.groupby([sweep.compare, *_others(sweep)], sort=False)[pruning].agg(["mean", "std"])
        lines = [f"| {' '.join([sweep.compare, *_others(sweep)])} | " + " | ".join(pruning) + " |",
                 "|---" * (len(pruning) + 1) + "|"]
        for index, row in stats.iterrows():
            name = " ".join(map(str, index if isinstance(index, tuple) else (index,)))
            lines.append(f"| {name} | " + " | ".join(f"{row[(c, 'mean')]:.2f} ± {0 if pd.isna(row[(c, 'std')]) else row[(c, 'std')]:.2f}"
                                                   for c in pruning) + " |")
        text += "\nPruned labels against the injected noise (all clients), mean ± std over seeds:\n\n" + "\n".join(lines) + "\n"
    return text + (time_summary(times) if times is not None and len(times) else "")


def report(sweep: Sweep, runs: Path, out: Path) -> tuple[pd.DataFrame, str]:
    """A retrieval sweep's long table and summary; RSUM-by-round and final-RSUM plots, and each user's final
    RSUM (final_users.csv, final_users.png), written to `out` (semfed.tasks: the retrieval task's sweep
    report). An empty table when no point has finished."""
    table = collect(sweep, runs, is_finished)
    if table.empty:
        return table, ""
    plot_curves(table, sweep, out / "rsum_by_round.png")
    plot_final(table, sweep, out / "final_rsum.png")
    users = final_users(sweep, runs)
    if not users.empty:
        users.to_csv(out / "final_users.csv", index=False)
        plot_final_users(users, sweep, out / "final_users.png")
    times = pd.read_csv(out / TIMES) if (out / TIMES).is_file() else None
    return table, summary(table, sweep, times)
