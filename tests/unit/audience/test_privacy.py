"""ldmail.audience.privacy promises: `suppress` ends a person's enrolments and keeps them from
ever being mailed again (an unsubscribe token counts as an unsubscribe); a bounce or opt-out
list is imported row by row, bad rows named; `forget` leaves only a keyed hash in the ledger
and deletes the outbox messages and previews that name the person, and nobody else's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ldmail.audience.privacy import (
    forget_person,
    history_of,
    import_suppressions,
    is_token,
    suppress,
    suppress_person,
)
from ldmail.delivery.send import send
from ldmail.errors import LdmailError
from ldmail.ledger import Ledger
from ldmail.project.config import PREVIEW_FOLDER, Project

NOW = datetime(2026, 12, 1, 10, tzinfo=ZoneInfo("Europe/Amsterdam"))
ANN = "ann.devries@example.org"
BOB = "bob.smith@example.org"


@pytest.fixture
def sent(loaded: Project) -> Project:
    """The scaffold after its first send: enrolments, and messages in the outbox."""
    send(loaded, NOW)
    return loaded


def outbox_mentioning(project: Project, email: str) -> list[Path]:
    folder = project.root / ".ldmail" / "outbox"
    return [path for path in folder.glob("*.eml") if email.encode() in path.read_bytes()]


def test_suppress_ends_the_enrolment_once_and_says_when_it_already_was(sent: Project) -> None:
    first = suppress_person(sent, " Ann.DeVries@Example.org ", "asked by phone", NOW)
    assert (first.email, first.added) == (ANN, True)
    assert suppress_person(sent, ANN, "again", NOW).added is False
    history = history_of(sent, ANN).history
    assert history.suppression is not None and history.suppression.reason == "asked by phone"
    assert [(e.state, e.exit_reason) for e in history.enrolments] == [("left", "suppressed")]


def test_the_token_from_an_unsubscribe_mail_is_an_unsubscribe(sent: Project) -> None:
    with Ledger.of(sent) as ledger:
        token = ledger.address_hash(BOB)
    assert is_token(token) and is_token(token.upper()) and not is_token(BOB)
    assert suppress_person(sent, token, "replied 'stop'", NOW).email == BOB
    [enrolment] = history_of(sent, BOB).history.enrolments
    assert enrolment.exit_reason == "unsubscribed"


@pytest.mark.parametrize(("who", "message"), [
    ("0" * 32, "no person in the ledger has the unsubscribe token 000000"),
    ("nobody", "invalid e-mail address 'nobody': An email address must have an @-sign; give an "
               "address, or the 32-character token from an unsubscribe mail's subject"),
])
def test_who_is_neither_an_address_nor_a_known_token_is_one_line(loaded: Project, who: str,
                                                                 message: str) -> None:
    with pytest.raises(LdmailError, match=message):
        history_of(loaded, who)


def test_a_dutch_excel_opt_out_list_is_imported_and_bad_rows_are_named(
        loaded: Project, tmp_path: Path) -> None:
    path = tmp_path / "afmeldingen.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "Naam;E-mailadres;Reden\r\n"
                     "Ann;Ann.DeVries@example.org;afgemeld per mail\r\n"
                     "Bob;geen-adres;\r\n"
                     "Chloé;chloe@example.org;\r\n"
                     "Ann;ann.devries@example.org;nogmaals\r\n".encode())
    with Ledger.of(loaded) as ledger:
        result = import_suppressions(ledger, path, NOW)
    assert (result.added, result.already) == (2, 1)
    assert result.skipped == ["row 3: invalid e-mail address 'geen-adres': An email address "
                              "must have an @-sign"]
    history = history_of(loaded, ANN).history
    assert history.suppression is not None
    assert (history.suppression.reason, history.suppression.source) == \
        ("afgemeld per mail", "afmeldingen.csv")
    chloe = history_of(loaded, "chloe@example.org").history.suppression
    assert chloe is not None and chloe.reason == "suppression list"  # an empty reason cell


def test_a_list_without_an_address_column_names_the_headers_it_takes(
        loaded: Project, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("Name,Who\r\nAnn,ann@example.org\r\n", encoding="utf-8")
    with Ledger.of(loaded) as ledger, pytest.raises(LdmailError) as raised:
        import_suppressions(ledger, path, NOW)
    assert str(raised.value) == (f"{path}: no email column; name one of: email, e-mail, "
                                 "address, mail, e-mailadres (found: Name, Who)")


def test_forget_leaves_a_hash_and_deletes_the_persons_files_and_no_one_elses(
        sent: Project) -> None:
    previews = sent.root / PREVIEW_FOLDER
    previews.mkdir(parents=True)
    (previews / "ann.html").write_text("<p>Hallo Ann de Vries</p>", encoding="utf-8")
    (previews / "bob.html").write_text("<p>Hello Bob Smith</p>", encoding="utf-8")
    assert len(outbox_mentioning(sent, ANN)) == 1
    bobs = outbox_mentioning(sent, BOB)
    forgotten = forget_person(sent, ANN, NOW)
    assert (forgotten.outbox_files, forgotten.preview_files) == (1, 1)
    assert forgotten.rows > 0
    assert outbox_mentioning(sent, ANN) == []
    assert outbox_mentioning(sent, BOB) == bobs
    assert sorted(p.name for p in previews.iterdir()) == ["bob.html"]
    assert not history_of(sent, ANN).history  # nothing under the address
    assert history_of(sent, BOB).history.enrolments  # others keep theirs
    # Suppressed for good: suppressing again adds nothing and stores no address.
    with Ledger.of(sent) as ledger:
        assert ledger.is_forgotten(ANN)
        assert suppress(ledger, ANN, "again", "command", NOW) is False
    assert not history_of(sent, ANN).history
