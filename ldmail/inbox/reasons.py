"""Why a message bounced, as a taxonomy like Sisimai's (the reference bounce parser): the
server's words first, then its enhanced status code (RFC 3463), each mapped to one reason, and
each reason to what ldmail does about it.

Only permanent failures on the recipient's side suppress an address (the mailbox or domain
does not exist, has moved, accepts no mail). Temporary ones (a full mailbox, a quota, a time-out)
are recorded: the relay retries them. Failures on the sender's side (SPF, DKIM or DMARC, a
block list, spam or policy filters, a refused sender) say nothing about the learner: they are
counted per receiving domain, and enough of them stop sending there (see ledger.inbox)."""

from __future__ import annotations

import re
from enum import Enum, StrEnum


class Reason(StrEnum):
    """Sisimai's names, so that a reader can look each up in its documentation."""

    USER_UNKNOWN = "userunknown"
    HOST_UNKNOWN = "hostunknown"
    HAS_MOVED = "hasmoved"
    NOT_ACCEPT = "notaccept"
    SUSPEND = "suspend"
    MAILBOX_FULL = "mailboxfull"
    EXCEED_LIMIT = "exceedlimit"
    MESG_TOO_BIG = "mesgtoobig"
    FILTERED = "filtered"
    EXPIRED = "expired"
    NETWORK_ERROR = "networkerror"
    SYSTEM_ERROR = "systemerror"
    TOO_MANY_CONN = "toomanyconn"
    SYNTAX_ERROR = "syntaxerror"
    CONTENT_ERROR = "contenterror"
    SECURITY_ERROR = "securityerror"
    AUTH_FAILURE = "authfailure"
    SENDER_DOMAIN = "senderdomain"
    BLOCKED = "blocked"
    SPAM_DETECTED = "spamdetected"
    POLICY_VIOLATION = "policyviolation"
    REJECTED = "rejected"  # the sender refused (Sisimai: "rejected" is about the sender)
    NO_RELAYING = "norelaying"
    UNDEFINED = "undefined"


class Effect(Enum):
    SUPPRESS = "suppress"  # a permanent failure of the recipient's address
    RECORD = "record"  # temporary or unclear: recorded, the address stays
    SENDER = "sender"  # the sending side's fault: counted for the receiving domain


R = Reason
RECIPIENT_PERMANENT = frozenset({R.USER_UNKNOWN, R.HOST_UNKNOWN, R.HAS_MOVED, R.NOT_ACCEPT})
SENDER_SIDE = frozenset({R.AUTH_FAILURE, R.SENDER_DOMAIN, R.BLOCKED, R.SPAM_DETECTED,
                         R.POLICY_VIOLATION, R.REJECTED, R.NO_RELAYING})


def effect(reason: Reason, permanent: bool) -> Effect:
    """What a failure does: only a permanent (5.x.x) recipient-side reason suppresses."""
    if reason in SENDER_SIDE:
        return Effect.SENDER
    if permanent and reason in RECIPIENT_PERMANENT:
        return Effect.SUPPRESS
    return Effect.RECORD


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(phrases), re.I)


