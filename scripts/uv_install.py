"""Install packages into .venv with uv, from the package sources pip is configured with: pip unpacks and
byte-compiles one wheel after another (torch's CUDA libraries are ~3 GB), uv does it in parallel, about twice
as fast on 2 cores, with the same versions resolved. uv does not read pip's configuration, so pip's
(`pip config list`: its files and PIP_* variables) is passed on as uv's flags, versions chosen across all
sources as pip chooses them (uv's unsafe-best-match); a key uv has no flag for is named and the install
refused, so that scripts/setup.sh falls back to pip.

    .venv/bin/python scripts/uv_install.py torch==2.14.1 -e ".[test]"
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

VENV = Path(sys.executable).parent.parent
# pip option -> uv flag taking each of its whitespace-separated values
FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
VARIABLES = {"cert": "SSL_CERT_FILE"}  # pip option -> the environment variable uv reads it from
IGNORED = {"disable-pip-version-check", "default-timeout", "timeout", "no-input", "progress-bar", "quiet",
           "verbose", "cache-dir", "no-cache-dir", "root-user-action"}


def pip_settings(listing: str) -> dict[str, list[str]]:
    """{option: values} from `pip config list` lines such as "global.find-links='/opt/wheels'" or
    ":env:.extra-index-url='a b'" (later lines win, as pip's later sources do)."""
    settings = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.rsplit(".", 1)[-1]] = ast.literal_eval(value).split()
    return settings


def uv_arguments(settings: dict[str, list[str]]) -> list[str]:
    """uv pip install's flags for pip's settings; ValueError naming a setting uv is not given here."""
    unknown = sorted(set(settings) - set(FLAGS) - set(VARIABLES) - IGNORED)
    if unknown:
        raise ValueError(f"pip settings not passed on to uv: {', '.join(unknown)}")
    return [part for option, flag in FLAGS.items() for value in settings.get(option, []) for part in (flag, value)]


def main(packages: list[str]) -> int:
    listing = subprocess.run([str(VENV / "bin" / "pip"), "config", "list"], capture_output=True, text=True, check=True)
    settings = pip_settings(listing.stdout)
    try:
        flags = uv_arguments(settings)
    except ValueError as err:
        print(f"semfed: {err}", file=sys.stderr)
        return 2
    env = {**os.environ, **{variable: settings[option][0] for option, variable in VARIABLES.items()
                            if settings.get(option)}}
    command = [str(VENV / "bin" / "uv"), "pip", "install", "--quiet", "--python", sys.executable,
               "--index-strategy", "unsafe-best-match", "--compile-bytecode", *flags, *packages]
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
