"""ledger/inbox.py promises: a bounce moves a handed-over message to bounced only as the state
table allows, and a hard one suppresses the address and ends its enrolments as "bounced"; an
unsubscribe mail ends them as "unsubscribed"; each mail of the sender's mailbox is recorded
once applied, together with what it changed, so it is never applied twice; a forgotten
address is never written again; sender-side failures count distinct recipients per domain
until cleared."""

from __future__ import annotations

import pytest

from ldmail.errors import IllegalTransition
from ldmail.ledger import (
    BOUNCED,
    ERASED,
    FORGOTTEN,
    UNSUBSCRIBED,
    Applied,
    BounceAction,
    DomainStop,
    EnrolmentState,
    Ledger,
    MessageKey,
    MessageState,
    SenderFailure,
)
from tests.unit.ledger.conftest import ANN, BOB, CAMPAIGN, KEY, LATER, NOW, put, sync

M, E = MessageState, EnrolmentState
BOSS = "boss@example.org"
BOB_KEY = MessageKey(CAMPAIGN, "hello", BOB)
HARD = "550 5.1.1 no such user"


@pytest.fixture
def enrolled(ledger: Ledger) -> Ledger:
    sync(ledger, [ANN, BOB])
    return ledger


def exit_reason(ledger: Ledger, email: str) -> str | None:
    (enrolment,) = ledger.history(email).enrolments
    return enrolment.exit_reason


@pytest.mark.parametrize("state", [M.SENT, M.UNKNOWN])
def test_a_hard_bounce_marks_the_message_and_ends_the_persons_enrolments(
        enrolled: Ledger, state: MessageState) -> None:
    put(enrolled, state)
    applied = enrolled.bounce(KEY, HARD, LATER, mail="mail-1", suppression=HARD)
    assert applied == Applied(suppressed=True)
    (message,) = enrolled.history(ANN).messages
    assert (message.state, message.error, message.bounced_at) == (M.BOUNCED, HARD, LATER)
    assert enrolled.enrolment_state(CAMPAIGN, ANN) is E.LEFT
    assert exit_reason(enrolled, ANN) == BOUNCED
    assert enrolled.mail_applied("mail-1") == "bounce"


@pytest.mark.parametrize("state", [M.NEW, M.DEFERRED, M.HELD, M.FAILED, M.BOUNCED])
def test_a_bounce_the_table_does_not_allow_writes_nothing(enrolled: Ledger,
                                                          state: MessageState) -> None:
    if state is not M.NEW:
        put(enrolled, state)
    with pytest.raises(IllegalTransition, match=f"cannot bounce an? {state} message"):
        enrolled.bounce(KEY, HARD, LATER, mail="mail-1", suppression=HARD)
    assert enrolled.message_state(KEY) is state
    assert enrolled.mail_applied("mail-1") is None
    assert not enrolled.is_suppressed(ANN)


def test_one_bounce_mail_is_applied_whole_and_recorded_once(enrolled: Ledger) -> None:
    put(enrolled, M.SENT)
    put(enrolled, M.DEFERRED, BOB_KEY)
    results = enrolled.apply_bounce([BounceAction(KEY, ANN, HARD, HARD),
                                     BounceAction(BOB_KEY, BOB, HARD, HARD)], LATER, mail="m1")
    assert results == [Applied(suppressed=True), "deferred"]
    assert enrolled.mail_applied("m1") == "bounce"
    assert not enrolled.is_suppressed(BOB)  # nothing written for the message that changed


def test_a_bounce_mail_of_which_nothing_applies_is_not_recorded(enrolled: Ledger) -> None:
    put(enrolled, M.DEFERRED, BOB_KEY)
    assert enrolled.apply_bounce([BounceAction(BOB_KEY, BOB, HARD, HARD)], LATER,
                                 mail="m2") == ["deferred"]
    assert enrolled.mail_applied("m2") is None


def test_a_bounce_of_the_managers_copy_suppresses_the_manager_and_moves_nothing(
        enrolled: Ledger) -> None:
    put(enrolled, M.SENT, cc=BOSS)
    (result,) = enrolled.apply_bounce([BounceAction(KEY, BOSS, HARD, HARD, copy=True)], LATER,
                                      mail="m3")
    assert result == Applied(suppressed=True)
    assert enrolled.message_state(KEY) is M.SENT
    assert enrolled.is_suppressed(BOSS) and not enrolled.is_suppressed(ANN)
    assert enrolled.enrolment_state(CAMPAIGN, ANN) is E.ACTIVE


