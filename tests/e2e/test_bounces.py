"""Bounces as an outsider and the real world send them: a bounce changes something only for
the message whose Message-ID it carries; its reason is read per recipient, in a taxonomy like
Sisimai's; only permanent recipient-side reasons suppress, and sender-side ones (SPF, DKIM,
DMARC) stop sending to the receiving domain instead of punishing a learner."""

from __future__ import annotations

import base64
import json
import mailbox
import re
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from ldmail.inbox import Effect, bounce_failures, cited_ids, classify, parse

from ..projects import NOW, PEOPLE, edit_yaml, write_people
from .bounce_mails import (
    forged_report,
    message_id,
    postfix_bounce,
    postfix_delay,
    postfix_report,
    postmaster_text,
)
from .conftest import REPO, Cli, CliResult
from .smtp_server import SmtpServer, ldmail_command, ledger_rows, use_smtp
from .test_inbox import maildir, original, summary, use_inbox

CORPUS = REPO / "tests" / "e2e" / "bounces"
LATER = NOW + timedelta(days=1)
ANN, BOB, CHLOE, DIRK, EMMA = PEOPLE
SPF = ("550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and "
       "Gmail users, and has been blocked. SPF hard fail")

# Real bounces from sisimai/set-of-emails (see tests/e2e/bounces/README.md): per file, each failed
# recipient with the reason and what ldmail does about it.
S, R, X = Effect.SUPPRESS, Effect.RECORD, Effect.SENDER
EXPECTED: dict[str, list[tuple[str, str, Effect]]] = {
    "exchange-userunknown": [("mikeneko@example.co.jp", "userunknown", S)],
    "exchange-mailboxfull": [("kijitora@example.edu", "mailboxfull", R)],
    "postfix-userunknown": [("kijitora@example.co.jp", "userunknown", S)],
    "postfix-hasmoved": [("kijitora@example.go.jp", "hasmoved", S)],
    "exim-two-recipients": [("kijitora@example.jp", "userunknown", S),
                            ("sabatora@example.jp", "userunknown", S)],
    "exim-spf": [("kijitora@example.co.jp", "authfailure", X)],
    "sendmail-userunknown": [("userunknown@bouncehammer.jp", "userunknown", S)],
    "sendmail-hasmoved": [("kijitora@example.net", "hasmoved", S)],
    "qmail-userunknown": [("kijitora@example.ne.jp", "userunknown", S)],
    "qmail-mailboxfull": [("kijitora@example.jp", "mailboxfull", R)],
    "qmail-dmarc": [("pseudo-local-part-of-google-gmail@gmail.com", "authfailure", X)],
    "gmail-userunknown": [("userunknown@example.jp", "userunknown", S)],
    "gmail-mailboxfull": [("mailboxfull@bouncehammer.jp", "mailboxfull", R)],
    "office365-userunknown": [("kijitora@cr3.neko.nyaan.jp", "userunknown", S)],
    "office365-mailboxfull": [("kijitora@cr.neko.nyaan.jp", "mailboxfull", R)],
    "aol-two-recipients": [("sabineko@example.jp", "mailboxfull", R),
                           ("mikeneko@example.jp", "userunknown", S)],
    "aol-no-blank-lines": [("kijitora@example.jp", "hostunknown", S)],
    "aol-cr-only": [("kijitora@example.jp", "hostunknown", S)],
    "dma-dmarc": [("pseudo-local-part@google.example.com", "authfailure", X)],
    "dma-userunknown": [("filtered@libsisimai.net", "userunknown", S)],
    "dma-exceedlimit": [("exceedlimit@libsisimai.net", "exceedlimit", R)],
    "opensmtpd-two-recipients": [("mailboxfull@example.jp", "mailboxfull", R),
                                 ("userunknown@example.jp", "userunknown", S)],
    "opensmtpd-authfailure": [("authfailure@libsisimai.net", "authfailure", X)],
    "workmail-userunknown": [("kijitora@example.jp", "userunknown", S)],
    "workmail-mailboxfull": [("chatoraneko@example.jp", "mailboxfull", R)],
    "domino-userunknown": [("kijitora@example.jp", "userunknown", S)],
    "domino-networkerror": [("kijitora@neko.example.org", "networkerror", R)],
}
# What a header line, a Received tail or an empty line looks like: never a reason.
NOT_A_REASON = re.compile(r"^(?:(?:delivered-to|received|to|from|subject|date|message-id|"
                          r"return-path|x-[\w-]+): |for <|by |from |$)", re.I)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_real_bounce_names_its_recipients_with_their_own_reason(name: str) -> None:
    message, compat = parse((CORPUS / f"{name}.eml").read_bytes())
    failures = bounce_failures(message, compat)
    assert failures is not None, name
    found = [(f.address, f.kind.value, f.effect) for f in failures]
    assert found == EXPECTED[name], (name, [f.reason for f in failures])
    for failure in failures:
        assert not NOT_A_REASON.match(failure.diagnostic), (name, failure.diagnostic)


