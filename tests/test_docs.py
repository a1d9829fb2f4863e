"""The README documents every setting and the two set-up commands."""

import os

import pytest

from sync.config import SETTINGS, env_name, flag_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme(setting):
    readme = _read("README.md")
    assert f"`{flag_name(setting.name)}`" in readme
    assert f"`{env_name(setting.name)}`" in readme


def test_ci_runs_the_readme_test_command():
    readme = _read("README.md")
    ci = _read(".ci/run")
    command = next(line for line in ci.splitlines() if "pytest" in line and "pip" in line)
    assert command.strip() in readme
