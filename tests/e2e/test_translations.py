"""A message never goes out in a language its reader was not chosen for: a listed language
without its template holds the message until the translation exists, unless the campaign
names a `fallback_language`."""

from __future__ import annotations

import email
import email.policy
import shutil
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

from .conftest import Cli
from .smtp_server import ledger_rows

ENROL = "2026-12-09T10:00+01:00"
KICK_OFF = "2026-12-17T10:00+01:00"  # the kick-off is due eight days after enrolment
NEXT_RUN = "2026-12-17T10:30+01:00"
DUTCH = "templates/nl/launch/kickoff.md"


def _kick_offs(project: Path) -> list[EmailMessage]:
    found = []
    for path in sorted((project / ".ldmail" / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["X-Ldmail-Step"] == "kick-off":
            found.append(message)
    return found


def _dutch_readers(project: Path) -> set[str]:
    rows = ledger_rows(project, "SELECT email FROM enrolments WHERE campaign = 'platform-launch'"
                                " AND language = 'nl' AND grp != 'holdout'")
    return {row["email"] for row in rows}


def test_a_missing_translation_holds_its_readers_until_it_exists(example: Path, cli: Cli
                                                                  ) -> None:
    kept = example.parent / "kickoff.md"
    shutil.move(example / DUTCH, kept)
    assert cli("send", "--project", example, "--now", ENROL).exit_code == 0
    held = cli("send", "--project", example, "--now", KICK_OFF)
    assert held.exit_code == 1, held.output  # held messages: cron mails the operator
    assert f"no 'nl' translation of 'launch/kickoff': create {DUTCH}" in held.output
    held_rows = ledger_rows(example, "SELECT email, state FROM messages WHERE step = "
                                     "'kick-off' AND error LIKE '%no ''nl'' translation%'")
    dutch = {row["email"] for row in held_rows}
    assert dutch and dutch <= _dutch_readers(example)
    assert {row["state"] for row in held_rows} == {"held"}
    sent = _kick_offs(example)
    assert sent and not {str(m["To"].addresses[0].addr_spec) for m in sent} & \
        _dutch_readers(example)  # no Dutch reader got the English text

    shutil.move(kept, example / DUTCH)
    assert cli("send", "--project", example, "--now", NEXT_RUN).exit_code == 0
    assert cli("send", "--project", example, "--now", NEXT_RUN).exit_code == 0
    kick_offs = _kick_offs(example)
    per_reader = Counter(str(m["To"].addresses[0].addr_spec) for m in kick_offs)
    assert max(per_reader.values()) == 1  # once each
    to_dutch = [m for m in kick_offs if str(m["To"].addresses[0].addr_spec) in dutch]
    assert {str(m["To"].addresses[0].addr_spec) for m in to_dutch} == dutch
    assert {m["Content-Language"] for m in to_dutch} == {"nl"}


def test_a_named_fallback_sends_that_language_and_says_so(example: Path, cli: Cli) -> None:
    (example / DUTCH).unlink()
    campaign = example / "campaigns" / "platform-launch.yaml"
    campaign.write_text(campaign.read_text("utf-8").replace(
        "holdout: 10%", "fallback_language: en\nholdout: 10%"), "utf-8")
    validate = cli("validate", "--project", example)
    assert validate.exit_code == 0, validate.output
    assert ("step 'kick-off' has no 'nl' template: its readers get "
            "templates/en/launch/kickoff.md (fallback_language)") in validate.output
    preview = cli("preview", "-c", "platform-launch", "--project", example, "--lang", "nl",
                  "--now", KICK_OFF)
    assert preview.exit_code == 0, preview.output
    assert "Language:  en (fallback_language: there is no nl template)" in preview.stdout


def test_validate_and_preview_name_the_missing_translation(example: Path, cli: Cli) -> None:
    (example / DUTCH).unlink()
    validate = cli("validate", "--project", example)
    assert validate.exit_code == 1
    errors = [line for line in validate.output.splitlines() if "kick" in line]
    assert errors == [f"campaigns/platform-launch.yaml:23: step 'kick-off' has no 'nl' "
                      f"template: create {DUTCH} (its readers' messages are held until it "
                      "exists)"], errors
    preview = cli("preview", "-c", "platform-launch", "--project", example, "--lang", "nl")
    assert preview.exit_code == 1
    assert f"no 'nl' translation of 'launch/kickoff': create {DUTCH}" in preview.stderr
