"""The SQLite ledger: the one record of who was enrolled in what and who received which step,
and the one owner of delivery and enrolment state.

Nothing outside this package reads or writes the ledger's tables: no module outside it holds
SQL (tests/test_architecture.py checks). Every change of a message's or an enrolment's state
is an operation here, checked against the table in states.py.

    core.py        the file: connection, schema upgrades (schema.py), keys, identity, runs, meta
    states.py      the states and the one table of moves between them
    delivery.py    a send's moves: claim, hold, outcomes; interrupted claims, resends, retries
    enrolments.py  the sync's moves (stage the export, enrol, leave, reach the goal) and the
                   rounds of a triggered campaign (next round, resume)
    people.py      suppress, goal events; a person's history
    erasure.py     forget: the address replaced by its keyed hash everywhere, the file rewritten
    reads.py       what the report and the quiet cron path read
    survey.py      evaluation survey answers: recorded once each, read for the report
    inbox.py       bounces and unsubscribe mails from the sender's mailbox, each applied once
    lock.py        the kernel locks beside the file, so the processes that share it take turns
"""

import sqlite3
from types import TracebackType

from ..states import (
    EnrolmentOp,
    EnrolmentState,
    ExitReason,
    Group,
    MessageOp,
    MessageState,
    step_key,
    step_of,
)
from . import core
from .core import (
    QUIET,
    STAGED,
    identity_path,
    ledger_path,
    read_identity,
    record_identity,
    unusable,
)
from .delivery import ALL_STEPS_DONE, FORGOTTEN, Delivery, DeliveryMoves, MessageKey, Recheck
from .enrolments import EnrolmentMoves, EnrolmentSync, step_records
from .erasure import ERASED, ErasureMoves
from .inbox import (
    BOUNCED,
    INBOX,
    UNSUBSCRIBED,
    Applied,
    BounceAction,
    DomainStop,
    InboxMoves,
    SenderFailure,
    SentMessage,
)
from .people import (
    EnrolmentRecord,
    EventRecord,
    GoalEvent,
    MessageRecord,
    PersonHistory,
    PersonMoves,
    SuppressionRecord,
)
from .reads import EnrolmentFacts, MessageFacts, Reads
from .schema import MIGRATION_SET, MIGRATIONS, m001_initial
from .survey import StoredAnswer, SurveyAnswer, SurveyMoves


class Ledger(DeliveryMoves, InboxMoves, ErasureMoves, EnrolmentMoves, PersonMoves, Reads,
             SurveyMoves):
    """An open ledger with every operation on it (`with Ledger.of(project) as ledger:`).

    A statement that fails because the file is locked by another program or its disk is full
    leaves the `with` block as LedgerLocked or LedgerFull, so a command reports it in a line.
    """

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        super().__exit__(kind, error, traceback)
        if isinstance(error, sqlite3.OperationalError):
            # The one busy timeout (core.BUSY_TIMEOUT), looked up when the error happens.
            meaning = unusable(error, core.BUSY_TIMEOUT)
            if meaning is not None:
                raise meaning from None


__all__ = [
    "ALL_STEPS_DONE", "Applied", "BOUNCED", "ERASED", "FORGOTTEN", "INBOX",
    "MIGRATIONS", "MIGRATION_SET", "QUIET", "UNSUBSCRIBED",
    "STAGED", "Delivery", "DomainStop", "EnrolmentFacts", "EnrolmentOp", "EnrolmentRecord",
    "EnrolmentState", "EnrolmentSync", "EventRecord", "ExitReason", "GoalEvent",
    "MessageRecord", "SuppressionRecord", "SenderFailure", "BounceAction", "Group", "Ledger",
    "MessageFacts", "MessageKey", "MessageOp", "MessageState",
    "PersonHistory", "Recheck", "SentMessage", "StoredAnswer", "SurveyAnswer", "identity_path",
    "ledger_path",
    "m001_initial", "read_identity", "record_identity", "step_key", "step_of", "step_records",
]
