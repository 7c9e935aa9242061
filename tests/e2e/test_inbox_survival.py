"""`ldmail inbox` against what goes wrong outside: runs killed at random moments, a lock a
killed run left behind, a hostile or trickling IMAP server, mails too large to read, and a
SIGTERM in the middle of a run."""

# The fixtures `sent` and `dovecot` come from test_inbox; their parameters share the names.
# ruff: noqa: F811

from __future__ import annotations

import mailbox
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from ldmail.inbox.folders import MboxFolder

from ..projects import HEADER, NOW, edit_yaml
from .bounce_mails import exchange_ndr, message_id, postfix_bounce
from .conftest import Cli
from .hostile_imap import (
    BYE_AFTER_SELECT,
    BYE_ON_SECOND_FETCH,
    LONG_LINE,
    LONG_LITERAL,
    POLITE,
    STARTTLS_TRICKLE,
    TRICKLE,
    TRICKLE_GREETING,
    HostileImap,
)
from .imap_server import Dovecot
from .smtp_server import ledger_rows
from .test_inbox import (
    ANN,
    BOB,
    LATER,
    PASSWORD_ENV,
    dovecot,  # noqa: F401  (a fixture)
    inbox,
    maildir,
    one_line_error,
    original,
    sent,  # noqa: F401  (a fixture)
    summary,
    use_dovecot,
    use_inbox,
)

ROOT = Path(__file__).resolve().parents[2]


def large_skipped_and_bob_suppressed(cli: Cli, sent: Path) -> None:
    """Ann's 200 kB mail is counted as too large and never read; Bob's bounce after it is
    applied."""
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (
        "inbox: 1 bounce (1 hard, 0 soft), 0 unsubscribes, 1 left alone (larger than "
        "inbox.max_mail_size (50,000 bytes; not read))")
    assert [row["email"] for row in ledger_rows(sent, "SELECT email FROM suppressions")] == [BOB]


