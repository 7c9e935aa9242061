"""ldmail.delivery.transport.base promises what every transport shares: an Outcome (sent by
default, user_unknown only when said), and a Pacer whose slots the connections of a run share
at one interval (1/rate), whose first slot waits until `not_before` carried over from an
earlier run, which never waits without a rate, and whose wait a stop request ends at once.
"""

from __future__ import annotations

import threading
import time

import pytest

from ldmail.clock import wall_now
from ldmail.delivery.transport.base import Outcome, Pacer


def test_an_outcome_says_only_what_it_is_given() -> None:
    refused = Outcome("permanent", "550 5.1.1 user unknown", user_unknown=True)
    assert (refused.status, refused.reason, refused.user_unknown) == \
        ("permanent", "550 5.1.1 user unknown", True)
    assert Outcome("temporary") == Outcome("temporary", "", user_unknown=False)
    with pytest.raises(AttributeError):
        refused.status = "sent"  # type: ignore[misc]


def test_without_a_rate_the_pacer_never_waits() -> None:
    pacer = Pacer(None, not_before=wall_now().timestamp() + 3600)
    assert pacer.interval == 0.0
    started = time.monotonic()
    for _ in range(1000):
        pacer.wait()
    assert time.monotonic() - started < 0.5


def test_each_wait_takes_the_next_slot_one_interval_later() -> None:
    stop = threading.Event()
    stop.set()  # no real waiting: only the slots handed out are looked at
    pacer = Pacer(2.0)
    assert pacer.interval == 0.5
    first = pacer.next_slot
    for _ in range(3):
        pacer.wait(stop)
    assert pacer.next_slot == pytest.approx(first + 3 * 0.5, abs=0.05)


def test_the_first_slot_waits_for_not_before_from_an_earlier_run() -> None:
    later = Pacer(1.0, not_before=wall_now().timestamp() + 100)
    assert later.next_slot - time.monotonic() == pytest.approx(100, abs=1)
    past = Pacer(1.0, not_before=wall_now().timestamp() - 100)
    assert past.next_slot <= time.monotonic()


def test_a_stop_request_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    stop.set()
    pacer = Pacer(1 / 3600, not_before=wall_now().timestamp() + 3600)  # one an hour
    started = time.monotonic()
    pacer.wait(stop)
    pacer.wait(stop)
    assert time.monotonic() - started < 0.5
