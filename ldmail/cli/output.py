"""How the command line writes: consoles that show control characters instead of obeying
them, the one printer of errors, times in the project's zone, and log lines on stderr."""

from __future__ import annotations

import logging
import sys
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from ..clock import wall_now

if TYPE_CHECKING:
    from rich.console import Console

    from ..measurement.sensitivity import Sensitivity

# ISO 8601 with the UTC offset: unambiguous in any locale and sortable in a log file.
LOG_TIME = "%Y-%m-%dT%H:%M:%S%z"


def console(stderr: bool = False) -> Console:
    from rich.console import Console
    from rich.errors import MarkupError
    from rich.text import Text

    from ..sandbox.hygiene import visible

    class TerminalConsole(Console):
        """A console that shows control characters from data instead of obeying them.

        Names, addresses and file names come from HR exports and pull requests; an escape
        sequence in one must not retitle or clear the terminal. Every string printed (table
        cells included) passes through render_str; one that is not valid markup (a stray
        "[/b]" in a name) is shown as plain text rather than crashing the command.
        """

        def render_str(self, text: str, **options: Any) -> Text:
            try:
                return super().render_str(visible(text), **options)
            except MarkupError:
                return super().render_str(visible(text), **{**options, "markup": False})

    # Errors stay one line each (soft wrap) so `file:line: message` can be grepped.
    probe = Console(stderr=stderr)
    # Piped output (cron mail, CI logs) gets room for full addresses and timestamps.
    width = None if probe.is_terminal else 160
    return TerminalConsole(stderr=stderr, highlight=False, soft_wrap=stderr, width=width)


def escape(text: str) -> str:
    """Text from data, printed as it is (a "[b]" in it is not markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_error(message: str, *, colon: bool = False) -> None:
    """Every error the user reads: `error <message>` on stderr, one line. `colon` writes
    `error: ` as the imports do after their list of skipped rows."""
    label = "[red]error[/red]:" if colon else "[red]error[/red]"
    console(stderr=True).print(f"{label} {escape(message)}", markup=True)


def local(moment: str, zone: tzinfo) -> str:
    """An ISO UTC moment of the ledger in the project's time zone, with the zone's name."""
    from ..clock import from_iso, shown

    return shown(from_iso(moment), zone)


def run_stamp(out: Console) -> str:
    """Cron appends run after run to one log: there each run's summary starts with its time
    (nothing on a terminal)."""
    return "" if out.is_terminal else wall_now().astimezone().strftime(LOG_TIME) + " "


def sensitivity_dict(found: Sensitivity) -> dict[str, object]:
    return {"campaign": found.campaign, "mailed": found.mailed, "holdout": found.holdout,
            "holdout_share": found.holdout_share, "baseline": found.baseline,
            "detectable_uplift_pp": None if found.detectable is None
            else round(found.detectable * 100, 1),
            "expected_uplift_pp": None if found.expected is None
            else round(found.expected * 100, 1),
            "decidable": found.decidable}


def print_sensitivities(found: list[Sensitivity], out: Console) -> None:
    """What each measured campaign can detect, from the people it would reach."""
    if not found:
        return
    out.print("Smallest uplift each campaign can detect with these people:")
    for item in found:
        mark = ("" if item.decidable is None else "  [green]hypothesis decidable[/green]"
                if item.decidable else "  [yellow]hypothesis not decidable[/yellow]")
        out.print(f"  {item.campaign}: {escape(item.summary())}{mark}", soft_wrap=True)


def _log_handler() -> logging.Handler:
    """Log lines on stderr: coloured with a time on every line in a terminal; plain
    `time level message` lines, unpadded, in a log file or cron mail."""
    err = console(stderr=True)
    if err.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=err, show_path=False, omit_repeated_times=False,
                           log_time_format=LOG_TIME)
    plain = _StderrHandler()
    plain.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", LOG_TIME))
    return plain


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a line is logged (a test runner, or a second call
    in the same process, may have replaced the one there was at set-up)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_to_stderr(name: str, level: int) -> None:
    """Send the `name` logger's lines from `level` up to stderr, and nowhere else."""
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate = [_log_handler()], False
    logger.setLevel(level)
