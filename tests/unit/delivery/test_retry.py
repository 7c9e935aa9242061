"""ldmail.delivery.retry (`ldmail retry`) promises: held messages (and with `failed`, failed
ones too) of people still enrolled and not suppressed are due again at once, their attempts
afresh, optionally only for one campaign or step; it returns how many, and never touches a
message that was sent.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ldmail.delivery.retry import requeue
from ldmail.delivery.send import send
from ldmail.delivery.transport import MemoryTransport, Outcome
from ldmail.project.config import Project, load_project

from ...projects import NOW, PEOPLE, iso
from .conftest import hello

ANN, BOB, _, DIRK, _ = sorted(PEOPLE)
LATER = NOW + timedelta(minutes=1)
SPAM = Outcome("permanent", "554 5.7.1 rejected as spam")


def test_held_messages_are_due_again_at_once_with_their_attempts_afresh(people: Path) -> None:
    template = people / "templates" / "en" / "welcome" / "hello.md"
    good = template.read_text(encoding="utf-8")
    template.write_text(good.replace("{{ person.first_name }},", "{{ person.nickname }},"),
                        encoding="utf-8")
    project = load_project(people)
    assert len(send(project, NOW, transports=[MemoryTransport()]).held) == 5
    assert requeue(project, LATER) == 5
    row = hello(project, ANN)
    assert row is not None
    assert (row.state, row.attempts, row.next_attempt_at) == ("deferred", 0, iso(LATER))
    assert (row.error or "").endswith("(requeued by ldmail retry)")
    template.write_text(good, encoding="utf-8")
    assert send(project, LATER, transports=[MemoryTransport()]).sent == 5


def test_failed_messages_are_requeued_only_when_asked_and_sent_ones_never(
        project: Project) -> None:
    transport = MemoryTransport({DIRK: [SPAM, Outcome("sent")]})
    assert send(project, NOW, transports=[transport]).sent == 4
    assert requeue(project, LATER) == 0
    assert requeue(project, LATER, failed=True) == 1
    row = hello(project, DIRK)
    assert row is not None and (row.state, row.attempts) == ("deferred", 0)
    again = send(project, LATER, transports=[transport])
    assert again.sent == 1 and transport.attempts.count(DIRK) == 2
    assert requeue(project, LATER, failed=True) == 0


def test_a_suppressed_person_keeps_their_failure(project: Project) -> None:
    transport = MemoryTransport({
        BOB: [Outcome("permanent", "550 5.1.1 user unknown", user_unknown=True)],
        DIRK: [SPAM]})
    send(project, NOW, transports=[transport])
    assert requeue(project, LATER, failed=True) == 1  # Dirk's; Bob's address was suppressed
    row = hello(project, BOB)
    assert row is not None and row.state == "failed"


def test_campaign_and_step_narrow_what_is_requeued(project: Project) -> None:
    send(project, NOW, transports=[MemoryTransport({DIRK: [SPAM]})])
    assert requeue(project, LATER, failed=True, step="first-course") == 0
    assert requeue(project, LATER, failed=True, campaign="onboarding") == 0
    assert requeue(project, LATER, failed=True, campaign="welcome", step="hello") == 1
