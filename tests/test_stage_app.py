"""scripts/stage_app.py: the folder the scripts submit holds what Flower would pack from the checkout, so the
FAB is the same to the byte, without Flower walking .venv and work/."""

import shutil
import subprocess
import sys
from pathlib import Path

from flwr.cli.build import build_fab_from_disk
from flwr.cli.utils import collect_files, filter_paths_for_publish

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from stage_app import stage_app  # noqa: E402


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def app_checkout(root: Path) -> Path:
    """A git checkout of a small app: tracked files, an untracked new module, ignored folders full of files
    Flower would also have to skip, a symlink and a file git knows but the working tree lost."""
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    write(root / ".gitignore", ".venv\nwork/\n*.log\n")
    write(root / "server" / "app.py", "app = None\n")
    write(root / "clients" / "app.py", "app = None\n")
    write(root / "docs" / "notes.md", "# notes\n")
    write(root / "gone.py", "x = 1\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    (root / "gone.py").unlink()                                # in git's index, not on disk
    write(root / "clients" / "new_module.py", "y = 2\n")      # untracked, not ignored: Flower packs it
    write(root / ".venv" / "lib" / "site.py", "z = 3\n")      # ignored
    write(root / "work" / "runs" / "metrics.json", "{}\n")    # ignored
    write(root / "debug.log", "noise\n")                      # ignored by pattern
    (root / "linked.py").symlink_to(root / "server" / "app.py")  # Flower skips symlinks
    return root


def test_the_staged_folder_holds_what_flower_would_publish_from_the_checkout(tmp_path):
    checkout = app_checkout(tmp_path / "checkout")
    staged = stage_app(checkout, tmp_path / "staged")
    got = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert got == set(filter_paths_for_publish(collect_files(checkout)))
    assert got == {".gitignore", "pyproject.toml", "server/app.py", "clients/app.py", "clients/new_module.py",
                   "docs/notes.md"}


def test_the_fab_built_from_the_staged_folder_is_the_checkouts_to_the_byte(tmp_path):
    checkout = app_checkout(tmp_path / "checkout")
    staged = stage_app(checkout, tmp_path / "staged")
    assert build_fab_from_disk(staged) == build_fab_from_disk(checkout)


def test_outside_a_git_checkout_the_app_folder_itself_is_submitted(tmp_path):
    write(tmp_path / "app" / "server" / "app.py", "app = None\n")
    assert stage_app(tmp_path / "app", tmp_path / "staged") == tmp_path / "app"
    assert not (tmp_path / "staged").exists()
