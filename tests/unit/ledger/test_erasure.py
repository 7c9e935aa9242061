"""ledger/erasure.py promises: `erase` replaces a person's address by its keyed hash in every row
and column (as the person, and as someone's manager), drops their details, puts the hash or
"(erased)" wherever a text mentions the address or a name, keeps a suppression under the hash
so they are never mailed again, and keeps the counts; `make_final` rewrites the file so that
no byte of the address or name is left in it, or says it could not while another reader
holds old pages."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ldmail.ledger import (
    ERASED,
    FORGOTTEN,
    GoalEvent,
    Ledger,
    MessageKey,
    MessageState,
    SenderFailure,
    SurveyAnswer,
)
from tests.unit.ledger.conftest import ANN, BOB, CAMPAIGN, KEY, LATER, NOW, claim, put, sync

M = MessageState
BOB_KEY = MessageKey(CAMPAIGN, "hello", BOB)
NEIGHBOUR = "jo.ann@example.org"  # holds Ann's address inside it, and is someone else


def everything_about_ann(ledger: Ledger) -> None:
    """Ann in every table: staged with her name, enrolled, mailed (an error naming her in
    another case), manager copied on Bob's message, suppressed, a goal event, a survey
    answer, a sender-side bounce, and a run summary."""
    sync(ledger, [ANN, BOB, NEIGHBOUR], names={ANN: "Annabel Quist"})
    put(ledger, M.SENT)
    ledger.bounce(KEY, "550 <Ann@Example.ORG> unknown, Annabel", LATER, mail="mail-1",
                  suppression=None, sender_failure=SenderFailure("example.org", "SPF", ANN))
    assert claim(ledger, BOB_KEY, cc=ANN, message_id="<2@example.org>")
    with ledger.delivery(1, NOW, None) as delivery:
        delivery.defer(BOB_KEY, "421 ann@example.org greylisted", LATER)
    ledger.record_events([GoalEvent(ANN, "completed", "course:excel", NOW)], "lrs")
    ledger.record_survey_answers([SurveyAnswer(CAMPAIGN, ANN, "yes", NOW, "R_1")], "forms")
    ledger.suppress(ANN, "asked Annabel's manager", "command", NOW)
    run = ledger.start_run("send", NOW, NOW)
    ledger.finish_run(run, LATER, "ok", json.dumps({"sent": [
        {"email": ANN, "campaign": CAMPAIGN, "step": "hello", "subject": "Hi Annabel"},
        {"email": NEIGHBOUR, "campaign": CAMPAIGN, "step": "hello", "subject": "Hi Jo"}]}))


def file_bytes(path: Path) -> bytes:
    """The ledger and whatever SQLite keeps beside it, lower-cased."""
    return b"".join(part.read_bytes() for part in path.parent.glob(path.name + "*")).lower()


def summary(path: Path) -> object:
    conn = sqlite3.connect(path)
    try:
        (text,) = conn.execute("SELECT summary FROM runs").fetchone()
    finally:
        conn.close()
    return json.loads(text)


def test_no_byte_of_the_address_or_name_is_left_in_the_file(ledger: Ledger, path: Path) -> None:
    everything_about_ann(ledger)
    before = file_bytes(path)
    assert ANN.encode() in before and b"annabel" in before  # the checks below can fail
    assert ledger.names_of(ANN) == ["Annabel Quist"]
    ledger.erase(ANN, LATER, ledger.names_of(ANN))
    assert ledger.make_final(0)
    ledger.close()
    found = file_bytes(path)
    assert ANN.encode() not in found.replace(NEIGHBOUR.encode(), b"")
    assert b"annabel" not in found and b"quist" not in found


def test_the_person_stays_counted_under_the_hash_and_is_never_mailed_again(
        ledger: Ledger) -> None:
    everything_about_ann(ledger)
    hashed = FORGOTTEN + ledger.address_hash(ANN)
    ledger.erase(ANN, LATER, ["Annabel Quist"])
    assert not ledger.history(ANN)
    kept = ledger.history(hashed)
    assert [enrolment.campaign for enrolment in kept.enrolments] == [CAMPAIGN]
    assert {message.email for message in kept.messages} == {hashed, BOB}
    assert kept.suppression is not None and kept.suppression.source == "forget"
    assert [event.event for event in kept.events] == ["completed"]
    assert ledger.is_forgotten(ANN) and ledger.suppressed_among([ANN]) == {ANN}
    assert len(ledger.campaign_enrolments(CAMPAIGN, LATER)) == 3
    assert [answer.email for answer in ledger.survey_answers(CAMPAIGN, LATER)] == [hashed]
    assert sync(ledger, [ANN, BOB, NEIGHBOUR], LATER).enrolled == 0


def test_erase_alone_makes_a_running_send_recheck_its_claims(ledger: Ledger) -> None:
    sync(ledger, [ANN, BOB])
    counter = ledger.interventions()
    ledger.erase(ANN, LATER)  # not through forget, which suppresses first
    assert ledger.interventions() != counter


def test_texts_that_name_the_person_keep_only_what_is_not_about_them(ledger: Ledger,
                                                                     path: Path) -> None:
    everything_about_ann(ledger)
    hashed = FORGOTTEN + ledger.address_hash(ANN)
    ledger.erase(ANN, LATER, ["Annabel Quist"])
    (own,) = [message for message in ledger.history(hashed).messages
              if message.email == hashed]
    assert own.error == ERASED
    (bobs,) = ledger.history(BOB).messages
    assert (bobs.cc, bobs.error) == (hashed, ERASED)  # as the manager copied in
    assert summary(path) == {"sent": [
        {"email": hashed, "campaign": CAMPAIGN, "step": "hello", "subject": ERASED},
        {"email": NEIGHBOUR, "campaign": CAMPAIGN, "step": "hello", "subject": "Hi Jo"}]}
    assert NEIGHBOUR in set(ledger.known_addresses())


def test_the_file_cannot_be_made_final_while_another_reader_holds_old_pages(
        ledger: Ledger, path: Path) -> None:
    everything_about_ann(ledger)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()  # a read snapshot, say a backup
    try:
        ledger.erase(ANN, LATER)
        assert not ledger.make_final(0)
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert ledger.make_final(0)