@pytest.mark.parametrize(("name", "statuses"), [
    ("exim-two-recipients", ["5.1.1", "5.2.1"]),
    ("aol-two-recipients", ["5.2.2", "5.1.1"]),
    ("opensmtpd-two-recipients", ["5.2.2", "5.1.1"]),
    ("opensmtpd-authfailure", ["5.7.26"]),  # its report says 5.0.0; its text says more
])
def test_each_recipient_gets_its_own_status(name: str, statuses: list[str]) -> None:
    message, compat = parse((CORPUS / f"{name}.eml").read_bytes())
    failures = bounce_failures(message, compat) or []
    assert [f.status for f in failures] == statuses
    for failure in failures:
        assert failure.address and failure.address in failure.reason, failure.reason


def test_a_message_id_counts_wherever_the_bounce_carries_it() -> None:
    """In an attached original, in headers, in quoted text, also base64 or quoted-printable
    encoded; a mail stuffed with ids is read for a bounded number of them."""
    mark = "<0123456789abcdef0123456789abcdef@example.org>"
    quoted = base64.b64encode(f"> Message-ID: {mark}\n".encode()).decode()
    raw = (f"From: MAILER-DAEMON@mx.example.net\nSubject: failed\nMIME-Version: 1.0\n"
           f"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
           f"Content-Transfer-Encoding: base64\n\n{quoted}\n--b--\n").encode()
    assert mark in cited_ids(parse(raw)[0], raw)
    stuffed = " ".join(f"<{n}@x.example>" for n in range(10_000)).encode()
    assert len(cited_ids(parse(stuffed)[0], stuffed)) == 200


