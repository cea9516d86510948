"""`magic -v` / `--log-level` / `$MAGIC_LOG_LEVEL` route the project's log records to stderr."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from magic_driver import log_setup
from magic_driver.cli import main


@pytest.fixture(autouse=True)
def restore_loggers():
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
             for name in (*log_setup.PACKAGES, "transformers")}
    yield
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers


def _magic(*args: str, env: dict | None = None) -> None:
    result = CliRunner().invoke(main, [*args, "presets", "list"], env=env)
    assert result.exit_code == 0, result.output


def _logged(capsys) -> str:
    capsys.readouterr()
    logging.getLogger("magic_core.engine").info("plan: schedule gradients, world size 1")
    logging.getLogger("magic_driver.run_attribute").debug("details")
    logging.getLogger("transformers.modeling_utils").info("loading weights")
    return capsys.readouterr().err


def test_by_default_nothing_below_a_warning_is_shown(capsys):
    _magic()
    assert _logged(capsys) == ""
    logging.getLogger("magic_unlearn.run").warning("retain corpus is small")
    assert "WARNING magic_unlearn.run: retain corpus is small" in capsys.readouterr().err


@pytest.mark.parametrize("args, env, shown, hidden", [
    (["-v"], None, ["INFO magic_core.engine: plan: schedule gradients"], ["details"]),
    (["-vv"], None, ["plan: schedule", "DEBUG magic_driver.run_attribute: details"], []),
    (["--log-level", "DEBUG"], None, ["plan: schedule", "details"], []),
    (["-vv", "--log-level", "warning"], None, [], ["plan", "details"]),
    ([], {"MAGIC_LOG_LEVEL": "info"}, ["plan: schedule"], ["details"]),
])
def test_the_level_is_chosen_on_the_command_line(capsys, args, env, shown, hidden):
    _magic(*args, env=env)
    err = _logged(capsys)
    for text in shown:
        assert text in err
    for text in hidden + ["loading weights"]:  # third-party INFO stays off
        assert text not in err


def test_configuring_twice_logs_each_record_once(capsys):
    _magic("-v")
    _magic("-v")
    assert _logged(capsys).count("plan: schedule") == 1


def test_ranks_say_who_they_are(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    _magic("-v")
    assert " rank 1 INFO magic_core.engine: plan" in _logged(capsys)


def test_a_level_that_does_not_exist_is_refused():
    result = CliRunner().invoke(main, ["--log-level", "loud", "presets", "list"])
    assert result.exit_code == 2
    assert "loud" in result.output and "info" in result.output
