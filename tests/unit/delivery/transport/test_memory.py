"""ldmail.delivery.transport.memory promises a transport with scripted answers: a recipient's
outcomes are given in order and the last one repeats, an exception in the script is raised as
a transport raises it, anyone not in the script is accepted; it records every attempt, its cc,
and the messages that may have arrived (sent or unknown), in order.
"""

from __future__ import annotations

import pytest

from ldmail.delivery.transport.base import Outcome
from ldmail.delivery.transport.memory import MemoryTransport
from ldmail.errors import TransportUnavailable

LATER = Outcome("temporary", "451 later")


def hand_over(transport: MemoryTransport, recipient: str, data: bytes = b"m",
              cc: tuple[str, ...] = ()) -> Outcome:
    return transport.send(data, "sender@example.org", recipient, "label", cc=cc)


def test_anyone_not_in_the_script_is_accepted_and_kept_in_order() -> None:
    transport = MemoryTransport()
    assert hand_over(transport, "ann@example.org", b"one") == Outcome("sent")
    assert hand_over(transport, "bob@example.org", b"two") == Outcome("sent")
    assert transport.accepted == [("ann@example.org", b"one"), ("bob@example.org", b"two")]
    assert transport.attempts == ["ann@example.org", "bob@example.org"]


def test_scripted_outcomes_come_in_order_and_the_last_one_repeats() -> None:
    transport = MemoryTransport({"ann@example.org": [LATER, Outcome("permanent", "550 no")]})
    answers = [hand_over(transport, "ann@example.org").status for _ in range(4)]
    assert answers == ["temporary", "permanent", "permanent", "permanent"]
    assert transport.attempts == ["ann@example.org"] * 4 and transport.accepted == []


def test_an_unknown_outcome_counts_as_possibly_arrived() -> None:
    transport = MemoryTransport({"ann@example.org": [Outcome("unknown", "reply lost")],
                                 "bob@example.org": [LATER]})
    hand_over(transport, "ann@example.org", b"one")
    hand_over(transport, "bob@example.org", b"two")
    assert transport.accepted == [("ann@example.org", b"one")]


def test_a_scripted_exception_is_raised_and_the_attempt_still_recorded() -> None:
    transport = MemoryTransport({"ann@example.org": [TransportUnavailable("refused"),
                                                     Outcome("sent")]})
    with pytest.raises(TransportUnavailable, match="refused"):
        hand_over(transport, "ann@example.org")
    assert hand_over(transport, "ann@example.org") == Outcome("sent")
    assert transport.attempts == ["ann@example.org", "ann@example.org"]


def test_the_cc_of_each_attempt_is_recorded_beside_it() -> None:
    transport = MemoryTransport()
    hand_over(transport, "ann@example.org", cc=("boss@example.org",))
    hand_over(transport, "bob@example.org")
    assert transport.copies == [("boss@example.org",), ()]