def test_the_corpus_covers_every_mta_the_issue_names() -> None:
    mtas = {name.split("-")[0] for name in EXPECTED}
    assert {"exchange", "postfix", "exim", "sendmail", "qmail", "gmail", "office365", "aol",
            "dma", "opensmtpd", "workmail", "domino"} <= mtas
    assert {path.stem for path in CORPUS.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize(("status", "text", "reason", "effect"), [
    ("5.2.2", "550 5.2.2 STOREDRV.Deliver: mailbox full", "mailboxfull", R),
    ("5.7.26", SPF, "authfailure", X),
    ("5.7.1", "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using Spamhaus",
     "blocked", X),
    ("5.7.1", "554 5.7.1 Message rejected as spam", "spamdetected", X),
    ("5.1.8", "553 5.1.8 Sender address rejected: Domain not found", "senderdomain", X),
    ("4.4.7", "Delivery time expired", "expired", R),
    ("5.1.1", "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown",
     "userunknown", S),
    ("4.1.1", "450 4.1.1 <ann@example.org>: Recipient address rejected: User unknown",
     "userunknown", R),  # a temporary answer never suppresses
    ("5.1.10", "", "notaccept", S),
    # Microsoft's Directory-Based Edge Blocking: the recipient does not exist.
    ("5.4.1", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
     "userunknown", S),
    # Words that would put a clear 5.1.1 on the sender's side do not win over it...
    ("5.1.1", "550 5.1.1 User unknown (spam check skipped)", "userunknown", S),
    ("5.1.1", "5.1.1 User unknown; reputation", "userunknown", S),
    ("5.1.1", "5.1.1 unknown user; message rejected by policy", "userunknown", S),
    # ...except specific authentication evidence, or a code of the server's own.
    ("5.1.1", "550 5.1.1 SPF hard fail", "authfailure", X),
    ("5.1.1", "5.1.1 550 5.7.1 IP address blacklisted by recipient", "blocked", X),
])
def test_reasons_follow_the_taxonomy(status: str, text: str, reason: str,
                                     effect: Effect) -> None:
    from ldmail.inbox.reasons import effect as effect_of

    found = classify(status, text)
    assert (found.value, effect_of(found, status.startswith("5"))) == (reason, effect)


# -- end to end: python -m ldmail inbox on a Maildir -------------------------------------------

def learners(count: int, domain: str = "example.org") -> dict[str, str]:
    return {f"learner{n:02d}@{domain}": f"Learner{n};Test;EN;Sales;03-02-2019;"
            for n in range(count)}


@pytest.fixture
def forty(project: Path, cli: Cli) -> Path:
    """40 learners, no holdout, each sent the first step (to the outbox)."""
    write_people(project, learners(40))
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    assert cli("send", "--project", project, "--now", NOW.isoformat()).exit_code == 0
    return project


def inbox(project: Path, *extra: str, now: object = LATER) -> CliResult:
    """`python -m ldmail inbox` as cron runs it, in its own process."""
    done = subprocess.run(ldmail_command("inbox", "--project", project, "--now", str(now),
                                         *extra), capture_output=True, text=True, timeout=120,
                          check=False)
    result = CliResult(done.returncode, done.stdout, done.stderr)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def suppressed(project: Path) -> set[str]:
    return {row["email"] for row in ledger_rows(project, "SELECT email FROM suppressions")}


def test_a_forged_report_and_a_postmaster_text_suppress_nobody(forty: Path, cli: Cli) -> None:
    everyone = sorted(learners(40))
    genuine = postfix_bounce(original(forty, everyone[0]), everyone[0])
    folder = maildir(forty, [forged_report(everyone), postmaster_text(everyone[:10]), genuine])
    use_inbox(forty, kind="maildir", path="exports/inbox")

    result = inbox(forty)
    assert summary(result.stdout) == (
        "inbox: 1 bounce (1 hard, 0 soft), 0 unsubscribes, 2 left alone (unverified: no "
        "message of this ledger named)")
    assert suppressed(forty) == {everyone[0]}
    assert [row["email"] for row in ledger_rows(
        forty, "SELECT email FROM messages WHERE state = 'bounced'")] == [everyone[0]]
    # The unverified reports are recorded once and moved to the done folder (kept there):
    # a later run neither reads nor counts them again.
    assert len(mailbox.Maildir(folder)) == 0
    assert len(mailbox.Maildir(forty / "exports" / "ldmail" / "processed")) == 3
    assert ledger_rows(forty, "SELECT outcome, count(*) AS n FROM inbox_mails GROUP BY"
                       " outcome ORDER BY outcome") == [{"outcome": "bounce", "n": 1},
                                                        {"outcome": "unverified", "n": 2}]
    maildir(forty, [forged_report(everyone)])  # the same forged mail once more
    again = json.loads(inbox(forty, "--format", "json").stdout)
    assert (again["unverified"], again["bounces"], again["applied_before"]) == (0, 0, 1)
    assert suppressed(forty) == {everyone[0]}


def test_a_proven_bounce_touches_only_the_recipient_of_that_message(forty: Path,
                                                                    cli: Cli) -> None:
    """The genuine bounce of one learner's message also lists 39 others: only hers counts."""
    everyone = sorted(learners(40))
    mail = postfix_bounce(original(forty, everyone[5]), everyone[5])
    extra = "".join(f"Final-Recipient: rfc822; {a}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
                    for a in everyone if a != everyone[5]).encode()
    mail = mail.replace(b"Content-Description: Undelivered Message Headers",
                        extra + b"Content-Description: Undelivered Message Headers", 1)
    maildir(forty, [mail])
    use_inbox(forty, kind="maildir", path="exports/inbox")
    inbox(forty)
    assert suppressed(forty) == {everyone[5]}


def test_a_full_mailbox_never_suppresses(sent_people: Path, cli: Cli) -> None:
    maildir(sent_people, [postfix_report(original(sent_people, ANN), ANN,
                                         "550 5.2.2 STOREDRV.Deliver: mailbox full")])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    result = inbox(sent_people)
    assert summary(result.stdout).startswith("inbox: 1 bounce (0 hard, 1 soft)")
    assert re.search(rf"soft bounce +{ANN} welcome/hello: 550 5\.2\.2 .*mailbox full "
                     r"\(mailboxfull: recorded\)", result.stdout), result.stdout
    assert suppressed(sent_people) == set()
    assert ledger_rows(sent_people, "SELECT state, error FROM messages WHERE email = ?"
                       " AND step = 'hello'", (ANN,)) == [
        {"state": "bounced", "error": f"soft bounce (mailboxfull): 550 5.2.2 <{ANN}>: "
                                      "STOREDRV.Deliver: mailbox full"}]


def test_soft_then_hard_suppresses_and_a_repeat_says_already_bounced(
        sent_people: Path, cli: Cli) -> None:
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    folder = maildir(sent_people, [postfix_delay(original(sent_people, BOB), BOB)])
    first = inbox(sent_people)
    assert "(expired: recorded)" in first.stdout or "(mailboxfull: recorded)" in first.stdout
    assert suppressed(sent_people) == set()

    box = mailbox.Maildir(folder)
    box.add(postfix_bounce(original(sent_people, BOB), BOB))
    box.close()
    second = inbox(sent_people)
    assert re.search(rf"hard bounce +{BOB} welcome/hello: 550 5\.1\.1 .+ \(userunknown: "
                     r"suppressed\)", second.stdout), second.stdout
    assert suppressed(sent_people) == {BOB}
    assert ledger_rows(sent_people, "SELECT error FROM messages WHERE email = ? AND step ="
                       " 'hello'", (BOB,))[0]["error"].startswith("hard bounce (userunknown)")

    box = mailbox.Maildir(folder)
    box.add(postfix_report(original(sent_people, BOB), BOB, "452 4.2.2 Mailbox full",
                           action="delayed"))
    box.close()
    third = inbox(sent_people)
    assert "already bounced before: recorded" in third.stdout, third.stdout
    assert "unverified" not in third.stdout


def test_an_spf_failure_suppresses_nobody_and_counts_the_domain(sent_people: Path,
                                                                 cli: Cli) -> None:
    maildir(sent_people, [postfix_report(original(sent_people, CHLOE), CHLOE, SPF)])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    result = inbox(sent_people)
    assert summary(result.stdout).startswith("inbox: 1 bounce (0 hard, 0 soft, 1 sender-side)")
    assert re.search(rf"sender-side +{CHLOE} welcome/hello: 550 5\.7\.26 .+ \(authfailure: "
                     r"counted for example\.org, nobody suppressed\)", result.stdout)
    assert suppressed(sent_people) == set()
    rows = ledger_rows(sent_people, "SELECT domain, reason FROM sender_failures")
    assert [row["domain"] for row in rows] == ["example.org"]
    assert CHLOE not in rows[0]["reason"] and "SPF hard fail" in rows[0]["reason"]


@pytest.fixture
def sent_people(project: Path, cli: Cli) -> Path:
    """The five known people, no holdout, each sent the first step (to the outbox)."""
    write_people(project, PEOPLE)
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    assert cli("send", "--project", project, "--now", NOW.isoformat()).exit_code == 0
    return project


def test_no_mail_makes_a_traceback(sent_people: Path, cli: Cli) -> None:
    """Every corpus file, garbage and a truncated report in one run: each counted, none
    stops the others, and the one genuine bounce is applied."""
    mails = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    mails += [b"\x00\xff" * 5000, b"Content-Type: multipart/report; boundary=x\r\n\r\n--x",
              postfix_bounce(original(sent_people, EMMA), EMMA)]
    maildir(sent_people, mails)
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    result = json.loads(inbox(sent_people, "--format", "json").stdout)
    # (corpus files that share a Message-ID are one mail: recorded once, then applied before)
    assert result["bounces"] == 1
    assert result["unverified"] + result["applied_before"] >= len(EXPECTED)
    assert suppressed(sent_people) == {EMMA}


# -- the domain stop ---------------------------------------------------------------------------

def test_sender_side_bounces_stop_sending_to_that_domain_until_resumed(
        project: Path, cli: Cli, smtp_server: SmtpServer) -> None:
    """Three SPF bounces from strict.example within a day: the next send leaves that domain's
    messages due (aiosmtpd receives none for it) and says so in one line; the others go.
    `ldmail inbox --resume strict.example` sends there again."""
    people = {**learners(3, "strict.example"), **learners(2, "example.org")}
    write_people(project, people)
    edit_yaml(project / "campaigns" / "welcome.yaml", lambda c: c.update(holdout="0%"))
    use_smtp(project, smtp_server.port)
    assert cli("send", "--project", project, "--now", NOW.isoformat()).exit_code == 0
    assert len(smtp_server.received) == 5
    strict = sorted(a for a in people if a.endswith("@strict.example"))
    sent = {a: message_sent_to(smtp_server, a) for a in strict}
    maildir(project, [postfix_report(sent[a], a, SPF, queue=f"Q{n}x") for n, a in
                      enumerate(strict)])
    use_inbox(project, kind="maildir", path="exports/inbox")
    next_step = NOW + timedelta(days=3)
    inbox(project, now=(next_step - timedelta(hours=1)).isoformat())
    assert suppressed(project) == set()

    result = cli("send", "--project", project, "--now", next_step.isoformat())
    assert result.exit_code == 1, result.output  # cron mails the operator the line
    later = smtp_server.received[5:]
    assert sorted(r.rcpt_tos[0] for r in later) == sorted(a for a in people
                                                          if a.endswith("@example.org"))
    lines = [line for line in result.stderr.splitlines() if "strict.example" in line]
    assert len(lines) == 1, result.stderr
    assert re.search(r"not sending to strict\.example: 3 sender-side bounces from it \(last: "
                     r"550 5\.7\.26 .*SPF hard fail\); 3 message\(s\) stay due\. Fix the "
                     r"sending domain's SPF, DKIM and DMARC; sending there resumes by itself "
                     r"by .+, or now with 'ldmail inbox --resume strict\.example'", lines[0])
    assert ledger_rows(project, "SELECT count(*) AS n FROM messages WHERE step = "
                       "'first-course' AND email LIKE '%@strict.example'") == [{"n": 0}]

    resumed = cli("inbox", "--project", project, "--resume", "strict.example")
    assert resumed.exit_code == 0, resumed.output
    assert "strict.example: 3 sender-side bounces cleared" in resumed.stdout
    again = cli("send", "--project", project, "--now", (next_step + timedelta(minutes=5))
                .isoformat())
    assert again.exit_code == 0, again.output
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received[7:]) == strict


