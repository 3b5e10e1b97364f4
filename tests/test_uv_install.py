"""scripts/uv_install.py: pip's configured package sources become uv's flags, and a setting uv would not be
given is refused by name (setup.sh then installs with pip)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from uv_install import pip_settings, uv_arguments  # noqa: E402

LISTING = """:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels /srv/more-wheels'
"""


def test_pip_config_list_lines_become_settings_the_later_source_winning():
    assert pip_settings(LISTING) == {
        "cert": ["/etc/ssl/certs/ca-certificates.crt"], "default-timeout": ["180"],
        "find-links": ["/opt/wheels", "/srv/more-wheels"], "constraint": ["/etc/xdg/pip/constraints.txt"],
        "extra-index-url": ["file:///opt/pypi/simple", "file:///opt/pypi-more/simple"]}


def test_each_source_value_becomes_its_uv_flag():
    assert uv_arguments(pip_settings(LISTING)) == [
        "--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/pypi-more/simple",
        "--find-links", "/opt/wheels", "--find-links", "/srv/more-wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt"]


def test_a_setting_uv_is_not_given_is_refused_by_name():
    with pytest.raises(ValueError, match="pip settings not passed on to uv: no-binary, proxy"):
        uv_arguments(pip_settings(LISTING + "global.proxy='http://proxy:3128'\nglobal.no-binary=':all:'\n"))
