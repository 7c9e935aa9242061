"""The `ldmail` command (ldmail.cli.main) promises that an error nobody foresaw (a bug) reaches
the user as one line on stderr and exit 1, never as a traceback."""

from __future__ import annotations

import importlib

import pytest

# The module: ldmail.cli's `app` is the Typer application it defines.
cli_app = importlib.import_module("ldmail.cli.app")


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in the outbox")

    monkeypatch.setattr(cli_app, "app", broken)
    with pytest.raises(SystemExit) as stopped:
        cli_app.main()
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [
        "error unexpected RuntimeError: a bug in the outbox (a bug in ldmail: run with -v to "
        "log where it happened, and report it)"]