def message_sent_to(server: SmtpServer, address: str) -> bytes:
    found = [r for r in server.received if address in r.rcpt_tos]
    assert len(found) == 1
    return found[0].data


# -- a bounce cannot be turned against learners -----------------------------------------------

def count_failures(project: Path) -> int:
    return int(ledger_rows(project, "SELECT count(*) AS n FROM sender_failures")[0]["n"])


def sender_failures(project: Path) -> list[dict[str, object]]:
    return ledger_rows(project, "SELECT domain, reason, message, recipient FROM sender_failures"
                                " ORDER BY id")


def test_one_learner_counts_once_however_many_reports_she_forges(sent_people: Path,
                                                                  cli: Cli) -> None:
    """Chloe mails a delay notice and three SPF reports citing her own message: one failure
    is counted (for her message), so she alone can never stop the domain."""
    mine = original(sent_people, CHLOE)
    maildir(sent_people, [postfix_report(mine, CHLOE, "451 4.7.26 SPF temporary error",
                                         action="delayed", queue="DLY0")]
            + [postfix_report(mine, CHLOE, SPF, queue=f"Q{n}x") for n in range(3)])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    inbox(sent_people)
    rows = sender_failures(sent_people)
    assert len(rows) == 1 and rows[0]["domain"] == "example.org" and rows[0]["message"]
    edit_yaml(sent_people / "ldmail.yaml",
              lambda s: s["inbox"].update(sender_stop={"after": 1, "within": "168h"}))
    result = cli("send", "--project", sent_people, "--now", (LATER + timedelta(days=2))
                 .isoformat())
    assert "not sending to example.org: 1 sender-side bounce" in result.stderr, result.stderr


