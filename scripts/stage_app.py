"""Copy the app's files, exactly those `flwr run .` would pack into its FAB, into a fresh folder and print
its path, so that the scripts submit that folder instead of the checkout.

`flwr run` lists every file under the app folder and resolves each path before it filters them
(flwr 1.42, `flwr.cli.utils.collect_files`): a checkout holds its `.venv`, `work/` and `.flwrhome/`, about
64,000 files here: submitting a tiny run took 5.9 s, 3.3 s staged (BENCHMARKS.md). git lists the candidates in
milliseconds (tracked files and untracked ones it does not ignore); Flower's own publish rules
(`filter_paths_for_publish`: its include and exclude patterns, then the app's .gitignore) choose among them,
so the FAB holds the same files. Outside a git checkout the app folder itself is printed.

    python scripts/stage_app.py [APP_DIR] [--into DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flwr.cli.utils import filter_paths_for_publish


def candidate_files(app_dir: Path) -> list[str] | None:
    """Relative POSIX paths of the files git tracks or would track under app_dir; None outside a checkout."""
    try:
        listed = subprocess.run(["git", "-C", str(app_dir), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({p for p in listed.decode().split("\0") if p})


def stage_app(app_dir: Path, into: Path) -> Path:
    """Copy the files Flower would publish from app_dir into `into` (created); returns `into`, or app_dir
    itself when it is not a git checkout. Files git lists but the working tree lacks (deleted, not yet
    committed) and symlinks (Flower skips them) are left out."""
    listed = candidate_files(app_dir)
    if listed is None:
        return app_dir
    files = {p: app_dir / p for p in listed if (app_dir / p).is_file() and not (app_dir / p).is_symlink()}
    for relative in filter_paths_for_publish(files):
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(files[relative], target)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app_dir", nargs="?", default=".", help="the app folder (default: the current one)")
    parser.add_argument("--into", help="folder to copy into (default: a new temporary folder)")
    args = parser.parse_args()
    into = Path(args.into) if args.into else Path(tempfile.mkdtemp(prefix="semfed-app-"))
    staged = stage_app(Path(args.app_dir).resolve(), into)
    if staged != into and not args.into:
        into.rmdir()  # not a git checkout: the app folder is submitted as it is
    print(staged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
