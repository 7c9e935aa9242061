"""`ldmail inbox`: bounces and unsubscribe mails in the sender's mailbox, each applied once.

A relay accepts a message; days later a non-delivery report (a bounce) or an "unsubscribe"
mail arrives in the sender's mailbox, where nobody reads it. This reads every mail in the
folder named by the `inbox:` block of ldmail.yaml (over IMAP, or a Maildir or mbox file):

- a bounce, an RFC 3464 delivery status notification (read with the standard library: a
  5.x.x Status is hard, 4.x.x soft, the Diagnostic-Code is the reason) or one of the older
  formats flufl.bounce knows: the message it is about is found by the Message-ID in the
  attached original (message/rfc822 or text/rfc822-headers), In-Reply-To or References, or
  else is the most recent message sent to the failed address. That message becomes `bounced`
  with the reason; a hard bounce also suppresses the address, which ends its enrolments as
  "bounced";
- an unsubscribe mail sent to the List-Unsubscribe mailto address, with the person's token in
  its subject or body: the person is suppressed for good, their enrolments end as
  "unsubscribed";
- anything else is left where it is, and counted.

Handled mails are moved to the done folder. The ledger also records each mail it applied (a
keyed hash of its Message-ID), in the same transaction as its changes, so a mail left in the
folder (a move that failed, a run stopped in between) is moved later but never applied twice.
"""

from ..errors import InboxUnavailable
from .apply import FORGOTTEN_SHOWN, Handled, InboxResult, read_inbox
from .bounces import Failure, bounce_failures, original_ids, unsubscribe_token
from .folders import Folder, MaildirFolder, MboxFolder, open_folder
from .imap import ImapFolder, imap_name

__all__ = ["FORGOTTEN_SHOWN", "Failure", "Folder", "Handled", "ImapFolder", "InboxResult",
           "InboxUnavailable", "MaildirFolder", "MboxFolder", "bounce_failures", "imap_name",
           "open_folder", "original_ids", "read_inbox", "unsubscribe_token"]
