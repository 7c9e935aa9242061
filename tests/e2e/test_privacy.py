"""`suppress` stops all mail for good; `forget` leaves no trace of the person in the ledger."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from ..projects import NOW, PEOPLE, edit_yaml, write_people
from .bounce_mails import postfix_bounce
from .conftest import Cli
from .smtp_server import SmtpServer, ledger_rows, send, use_smtp, wait_for
from .test_inbox import inbox, maildir, original, sent, use_inbox

__all__ = ["sent"]  # the fixture, shared with the inbox tests
PERSON = "ann@example.org"

DAY1 = "2026-12-01T10:00+01:00"
DAY4 = "2026-12-04T10:00+01:00"
ANN = "ann.devries@example.org"


def outbox_recipients(project: Path) -> list[str]:
    return [line for path in sorted((project / ".ldmail/outbox").glob("*.eml"))
            for line in path.read_text("utf-8").splitlines() if line.startswith("To:")]


def test_suppressed_person_gets_nothing_more(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    first = [to for to in outbox_recipients(project) if ANN in to]
    assert len(first) == 1
    result = cli("suppress", ANN, "--reason", "asked by phone", "--project", project)
    assert result.exit_code == 0
    assert f"{ANN} is now suppressed" in result.stdout
    assert cli("send", "--project", project, "--now", DAY4).exit_code == 0
    assert [to for to in outbox_recipients(project) if ANN in to] == first
    history = cli("history", ANN, "--project", project).stdout
    assert "asked by phone" in history and "suppressed" in history


def test_suppression_list_import(project: Path, cli: Cli, tmp_path: Path) -> None:
    bounces = tmp_path / "bounces.csv"
    bounces.write_text("Email;Reason\nbob.smith@example.org;mailbox full\nnonsense;x\n",
                       encoding="utf-8")
    result = cli("suppress", "--file", bounces, "--project", project)
    assert result.exit_code == 0
    assert "1 address(es) suppressed, 0 already suppressed, 1 row(s) skipped" in result.stdout
    assert "row 3: invalid e-mail address 'nonsense'" in result.stdout
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    assert not [to for to in outbox_recipients(project) if "bob.smith" in to]


def test_forget_erases_every_trace(project: Path, cli: Cli) -> None:
    assert cli("send", "--project", project, "--now", DAY1).exit_code == 0
    result = cli("forget", ANN, "--project", project)
    assert result.exit_code == 0
    assert ANN not in result.output
    ledger_files = list((project / ".ldmail").glob("ledger.db*"))
    for path in ledger_files:
        data = path.read_bytes()
        assert b"ann.devries" not in data.lower() and b"de vries" not in data.lower(), path
    assert not [to for to in outbox_recipients(project) if ANN in to]
    for command in (["history", ANN], ["send", "--now", DAY4], ["report"]):
        output = cli(*command, "--project", project).output
        assert ANN not in output and "de Vries" not in output, command
    assert not [to for to in outbox_recipients(project) if ANN in to]  # never mailed again
    with sqlite3.connect(project / ".ldmail/ledger.db") as db:
        rows = db.execute("SELECT count(*) FROM messages WHERE email LIKE 'forgotten:%'")
        assert rows.fetchone()[0] == 1  # still counted, under a keyed hash


# -- forget wins every race, and leaves no trace of its own ------------------------------------

def every_byte(root: Path) -> bytes:
    """The raw bytes of every file under `root` (the ledger, its log, locks, outbox, previews)."""
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*"))
                    if path.is_file() and not path.is_symlink())


def without(project: Path, address: str) -> None:
    """The person leaves the HR export too, as forget asks."""
    write_people(project, {email: rest for email, rest in PEOPLE.items() if email != address})


def test_a_bounce_after_forget_stores_and_prints_only_the_hash(sent: Path, cli: Cli) -> None:
    bounce = postfix_bounce(original(sent, PERSON), PERSON)
    without(sent, PERSON)
    gone = cli("forget", PERSON, "--project", sent)
    assert gone.exit_code == 0, gone.output
    maildir(sent, [bounce])
    use_inbox(sent, kind="maildir", path="exports/inbox")
    result = inbox(cli, sent)
    assert result.exit_code == 0, result.output
    assert "hard bounce  (forgotten) welcome/hello: (erased) (userunknown: already suppressed)" \
        in result.stdout, result.stdout
    assert PERSON not in result.output
    assert PERSON.encode() not in every_byte(sent / ".ldmail")
    bounced = ledger_rows(sent, "SELECT email, state, error FROM messages WHERE state = "
                                "'bounced'")
    assert [(row["state"], row["error"]) for row in bounced] == [("bounced", "(erased)")]
    assert bounced[0]["email"].startswith("forgotten:")


def test_forget_leaves_no_trace_of_its_own(project: Path, cli: Cli,
                                           smtp_server: SmtpServer) -> None:
    """A held message's reason (with the name), a failure's reason (with the address) in the
    runs' summaries, two previews for the person, and a partial outbox file a killed send
    left: after forget no byte of the address or the name is left in the project."""
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    broken = {**PEOPLE, PERSON: 'Ann;"de\nVries";EN;Sales;03-02-2019;'}
    write_people(project, broken)
    held = send(cli, project, NOW)
    assert "line break" in held.output and "Vries" in held.output, held.output
    write_people(project, PEOPLE)
    assert send(cli, project, NOW + timedelta(hours=1)).exit_code == 0  # now to the outbox
    mail = next(path for path in (project / ".ldmail" / "outbox").glob("*.eml")
                if PERSON.encode() in path.read_bytes())
    # What a send killed while writing leaves beside the outbox.
    (mail.parent / f".{mail.stem}.eml.part").write_bytes(mail.read_bytes()[:500])
    use_smtp(project, smtp_server.port)
    smtp_server.data_replies(PERSON, f"550 5.1.1 <{PERSON}>: Recipient address rejected")
    failed = send(cli, project, NOW + timedelta(days=3))
    assert f"<{PERSON}>: Recipient address rejected" in failed.output, failed.output
    preview = cli("preview", "-c", "welcome", "--person", PERSON, "--html", "--project",
                  project, "--now", NOW.isoformat())
    assert preview.exit_code == 0 and preview.output.count("HTML written") == 2
    summaries = b"".join(row["summary"].encode() for row in
                         ledger_rows(project, "SELECT summary FROM runs"))
    assert b"Vries" in summaries and PERSON.encode() in summaries

    without(project, PERSON)
    gone = cli("forget", PERSON, "--project", project)
    assert gone.exit_code == 0, gone.output
    assert "2 outbox file(s) and 2 preview file(s) deleted" in gone.stdout
    left = every_byte(project)
    for trace in (PERSON.encode(), b"Vries", b"VRIES"):
        assert trace not in left, trace
    for command in (["history", PERSON], ["report"], ["send", "--now", NOW.isoformat()]):
        output = cli(*command, "--project", project).output
        assert PERSON not in output and "Vries" not in output, command


def test_forget_waits_for_a_reader_snapshot_or_says_it_could_not_finish(
        sent: Path, cli: Cli) -> None:
    """Another program's read snapshot pins the old pages of the ledger: forget waits for it,
    and when it lasts longer than --wait, says so in one line and exits 1 (never 0 with the
    address still in the file); run again once the reader is gone, it finishes."""
    reader = sqlite3.connect(sent / ".ldmail/ledger.db", check_same_thread=False)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] > 0
    without(sent, PERSON)
    stuck = cli("forget", PERSON, "--wait", "1", "--project", sent)
    assert stuck.exit_code == 1 and "Traceback" not in stuck.output
    assert stuck.stderr.strip().count("\n") == 0 and "read snapshot" in stuck.stderr
    assert PERSON not in stuck.output
    reader.rollback()
    assert cli("forget", PERSON, "--project", sent).exit_code == 0
    assert PERSON.encode() not in every_byte(sent / ".ldmail")

    # A snapshot that ends while forget waits: forget finishes, and returns 0.
    other = next(email for email in PEOPLE if email != PERSON)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()

    def close_once_forget_waits() -> None:
        wait_for(lambda: bool(ledger_rows(sent, "SELECT 1 FROM suppressions WHERE source = "
                                                "'forget' AND created_at > ''")[1:]), 30,
                 "the second forget to begin")
        reader.rollback()

    closer = threading.Thread(target=close_once_forget_waits)
    closer.start()
    without(sent, other)
    done = cli("forget", other, "--project", sent)
    closer.join()
    reader.close()
    assert done.exit_code == 0, done.output
    assert other.encode() not in every_byte(sent / ".ldmail")


def test_forget_leaves_other_people_alone(project: Path, cli: Cli) -> None:
    """Forgetting ann@ keeps joann@ (whose address holds hers) and another Ann: their
    messages, rows and names stay."""
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    other = "joann@example.org"
    write_people(project, {**PEOPLE, other: PEOPLE[PERSON].replace("de Vries", "Smit")})
    assert send(cli, project, NOW).exit_code == 0
    without(project, PERSON)
    assert cli("forget", PERSON, "--project", project).exit_code == 0
    outbox = every_byte(project / ".ldmail" / "outbox")
    assert other.encode() in outbox and f"<{PERSON}>".encode() not in outbox
    assert ledger_rows(project, "SELECT count(*) AS n FROM messages WHERE email = ?",
                       (other,))[0]["n"] == 1
    assert ledger_rows(project, "SELECT name FROM staged_people WHERE email = ?",
                       (other,)) == [{"name": "Ann Smit"}]