def ldmail(project: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m ldmail ARGS` as cron starts it: its own process, output captured."""
    return subprocess.Popen([sys.executable, "-m", "ldmail", *args, "--project", str(project),
                             "--now", LATER.isoformat()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(state: threading.Event, seconds: float = 60) -> None:
    assert state.wait(seconds), "the state never came"


# -- runs killed at random moments ------------------------------------------------------------

MANY = 200


@pytest.fixture
def many_sent(project: Path, cli: Cli) -> Path:
    """MANY people, no holdout, each sent their first message (to the outbox)."""
    rows = [f"p{n:03d}@example.org;P{n};Test;EN;Sales;03-02-2019;" for n in range(MANY)]
    (project / "people.csv").write_text("\r\n".join([HEADER, *rows]) + "\r\n")
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    result = cli("send", "--project", project, "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    return project


def many_bounces(project: Path) -> list[bytes]:
    """A Postfix bounce (each its own Message-ID) for every message sent."""
    return [postfix_bounce(original(project, f"p{n:03d}@example.org"), f"p{n:03d}@example.org",
                           queue=f"Q{n:05d}") for n in range(MANY)]


def done_ids(project: Path, kind: str) -> Counter[str]:
    folder = project / "exports" / "ldmail" / ("processed.mbox" if kind == "mbox" else
                                                "processed")
    box: mailbox.Mailbox[mailbox.Message] = mailbox.mbox(folder) if kind == "mbox" \
        else mailbox.Maildir(folder, create=False)
    return Counter(message_id(box.get_bytes(key)) for key in box.keys())


def applied(project: Path) -> int:
    return int(ledger_rows(project, "SELECT count(*) AS n FROM inbox_mails")[0]["n"])


def done_bytes(project: Path, kind: str) -> int:
    """How much mail the done folder holds: it grows while a run moves mails."""
    done = project / "exports" / "ldmail"
    files = [done / "processed.mbox"] if kind == "mbox" else \
        [path for sub in ("cur", "new") for path in (done / "processed" / sub).glob("*")]
    return sum(path.stat().st_size for path in files if path.exists())


def kill_at_a_random_moment(project: Path, kind: str, chance: random.Random) -> str:
    """Start `inbox` and SIGKILL it while it applies (after a random number of mails) or
    while it moves them (once the done folder grows); returns its output."""
    run = ldmail(project, "inbox")
    if chance.random() < 0.5 and applied(project) < MANY:
        target = applied(project) + chance.randrange(1, MANY - applied(project) + 1)
        reached: Callable[[], bool] = lambda: applied(project) >= target  # noqa: E731
    else:
        before = done_bytes(project, kind)
        reached = lambda: done_bytes(project, kind) > before  # noqa: E731
    while run.poll() is None and not reached():
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    return "".join(run.communicate())


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_ten_random_kills_then_one_run_apply_and_move_each_mail_once(
        many_sent: Path, kind: str) -> None:
    project, mails = many_sent, many_bounces(many_sent)
    if kind == "mbox":
        path = project / "exports" / "inbox.mbox"
        path.parent.mkdir()
        box = mailbox.mbox(path)
        for mail in mails:
            box.add(mail)
        box.close()
        use_inbox(project, kind="mbox", path="exports/inbox.mbox")
    else:
        maildir(project, mails)
        use_inbox(project, kind="maildir", path="exports/inbox")
    seed = random.randrange(10**6)
    print("seed", seed)
    chance = random.Random(seed)
    ledger_rows(project, "SELECT 1")  # the ledger exists before the first kill
    outputs = [kill_at_a_random_moment(project, kind, chance) for _ in range(10)]
    last = ldmail(project, "inbox")
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, out + err
    assert not [text for text in [*outputs, out + err] if "Traceback" in text], outputs

    assert ledger_rows(project, "SELECT count(*) AS n FROM inbox_mails") == [{"n": MANY}]
    assert ledger_rows(project, "SELECT count(*) AS n FROM messages WHERE state = 'bounced'"
                       ) == [{"n": MANY}]
    assert ledger_rows(project, "SELECT count(*) AS n FROM suppressions") == [{"n": MANY}]
    assert done_ids(project, kind) == Counter({message_id(mail): 1 for mail in mails})
    left = mailbox.mbox(project / "exports" / "inbox.mbox") if kind == "mbox" \
        else mailbox.Maildir(project / "exports" / "inbox", create=False)
    assert len(left) == 0
    assert not (project / "exports" / "inbox.mbox.lock").exists()


# -- mbox locks ------------------------------------------------------------------------------

@pytest.fixture
def one_bounce_mbox(sent: Path) -> Path:
    path = sent / "exports" / "inbox.mbox"
    path.parent.mkdir()
    box = mailbox.mbox(path)
    box.add(exchange_ndr(original(sent, ANN), ANN))
    box.close()
    use_inbox(sent, kind="mbox", path="exports/inbox.mbox")
    return path


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_a_dotlock_a_killed_run_left_is_recovered(one_bounce_mbox: Path, cli: Cli) -> None:
    project = one_bounce_mbox.parent.parent
    lock = one_bounce_mbox.with_name("inbox.mbox.lock")
    lock.write_text(f"ldmail {dead_pid()}@{socket.gethostname()}\n")
    result = inbox(cli, project)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox: 1 bounce (1 hard, 0 soft)")
    assert not lock.exists()


def test_an_old_dotlock_of_another_program_is_stale(one_bounce_mbox: Path, cli: Cli) -> None:
    """Postfix, procmail and older ldmail versions leave an empty dotlock."""
    project = one_bounce_mbox.parent.parent
    lock = one_bounce_mbox.with_name("inbox.mbox.lock")
    lock.write_text("")
    os.utime(lock, (time.time() - 600, time.time() - 600))
    result = inbox(cli, project)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox: 1 bounce (1 hard, 0 soft)")


def test_a_lock_held_for_real_is_one_line_and_changes_nothing(one_bounce_mbox: Path,
                                                               cli: Cli) -> None:
    project = one_bounce_mbox.parent.parent
    lock = one_bounce_mbox.with_name("inbox.mbox.lock")
    lock.write_text("")  # a mail server delivering right now
    line = one_line_error(inbox(cli, project))
    assert "exports/inbox.mbox: locked by another program (its dotlock inbox.mbox.lock)" in line
    assert "run again later" in line
    assert lock.exists()
    lock.unlink()

    # A live ldmail (or a mail server) holding the fcntl lock.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.lockf(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
         str(one_bounce_mbox)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        line = one_line_error(inbox(cli, project))
        assert "locked by another program (its fcntl lock)" in line
    finally:
        holder.communicate("")
    assert not ledger_rows(project, "SELECT * FROM suppressions")
    assert len(mailbox.mbox(one_bounce_mbox)) == 1
    assert inbox(cli, project).exit_code == 0
    assert len(ledger_rows(project, "SELECT * FROM suppressions")) == 1


# -- mails too large to read -----------------------------------------------------------------

def padded_bounce(project: Path, address: str, size: int) -> bytes:
    """A bounce carrying its original with `size` bytes of attachment-like padding."""
    mail = exchange_ndr(original(project, address), address)
    pad = b"X-Padding: " + b"p" * 70 + b"\r\n"
    return mail.replace(b"Subject: ", pad * (size // len(pad)) + b"Subject: ", 1)


def test_a_mail_over_the_size_bound_is_skipped_and_counted_over_imap(
        sent: Path, cli: Cli, dovecot: Dovecot,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_dovecot(sent, dovecot, monkeypatch)
    edit_yaml(sent / "ldmail.yaml", lambda s: s["inbox"].update(max_mail_size=50_000))
    dovecot.append(padded_bounce(sent, ANN, 200_000))
    dovecot.append(exchange_ndr(original(sent, BOB), BOB))
    large_skipped_and_bob_suppressed(cli, sent)
    assert len(dovecot.messages()) == 1  # the large one stays for a person to look at


def test_a_mail_over_the_size_bound_is_skipped_in_a_maildir(sent: Path, cli: Cli
                                                            ) -> None:
    maildir(sent, [padded_bounce(sent, ANN, 200_000), exchange_ndr(original(sent, BOB), BOB)])
    use_inbox(sent, kind="maildir", path="exports/inbox", max_mail_size=50_000)
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert "1 left alone (larger than inbox.max_mail_size" in summary(result.stdout)
    assert [row["email"] for row in ledger_rows(sent, "SELECT email FROM suppressions")] == [BOB]


# -- a hostile IMAP server (a stand-in) ------------------------------------------------------

@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileImap]:
    server = HostileImap(request.param)
    yield server
    server.close()


def use_hostile(project: Path, server: HostileImap, monkeypatch: pytest.MonkeyPatch,
                timeout: str = "3s", security: str = "none", **more: Any) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    use_inbox(project, kind="imap", host="127.0.0.1", port=server.port, security=security,
              user="learning", password_env=PASSWORD_ENV, timeout=timeout, **more)


@pytest.mark.parametrize(("hostile", "said"), [
    (BYE_AFTER_SELECT, "SELECT failed (the server is going away)"),
    (LONG_LINE, "SELECT failed (got more than 1000000 bytes)"),
    (LONG_LITERAL, "SELECT failed (the server announced 2,097,152 bytes where at most "
                   "1,000,000 are expected)"),
    (TRICKLE, "no complete answer to SELECT within 3 s (inbox.timeout in ldmail.yaml)"),
], indirect=["hostile"])
def test_a_hostile_imap_server_is_one_line_within_the_deadline(
        sent: Path, cli: Cli, hostile: HostileImap, said: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_hostile(sent, hostile, monkeypatch)
    started = time.monotonic()
    line = one_line_error(inbox(cli, sent))
    assert time.monotonic() - started < 30
    assert line.startswith(f"error imap 127.0.0.1:{hostile.port}: {said}"), line
    assert "what was applied is recorded, the rest waits for the next run" in line


@pytest.mark.parametrize("hostile", [TRICKLE_GREETING], indirect=True)
def test_a_trickled_greeting_ends_by_the_deadline(sent: Path, cli: Cli, hostile: HostileImap,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    use_hostile(sent, hostile, monkeypatch)
    started = time.monotonic()
    line = one_line_error(inbox(cli, sent))
    assert time.monotonic() - started < 30
    assert line.startswith(f"error cannot reach the IMAP server 127.0.0.1:{hostile.port} (no "
                           "greeting within 3 s)"), line


@pytest.mark.parametrize("hostile", [BYE_ON_SECOND_FETCH], indirect=True)
def test_what_was_applied_before_a_bye_stays_applied(
        sent: Path, cli: Cli, hostile: HostileImap,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hostile.mails = [exchange_ndr(original(sent, ANN), ANN),
                     exchange_ndr(original(sent, BOB), BOB)]
    use_hostile(sent, hostile, monkeypatch)
    line = one_line_error(inbox(cli, sent))
    assert "UID FETCH failed (" in line
    assert [row["email"] for row in ledger_rows(sent, "SELECT email FROM suppressions")] == [ANN]


@pytest.mark.parametrize("hostile", [POLITE], indirect=True)
def test_a_mail_whose_size_the_server_keeps_is_fetched_partially_and_skipped(
        sent: Path, cli: Cli, hostile: HostileImap,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No RFC822.SIZE for mail 1: the run fetches at most max_mail_size + 1 bytes of it,
    counts it as too large and goes on to the bounce after it."""
    hostile.mails = [padded_bounce(sent, ANN, 200_000), exchange_ndr(original(sent, BOB), BOB)]
    hostile.unsized = {1}
    use_hostile(sent, hostile, monkeypatch, max_mail_size=50_000)
    large_skipped_and_bob_suppressed(cli, sent)


@pytest.mark.parametrize("hostile", [POLITE], indirect=True)
def test_a_search_answer_over_a_megabyte_is_read(
        sent: Path, cli: Cli, hostile: HostileImap,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 110,000 mails make the UID SEARCH line longer than imaplib's 1 MB bound."""
    hostile.mails = [exchange_ndr(original(sent, BOB), BOB)]
    hostile.padding = 200_000  # each over the size bound: listed, sized, never fetched
    use_hostile(sent, hostile, monkeypatch, timeout="5m")
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox: 1 bounce (1 hard, 0 soft), 0 unsubscribes, "
                                             "200000 left alone (larger than")
    assert [row["email"] for row in ledger_rows(sent, "SELECT email FROM suppressions")] == [BOB]


def ended_by_sigterm(run: subprocess.Popen[str], hostile: HostileImap) -> str:
    """SIGTERM once the server trickles; the run ends within 5 s without a traceback.
    Returns what it said on stderr."""
    wait_for(hostile.trickling)
    stopped = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=30)
    assert time.monotonic() - stopped < 5, err
    assert "Traceback" not in out + err
    return err


@pytest.mark.parametrize("hostile", [STARTTLS_TRICKLE], indirect=True)
def test_sigterm_ends_a_trickled_starttls_handshake_within_seconds(
        sent: Path, hostile: HostileImap, monkeypatch: pytest.MonkeyPatch) -> None:
    use_hostile(sent, hostile, monkeypatch, timeout="5m", security="starttls")
    run = ldmail(sent, "inbox")
    err = ended_by_sigterm(run, hostile)
    assert run.returncode == 1, err
    assert "stopped" in err, err


@pytest.mark.parametrize("command", ["inbox", "run"])
@pytest.mark.parametrize("hostile", [TRICKLE], indirect=True)
def test_sigterm_ends_a_run_against_a_trickling_server_within_seconds(
        sent: Path, hostile: HostileImap, command: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_hostile(sent, hostile, monkeypatch, timeout="5m")
    run = ldmail(sent, *([command] if command == "inbox" else ["run", "--interval", "1h"]))
    err = ended_by_sigterm(run, hostile)
    if command == "inbox":
        assert run.returncode == 1, err
        assert "stopped early: stopped on request" in err
    else:
        assert run.returncode == 0, err
        assert "stopped after 1 run(s)" in err


def test_a_parse_of_the_done_mbox_shows_each_mail_with_its_from_line(
        one_bounce_mbox: Path, cli: Cli) -> None:
    """Moved mails keep their "From " line and the mbox stays readable by any mail reader."""
    project = one_bounce_mbox.parent.parent
    assert inbox(cli, project).exit_code == 0
    done = mailbox.mbox(project / "exports" / "ldmail" / "processed.mbox")
    [key] = done.keys()
    assert done.get_message(key).get_from().startswith("MAILER-DAEMON")
    parsed = message_from_bytes(done.get_bytes(key), policy=compat32)
    assert parsed["Subject"].startswith("Undeliverable: ")


def test_a_move_cut_short_between_append_and_removal_is_undone_once(
        one_bounce_mbox: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The moment the kill trial can only hit by chance: the done mbox has the mail, the
    inbox still has it too. The next run cuts the done mbox back and moves it once."""
    project = one_bounce_mbox.parent.parent
    done = project / "exports" / "ldmail" / "processed.mbox"

    def killed(box: mailbox.mbox) -> None:
        raise KeyboardInterrupt  # as a SIGKILL would, but where we choose

    with monkeypatch.context() as patch:
        patch.setattr(mailbox.mbox, "flush", killed)
        assert inbox(cli, project).exit_code != 0  # click says "Aborted!"
    assert len(mailbox.mbox(done)) == 1 and len(mailbox.mbox(one_bounce_mbox)) == 1
    result = inbox(cli, project)
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).endswith("1 applied by an earlier run (moved now)")
    assert len(mailbox.mbox(done)) == 1 and len(mailbox.mbox(one_bounce_mbox)) == 0
    assert not done.with_name("processed.mbox.moving").exists()


def test_an_mbox_another_program_changes_mid_run_is_one_line_and_the_next_run_moves(
        one_bounce_mbox: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that ignores the locks appends a mail while the run reads: the move meets
    the clash, the run ends in one line, and the next run moves the handled mail once."""
    project = one_bounce_mbox.parent.parent
    done = project / "exports" / "ldmail" / "processed.mbox"
    fetch = MboxFolder.fetch

    def fetch_then_append(folder: MboxFolder, key: str, limit: int) -> bytes:
        with open(one_bounce_mbox, "ab") as file:
            file.write(b"From someone@example.org Mon Dec  7 10:00:00 2026\n"
                       b"Subject: late\n\nlate\n\n")
        return fetch(folder, key, limit)

    with monkeypatch.context() as patch:
        patch.setattr(MboxFolder, "fetch", fetch_then_append)
        line = one_line_error(inbox(cli, project))
    assert "changed by another program" in line, line
    assert [row["email"] for row in ledger_rows(project, "SELECT email FROM suppressions")] \
        == [ANN]
    result = inbox(cli, project)
    assert result.exit_code == 0, result.output
    assert len(mailbox.mbox(done)) == 1
    assert [message["Subject"] for message in mailbox.mbox(one_bounce_mbox)] == ["late"]


def test_a_dry_run_on_an_mbox_leaves_no_file_behind(one_bounce_mbox: Path, cli: Cli) -> None:
    project = one_bounce_mbox.parent.parent
    before = sorted(path.name for path in one_bounce_mbox.parent.iterdir())
    result = inbox(cli, project, "--dry-run")
    assert result.exit_code == 0, result.output
    assert summary(result.stdout).startswith("inbox (dry run: nothing changed or moved): 1 bounce")
    assert sorted(path.name for path in one_bounce_mbox.parent.iterdir()) == before
