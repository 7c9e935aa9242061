"""The command line: parses options, calls the core and prints what it returns.

    app.py         the application, its global options, and every command in --help's order
    options.py     the option types every command shares; the invocation that resolves the
                   global options and turns an ldmail error into one line and exit code 1
    output.py      consoles, escaping, the one printer of errors, times and log lines
    repository.py  init, validate, schema          audience.py  audience
    preview.py     preview                         plan.py      plan (and plan --person)
    send.py        send, retry, run                summary.py   a send's summary
    people.py      history, suppress, forget       inbox.py     inbox
    events.py      events import and pull, survey import
    report.py      report                          completion.py  shell completion

`ldmail.cli:main` is the console script and `python -m ldmail` runs it; `app` is the
Typer application the tests drive."""

from .app import app, main

__all__ = ["app", "main"]