# The server's words, in the order they are tried: the specific before the general (a full
# mailbox is often said with 5.1.1 or "mailbox unavailable"; an SPF refusal with 5.7.1).
_TEXT: list[tuple[Reason, re.Pattern[str]]] = [
    (R.AUTH_FAILURE, _words(
        r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework", r"unauthenticated",
        r"authentication (?:checks? )?fail", r"not authenticated", r"5\.7\.2[0-46-9]\b",
        r"5\.7\.509\b", r"5\.7\.515\b")),
    # Microsoft's Directory-Based Edge Blocking: the recipient does not exist (said with
    # "Access denied" and 5.4.1, which would otherwise read as a block).
    (R.USER_UNKNOWN, _words(r"\bas\(201806281\)", r"5\.4\.1 recipient address rejected")),
    (R.MAILBOX_FULL, _words(
        r"mailbox (?:is )?full", r"full mailbox", r"over ?quota", r"quota (?:exceeded|"
        r"violation)", r"exceed(?:ed|s|ing)? (?:\w+ )?(?:mailbox |storage |disk )?quota",
        r"mailbox (?:size limit|quota usage) exceeded", r"insufficient (?:disk |system )?"
        r"(?:space|storage)", r"not enough (?:storage )?space", r"mailfolder is full",
        r"no space left", r"storage allocation", r"disk space limit", r"mailbox over")),
    (R.EXCEED_LIMIT, _words(r"administrative limit", r"exceeds? (?:the )?limit")),
    (R.MESG_TOO_BIG, _words(
        r"message (?:is )?too (?:big|large)", r"message size exceeds", r"size limit",
        r"exceeds (?:the )?(?:maximum )?(?:message )?size")),
    (R.SPAM_DETECTED, _words(
        r"\bspam\b", r"unsolicited", r"bulk (?:e-?)?mail", r"junk", r"spamhaus\.org/help")),
    (R.BLOCKED, _words(
        r"block ?list", r"black ?list", r"blocked (?:using|by|for|because|due)",
        r"\bdnsbl\b", r"\brbl\b", r"spamcop", r"spamhaus", r"reputation", r"banned sending ip",
        r"client host (?:\[[^\]]*\] )?rejected", r"\bptr\b", r"reverse dns", r"rdns",
        r"helo command rejected", r"your ip", r"ip address (?:is )?(?:blocked|rejected)",
        r"access denied.*\bas\(\d+\)", r"connection refused by", r"smtp server of your isp")),
    (R.POLICY_VIOLATION, _words(r"\bpolicy\b", r"organi[sz]ation(?:al)? settings",
                                r"header error", r"protocol violation")),
    (R.NO_RELAYING, _words(r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)",
                           r"not permitted to relay", r"unable to relay")),
    (R.SENDER_DOMAIN, _words(
        r"sender (?:address|domain) (?:rejected|must exist|does not exist)",
        r"domain of sender address", r"sender verify failed", r"invalid sender",
        r"sender (?:is )?rejected", r"bad sender", r"from: domain is invalid")),
    (R.SUSPEND, _words(
        r"suspended", r"mailbox (?:is )?disabled", r"account (?:is |has been )?disabled",
        r"inactive", r"deactivated", r"\blocked\b", r"mailbox is frozen")),
    (R.HAS_MOVED, _words(r"has been replaced by", r"has moved", r"mailbox owner has changed")),
    (R.NETWORK_ERROR, _words(r"try again", r"malformed or unexpected name server reply",
                             r"temporary failure in name resolution")),
    (R.HOST_UNKNOWN, _words(
        r"host (?:or domain name )?(?:not found|unknown)", r"unknown host",
        r"domain (?:does not|doesn't) exist", r"no such domain", r"unrout(?:e)?able",
        r"unknown domain", r"name or service not known", r"domain (?:name )?not found",
        r"domain must exist", r"no mx", r"mx (?:record )?(?:not found|lookup)",
        r"host not found", r"hostunknown")),
    (R.NOT_ACCEPT, _words(r"null mx", r"does not accept mail", r"not accepting (?:any )?mail",
                          r"accepts no mail")),
    (R.USER_UNKNOWN, _words(
        r"user ?unknown", r"unknown (?:user|recipient|address|mailbox)", r"no such (?:user|"
        r"recipient|mailbox|address|person|account)", r"(?:does not|doesn't|not) exist",
        r"recipient ?not ?found", r"address ?not ?found", r"mailbox (?:not found|unavailable|"
        r"not available|invalid)", r"invalid (?:recipient|mailbox|address|user)",
        r"not (?:a )?(?:valid|known) (?:user|recipient|mailbox|address)", r"address unknown",
        r"couldn't be found", r"not listed in", r"address (?:wasn't|was not) found",
        r"could not be found", r"bad address",
        r"user not found", r"no mailbox", r"not our customer", r"unknown local part",
        r"mailbox unknown", r"isn't a valid", r"is not a valid",
        r"wasn't found", r"no account")),
    (R.FILTERED, _words(r"filtered", r"not authorized to receive", r"only accepts mail from",
                        r"restricted")),
    (R.EXPIRED, _words(
        r"expired", r"retry (?:time|timeout) exceeded", r"too long", r"giving up",
        r"could not be delivered for more than", r"delivery time", r"time(?:d)? ?out",
        r"retrying", r"will be retried", r"delayed", r"failing for a long time",
        r"did not accept our requests to connect")),
    (R.TOO_MANY_CONN, _words(r"too many (?:connections|recipients|messages)")),
    (R.NETWORK_ERROR, _words(r"connection (?:refused|reset|closed|timed out)", r"loop",
                             r"network", r"dns", r"unreachable")),
    (R.CONTENT_ERROR, _words(r"content", r"attachment", r"mime")),
    (R.SYNTAX_ERROR, _words(r"syntax error", r"command unrecognized")),
    (R.SYSTEM_ERROR, _words(r"system error", r"internal error", r"server error",
                            r"temporar(?:y|ily)")),
]