def test_a_forward_counts_for_the_domain_that_refused_it(sent_people: Path, cli: Cli) -> None:
    """Chloe forwards to another domain, which refuses with SPF: the failure counts for that
    domain, not for the company's; every address is taken out of the reason kept."""
    forward = "chloe.forward@gmail.example"
    reply = f"550 5.7.26 <{forward}> unauthenticated (from <{CHLOE}> via x@y.example): SPF fail"
    maildir(sent_people, [postfix_report(original(sent_people, CHLOE), forward, reply)])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    result = inbox(sent_people)
    assert "(authfailure: counted for gmail.example, nobody suppressed)" in result.stdout
    rows = sender_failures(sent_people)
    assert [row["domain"] for row in rows] == ["gmail.example"]
    reason = str(rows[0]["reason"])
    assert "@" not in reason and "<<" not in reason and "<recipient>" in reason, reason


def test_a_bounce_names_the_address_it_acts_on(sent_people: Path, cli: Cli) -> None:
    """The proof says which message, not which address: a report citing Ann's and Bob's
    messages but naming neither proves nothing; one citing Ann's message and naming two other
    addresses proves nothing either. Both are recorded once as unverified."""
    ann, bob = original(sent_people, ANN), original(sent_people, BOB)
    both = with_report(postfix_bounce(ann, "someone@elsewhere.example"), cite=bob)
    two = with_report(postfix_bounce(ann, "one@elsewhere.example", queue="7Tt7Tt7Tt7"),
                      failed="two@elsewhere.example")
    maildir(sent_people, [both, two])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    result = json.loads(inbox(sent_people, "--format", "json").stdout)
    assert (result["bounces"], result["unverified"]) == (0, 2), result
    assert suppressed(sent_people) == set()
    assert ledger_rows(sent_people, "SELECT count(*) AS n FROM messages WHERE state ="
                       " 'bounced'") == [{"n": 0}]