def test_a_hard_bounce_after_a_soft_one_replaces_the_reason(enrolled: Ledger) -> None:
    put(enrolled, M.SENT)
    enrolled.bounce(KEY, "452 mailbox full", NOW, mail="soft", suppression=None)
    assert enrolled.enrolment_state(CAMPAIGN, ANN) is E.ACTIVE
    enrolled.apply_bounce([BounceAction(KEY, ANN, HARD, HARD, again=True)], LATER, mail="hard")
    (message,) = enrolled.history(ANN).messages
    assert (message.state, message.error, message.bounced_at) == (M.BOUNCED, HARD, NOW)
    assert enrolled.is_suppressed(ANN)


def test_a_forgotten_address_is_neither_suppressed_again_nor_named(enrolled: Ledger) -> None:
    put(enrolled, M.SENT)
    enrolled.suppress(FORGOTTEN + enrolled.address_hash(ANN), "forgotten on request", "forget",
                      NOW)
    assert enrolled.bounce(KEY, f"{HARD} <{ANN}>", LATER, mail="m4", suppression=HARD,
                           sender_failure=SenderFailure("example.org", "SPF", ANN)) == Applied(
        suppressed=False, forgotten=True)
    assert enrolled.history(ANN).messages[0].error == ERASED
    assert enrolled.history(ANN).suppression is None
    assert enrolled.sender_failures_of("example.org", NOW) == 0
    assert enrolled.unsubscribed(ANN, "unsubscribe mail", LATER, mail="m5") == Applied(
        suppressed=False, forgotten=True)
    assert enrolled.history(ANN).suppression is None


def test_an_unsubscribe_mail_suppresses_once_and_ends_as_unsubscribed(enrolled: Ledger) -> None:
    assert enrolled.unsubscribed(ANN, "unsubscribe mail", NOW, mail="u1") == Applied(True)
    assert exit_reason(enrolled, ANN) == UNSUBSCRIBED
    assert enrolled.mail_applied("u1") == "unsubscribe"
    assert enrolled.unsubscribed(ANN, "unsubscribe mail", LATER, mail="u2") == Applied(False)
    enrolled.unverified("u3", LATER)
    assert enrolled.mail_applied("u3") == "unverified"


def test_messages_are_found_by_the_message_id_the_send_gave_them(enrolled: Ledger) -> None:
    put(enrolled, M.SENT, message_id="<a@example.org>", cc=BOSS)
    put(enrolled, M.UNKNOWN, BOB_KEY, message_id="<b@example.org>")
    found = enrolled.messages_with_ids(["<b@example.org>", "<a@example.org>", "<c@x>"])
    assert [(sent.key, sent.state, sent.recipient, sent.cc) for sent in found] == [
        (KEY, M.SENT, ANN, BOSS), (BOB_KEY, M.UNKNOWN, BOB, None)]
    assert enrolled.messages_with_ids([]) == []


def test_a_sender_failure_without_its_address_counts_for_the_messages_person(
        enrolled: Ledger) -> None:
    second = MessageKey(CAMPAIGN, "reminder", ANN)
    for key in (KEY, second):
        put(enrolled, M.SENT, key)
    enrolled.bounce(KEY, "SPF", NOW, mail=None, suppression=None,
                    sender_failure=SenderFailure("example.org", "550 SPF"))
    enrolled.bounce(second, "SPF", NOW, mail=None, suppression=None,
                    sender_failure=SenderFailure("example.org", "550 SPF", ANN))
    assert enrolled.sender_failures_of("example.org", NOW) == 2
    assert enrolled.stopped_domains(NOW, 2) == []  # one recipient: Ann
    assert [stop.count for stop in enrolled.stopped_domains(NOW, 1)] == [1]


def test_sender_failures_stop_a_domain_by_distinct_recipients_until_cleared(
        enrolled: Ledger) -> None:
    second = MessageKey(CAMPAIGN, "reminder", ANN)
    for key in (KEY, second, BOB_KEY):
        put(enrolled, M.SENT, key)
    for key, again in ((KEY, False), (KEY, True), (second, False)):  # KEY's repeat: no count
        failure = SenderFailure("Example.org", "550 SPF fail", key.email)
        enrolled.apply_bounce([BounceAction(key, ANN, "SPF", sender_failure=failure,
                                            again=again)], NOW, mail=f"{key.step}-{again}")
    assert enrolled.sender_failures_of("example.org", NOW) == 2
    assert enrolled.stopped_domains(NOW, 2) == []  # both are Ann's
    enrolled.bounce(BOB_KEY, "SPF", LATER, mail=None, suppression=None,
                    sender_failure=SenderFailure("example.org", "550 DMARC", BOB))
    assert enrolled.stopped_domains(NOW, 2) == [DomainStop("example.org", 2, LATER, "550 DMARC")]
    assert enrolled.resume_domain("EXAMPLE.org", LATER) == 3
    assert enrolled.stopped_domains(NOW, 1) == []
    assert enrolled.prune_sender_failures(LATER) == 2