# RFC 3463's codes by class.subject.detail, then by class.subject (Sisimai's table, short).
_STATUS: dict[str, Reason] = {
    "1.1": R.USER_UNKNOWN, "1.2": R.HOST_UNKNOWN, "1.3": R.USER_UNKNOWN,
    "1.4": R.FILTERED, "1.6": R.HAS_MOVED, "1.7": R.SENDER_DOMAIN, "1.8": R.SENDER_DOMAIN,
    "1.10": R.NOT_ACCEPT, "2.1": R.SUSPEND, "2.2": R.MAILBOX_FULL, "2.3": R.EXCEED_LIMIT,
    "2.4": R.FILTERED, "3.1": R.SYSTEM_ERROR, "3.2": R.NOT_ACCEPT, "3.4": R.MESG_TOO_BIG,
    "4.1": R.EXPIRED, "4.4": R.HOST_UNKNOWN, "4.6": R.NETWORK_ERROR, "4.7": R.EXPIRED,
    "5.3": R.TOO_MANY_CONN, "7.1": R.SECURITY_ERROR, "7.13": R.SUSPEND, "7.17": R.HAS_MOVED,
    "7.18": R.HAS_MOVED, "7.25": R.BLOCKED, "7.27": R.NOT_ACCEPT, "7.28": R.SPAM_DETECTED,
}
_SUBJECT: dict[str, Reason] = {
    "1": R.USER_UNKNOWN, "2": R.FILTERED, "3": R.SYSTEM_ERROR, "4": R.NETWORK_ERROR,
    "5": R.SYSTEM_ERROR, "6": R.CONTENT_ERROR, "7": R.SECURITY_ERROR,
}
_AUTH_STATUS = re.compile(r"^7\.(?:2[0-4]|26|29)$")
# A clear "no such address" (x.1.1, x.1.10) or "no such domain" (x.1.2): words that would put
# it on the sender's side ("spam check skipped", "reputation", "policy") do not win over it,
# or a learner could forge "5.1.1 ...; policy" to count against the domain; only specific
# authentication evidence does. Words about the recipient (a full mailbox) still refine it.
_CLEAR_STATUS = frozenset({"1.1", "1.10", "1.2"})
_AUTH_EVIDENCE = re.compile(r"\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|"
                            r"(?<![\d.])5\.7\.2\d\b", re.I)
_SAID_STATUS = re.compile(r"(?<![\d.])[245]\.(\d{1,3}\.\d{1,3})(?![\d.])")


def _clear_status(status: str, text: str) -> bool:
    """Whether the status is a clear x.1.1, x.1.10 or x.1.2 that the server's words do not
    contradict with a code of their own ("5.1.1 550 5.7.1 IP address blacklisted")."""
    subject_detail = status.partition(".")[2]
    return subject_detail in _CLEAR_STATUS and \
        set(_SAID_STATUS.findall(text)) <= {subject_detail}


def classify(status: str, text: str) -> Reason:
    """The reason for a failure: its enhanced status code (e.g. 5.1.1, "" for none) and the
    server's words."""
    for reason, words in _TEXT:
        if words.search(text):
            if reason in SENDER_SIDE and _clear_status(status, text):
                return R.AUTH_FAILURE if _AUTH_EVIDENCE.search(text) else _by_status(status)
            return _sharpen(reason, status, text)
    return _by_status(status)


def _by_status(status: str) -> Reason:
    subject_detail = status.partition(".")[2]
    if _AUTH_STATUS.match(subject_detail):
        return R.AUTH_FAILURE
    if subject_detail in _STATUS:
        return _STATUS[subject_detail]
    if subject_detail.endswith(".0") or not subject_detail:
        return R.UNDEFINED  # x.y.0: "other or undefined", which says nothing more
    return _SUBJECT.get(subject_detail.partition(".")[0], R.UNDEFINED)


_ABOUT_SENDER = re.compile(r"\bsender\b", re.I)
_ABOUT_RECIPIENT = re.compile(r"recipient|user|mailbox|rcpt", re.I)


def _sharpen(reason: Reason, status: str, text: str) -> Reason:
    """The same words about the sender are the sender's fault: "no such domain" with 5.1.7
    or 5.1.8 (the sender's address), or "unroutable sender address"."""
    if reason not in RECIPIENT_PERMANENT:
        return reason
    if status.endswith((".1.7", ".1.8")) or (
            _ABOUT_SENDER.search(text) and not _ABOUT_RECIPIENT.search(text)):
        return R.SENDER_DOMAIN
    return reason
