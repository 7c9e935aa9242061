"""inbox.reasons promises one reason per failure, from the server's words first and its status
code second, and one effect per reason: only a permanent recipient-side reason suppresses,
temporary or unclear ones are recorded, and sender-side ones (SPF, DKIM, DMARC, blocks, spam,
policy) are counted for the domain; a clear "no such user" code is not talked onto the
sender's side by words a learner could forge."""

from __future__ import annotations

import pytest

from ldmail.inbox.reasons import Effect, Reason, classify, effect


@pytest.mark.parametrize(("status", "words", "reason"), [
    ("5.1.1", "550 5.1.1 <ann@example.org>: User unknown", Reason.USER_UNKNOWN),
    ("5.2.2", "552 5.2.2 Mailbox full", Reason.MAILBOX_FULL),
    ("5.7.26", "550 5.7.26 This mail is unauthenticated. SPF hard fail", Reason.AUTH_FAILURE),
    ("5.7.1", "554 5.7.1 Service unavailable; client host [192.0.2.1] blocked using "
     "zen.spamhaus.org", Reason.BLOCKED),
    ("5.4.4", "550 Host unknown", Reason.HOST_UNKNOWN),
    ("4.4.7", "Delivery time expired", Reason.EXPIRED),
    ("5.1.6", "550 5.1.6 has moved", Reason.HAS_MOVED),
])
def test_the_servers_words_name_the_reason(status: str, words: str, reason: Reason) -> None:
    assert classify(status, words) is reason


@pytest.mark.parametrize(("status", "reason"), [
    ("5.1.1", Reason.USER_UNKNOWN), ("5.2.2", Reason.MAILBOX_FULL),
    ("5.7.26", Reason.AUTH_FAILURE), ("5.3.4", Reason.MESG_TOO_BIG),
    ("5.1.10", Reason.NOT_ACCEPT), ("5.6.9", Reason.CONTENT_ERROR),
    ("5.0.0", Reason.UNDEFINED), ("", Reason.UNDEFINED),
])
def test_without_telling_words_the_status_code_decides(status: str, reason: Reason) -> None:
    assert classify(status, "") is reason


def test_a_full_mailbox_said_with_a_user_unknown_code_is_a_full_mailbox() -> None:
    assert classify("5.1.1", "550 5.1.1 mailbox full") is Reason.MAILBOX_FULL


def test_forged_policy_words_do_not_move_a_clear_user_unknown_to_the_sender() -> None:
    assert classify("5.1.1", "550 5.1.1 no such user; policy reputation spam") is \
        Reason.USER_UNKNOWN
    # Authentication evidence does: the server refused the sender, whatever code it used.
    assert classify("5.1.1", "550 5.1.1 DMARC policy rejection") is Reason.AUTH_FAILURE


def test_a_code_in_the_words_that_contradicts_the_status_wins() -> None:
    assert classify("5.1.1", "550 5.7.1 IP address blacklisted") is Reason.BLOCKED


def test_no_such_domain_about_the_senders_address_is_the_senders_fault() -> None:
    assert classify("5.1.8", "553 5.1.8 Domain of sender address does not exist") is \
        Reason.SENDER_DOMAIN
    assert classify("5.1.2", "unroutable sender address") is Reason.SENDER_DOMAIN
    assert classify("5.1.2", "550 5.1.2 no such domain for recipient") is Reason.HOST_UNKNOWN


@pytest.mark.parametrize(("reason", "permanent", "expected"), [
    (Reason.USER_UNKNOWN, True, Effect.SUPPRESS),
    (Reason.HOST_UNKNOWN, True, Effect.SUPPRESS),
    (Reason.USER_UNKNOWN, False, Effect.RECORD),  # a 4.x.x "user unknown" is retried
    (Reason.MAILBOX_FULL, True, Effect.RECORD),
    (Reason.UNDEFINED, True, Effect.RECORD),
    (Reason.AUTH_FAILURE, True, Effect.SENDER),
    (Reason.SPAM_DETECTED, False, Effect.SENDER),
])
def test_only_permanent_recipient_side_reasons_suppress(
        reason: Reason, permanent: bool, expected: Effect) -> None:
    assert effect(reason, permanent) is expected
