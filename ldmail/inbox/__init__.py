"""`ldmail inbox`: bounces and unsubscribe mails in the sender's mailbox, each applied once.

A relay accepts a message; days later a non-delivery report (a bounce) or an "unsubscribe"
mail arrives in the sender's mailbox, where nobody reads it. This reads every mail in the
folder named by the `inbox:` block of ldmail.yaml (over IMAP, or a Maildir or mbox file):

- a bounce, an RFC 3464 delivery status notification (read with the standard library, each
  recipient with its own status and words) or one of the older formats flufl.bounce knows
  (and a few it does not: dma, OpenSMTPD, Amazon WorkMail): it counts only for the messages
  whose Message-ID it carries anywhere (the attached original or its headers, In-Reply-To or
  References, quoted text); ldmail's Message-IDs are random and recorded, so that is proof
  nobody else can give. Without it the mail is an unverified report: counted, left alone,
  changing nothing. Its reason is classified (reasons.py): a permanent recipient-side one
  suppresses the address and ends its enrolments as "bounced"; a temporary one is recorded; a
  sender-side one (SPF, DKIM, DMARC, blocks, spam, policy) is counted for the receiving
  domain, where enough of them stop `send`;
- an unsubscribe mail sent to the List-Unsubscribe mailto address, with the person's token in
  its subject or body: the person is suppressed for good, their enrolments end as
  "unsubscribed";
- anything else is left where it is, and counted.

Handled mails are moved to the done folder. The ledger also records each mail it applied (a
keyed hash of its Message-ID), in the same transaction as its changes, so a mail left in the
folder (a move that failed, a run stopped in between) is moved later but never applied twice.
"""

from ..errors import InboxUnavailable
from .apply import FORGOTTEN_SHOWN, Handled, InboxResult, read_inbox, resume_domain
from .bounces import Failure, bounce_failures, cited_ids, parse, unsubscribe_token
from .folders import Folder, MaildirFolder, MboxFolder, open_folder
from .imap import ImapFolder, imap_name
from .reasons import Effect, Reason, classify

__all__ = ["FORGOTTEN_SHOWN", "Effect", "Failure", "Folder", "Handled", "ImapFolder",
           "InboxResult", "InboxUnavailable", "MaildirFolder", "MboxFolder", "Reason",
           "bounce_failures", "cited_ids", "classify", "imap_name", "open_folder", "parse",
           "read_inbox", "resume_domain", "unsubscribe_token"]
