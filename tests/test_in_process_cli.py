"""The in-process runner's command line: help is help, overrides reach the run."""

import pytest

from server import in_process


def test_help_prints_usage_and_starts_no_run(monkeypatch, capsys):
    monkeypatch.setattr(in_process, "run_in_process", lambda overrides: pytest.fail("--help started a run"))
    with pytest.raises(SystemExit) as exit_:
        in_process.main(["--help"])
    assert exit_.value.code == 0 and "run-config overrides" in capsys.readouterr().out


def test_overrides_reach_the_run_as_flwr_run_parses_them(monkeypatch):
    seen = []
    monkeypatch.setattr(in_process, "run_in_process", seen.append)
    in_process.main(["num-server-rounds=2 seed=3", "", "run-name='x y'"])
    in_process.main([])
    assert seen == [{"num-server-rounds": 2, "seed": 3, "run-name": "x y"}, {}]