def test_one_mail_proving_two_messages_is_applied_once(sent_people: Path, cli: Cli) -> None:
    """A report for Ann and Bob, citing both messages, when Bob's can no longer bounce: Ann's
    bounce and the mail are written in one transaction, so a second run applies nothing."""
    ann, bob = original(sent_people, ANN), original(sent_people, BOB)
    mail = with_report(postfix_report(ann, ANN, SPF), failed=BOB, cite=bob)
    maildir(sent_people, [mail])
    with sqlite3.connect(sent_people / ".ldmail" / "ledger.db") as conn:  # a failed resend
        conn.execute("UPDATE messages SET state = 'failed' WHERE email = ?", (BOB,))
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    first = json.loads(inbox(sent_people, "--format", "json").stdout)
    assert (first["sender_side"], first["left_alone"]) == (1, 1), first
    assert ledger_rows(sent_people, "SELECT outcome FROM inbox_mails") == [{"outcome": "bounce"}]
    maildir(sent_people, [mail])  # left in the folder (a move that failed, a second copy)
    again = json.loads(inbox(sent_people, "--format", "json").stdout)
    assert (again["bounces"], again["applied_before"]) == (0, 1), again
    assert len(sender_failures(sent_people)) == 1


def test_resume_dry_run_changes_nothing_and_an_unknown_domain_says_so(sent_people: Path,
                                                                      cli: Cli) -> None:
    maildir(sent_people, [postfix_report(original(sent_people, CHLOE), CHLOE, SPF)])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    inbox(sent_people)
    dry = cli("inbox", "--project", sent_people, "--resume", "example.org", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "example.org (dry run: nothing changed): would clear 1 sender-side bounce" in \
        dry.stdout, dry.stdout
    assert ledger_rows(sent_people, "SELECT cleared_at FROM sender_failures") == [
        {"cleared_at": None}]
    unknown = cli("inbox", "--project", sent_people, "--resume", "nowhere.example")
    assert unknown.exit_code == 0, unknown.output
    assert "nowhere.example: nothing was stopped for that domain" in unknown.stdout
    assert "cleared" not in unknown.stdout


def test_failures_older_than_the_window_are_deleted(sent_people: Path, cli: Cli) -> None:
    """Rows are never needed after the window: an inbox run deletes them."""
    maildir(sent_people, [postfix_report(original(sent_people, CHLOE), CHLOE, SPF)])
    use_inbox(sent_people, kind="maildir", path="exports/inbox")
    inbox(sent_people)
    assert count_failures(sent_people) == 1
    inbox(sent_people, now=LATER + timedelta(hours=23))
    assert count_failures(sent_people) == 1
    inbox(sent_people, now=LATER + timedelta(hours=25))  # the default window is 24 hours
    assert count_failures(sent_people) == 0


def test_original_recipient_starts_the_next_recipient_without_blank_lines() -> None:
    raw = _lines_report("Final-Recipient: rfc822; one@example.org\nAction: failed\n"
                        "Status: 5.2.2\nOriginal-Recipient: rfc822; two@example.org\n"
                        "Final-Recipient: rfc822; two.final@example.org\nAction: failed\n"
                        "Status: 5.1.1\n")
    message, compat = parse(raw)
    found = [(f.address, f.status, f.final) for f in bounce_failures(message, compat) or []]
    assert found == [("one@example.org", "5.2.2", "one@example.org"),
                     ("two@example.org", "5.1.1", "two.final@example.org")]


def _lines_report(fields: str) -> bytes:
    return (f"From: MAILER-DAEMON@mx.example.net\nSubject: failed\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
            f"--b\nContent-Type: text/plain\n\nfailed.\n\n--b\n"
            f"Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n"
            f"{fields}\n--b--\n").encode()


def with_report(mail: bytes, *, failed: str | None = None, cite: bytes | None = None) -> bytes:
    """A Postfix report with one more failed recipient, or citing one more message's id."""
    if failed is not None:
        mail = re.sub(rb"(\r\n--[^\r\n]+\r\nContent-Description: Undelivered Message Headers)",
                      f"\r\nFinal-Recipient: rfc822; {failed}\r\nAction: failed\r\n"
                      f"Status: 5.1.1\r\n".encode().replace(b"\\", b"\\\\") + rb"\1", mail,
                      count=1)
    if cite is not None:
        mail = mail.replace(b"Content-Type: text/rfc822-headers\r\n\r\n",
                            b"Content-Type: text/rfc822-headers\r\n\r\nReferences: "
                            + message_id(cite).encode() + b"\r\n", 1)
    return mail
