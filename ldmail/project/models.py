"""Typed models of the files an author edits: ldmail.yaml, audiences.yaml, campaigns/*.yaml."""

from __future__ import annotations

import math
import re
import shlex
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .. import units
from ..errors import ExpressionError, FieldError
from ..sandbox.expressions import compile_expression
from .business_days import Blackout, BusinessCalendar, Region, parse_blackout, parse_region

Duration = Annotated[
    timedelta,
    BeforeValidator(units.parse_duration),
    PlainSerializer(units.format_duration),
    WithJsonSchema({"type": "string", "pattern": r"^\d+[smhdw]$", "examples": ["3d", "2w"]}),
]
Percentage = Annotated[
    float,
    BeforeValidator(units.parse_percentage),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?%$", "examples": ["10%"]}),
]
Points = Annotated[
    float,
    BeforeValidator(units.parse_points),
    WithJsonSchema({"type": "string", "pattern": r"^\+?\d+(\.\d+)?\s*pp$",
                    "examples": ["15pp"]}),
]
Weekdays = Annotated[
    tuple[int, ...],
    BeforeValidator(units.parse_weekdays),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "examples": ["mon-fri"]}),
]
Weekday = Annotated[
    int,
    BeforeValidator(units.parse_weekday),
    WithJsonSchema({"type": "string", "examples": ["fri"]}),
]
TimeOfDay = Annotated[
    time,
    BeforeValidator(units.parse_time),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$"}),
]
HourRange = Annotated[
    tuple[time, time],
    BeforeValidator(units.parse_hours),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"}),
]
# Where the shipped example and most of its users are; a project names its own in ldmail.yaml.
DEFAULT_TIMEZONE = ZoneInfo("Europe/Amsterdam")
TimeZone = Annotated[
    ZoneInfo,
    BeforeValidator(units.parse_timezone),
    WithJsonSchema({"type": "string", "examples": ["Europe/Amsterdam"]}),
]
Rate = Annotated[
    float,
    BeforeValidator(units.parse_rate),
    WithJsonSchema({"type": "string", "examples": ["30/min"]}),
]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
HolidayRegion = Annotated[
    Region,
    BeforeValidator(parse_region),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z]{2}(-[A-Za-z0-9]+)?$",
                    "examples": ["NL", "DE-BY"]}),
]
BlackoutRange = Annotated[
    Blackout,
    BeforeValidator(parse_blackout),
    PlainSerializer(str),
    WithJsonSchema({"type": "string",
                    "pattern": r"^\d{4}-\d{2}-\d{2}(\.\.\d{4}-\d{2}-\d{2})?$",
                    "examples": ["2026-12-24..2027-01-01"]}),
]


def _check_expression(source: str) -> str:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
    return source


Expression = Annotated[str, BeforeValidator(lambda v: _check_expression(str(v)) if v is not True
                                            else "true")]


class Strict(BaseModel):
    """Unknown keys are errors (they are usually typos), and loaded values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


# ---- ldmail.yaml -------------------------------------------------------------------------


class Unsubscribe(Strict):
    mailto: str | None = Field(None, description="Address that receives unsubscribe mails")
    url: str | None = Field(None, description="https page for one-click unsubscribe")

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"'{value}' must be an https:// URL (mail clients ignore others)")
        return value


class Brand(Strict):
    """How the built-in layout looks: a logo above every message and the colour of buttons."""

    logo: str | None = Field(None, description="https URL of the logo image (PNG or JPEG)")
    logo_alt: str = Field("", description="the logo's text for readers who block images")
    logo_width: int = Field(160, ge=16, le=600, description="shown width in pixels")
    colour: str = Field("#1f6f8b", pattern=r"^#[0-9a-fA-F]{6}$",
                        description="buttons and links, as #rrggbb")

    @field_validator("logo")
    @classmethod
    def _https_logo(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("https://") or
                                  any(c in value for c in "\"'<> \r\n")):
            raise ValueError(f"'{value}' must be an https:// URL of an image (mail clients "
                             "block others), without quotes, spaces or angle brackets")
        return value


class Utm(Strict):
    enabled: bool = True
    source: str = "ldmail"
    medium: str = "email"


# Sending limits of providers, as (messages a second, messages a day). Exchange Online:
# 30 messages a minute and 10,000 recipients a day per mailbox (Microsoft's "Exchange Online
# limits", sending limits).
PROVIDER_LIMITS: dict[str, tuple[str, int]] = {"exchange-online": ("30/min", 10_000)}


def _https_host(value: str, example: str) -> str:
    """An https:// address with only a host (and port): where a token or Graph lives."""
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?/?", value):
        raise ValueError(f"'{value}' must be an https:// address with only a host, e.g. "
                         f"{example}")
    return value.rstrip("/")


class OAuth2(Strict):
    """Where OAuth2 access tokens come from: Microsoft Entra ID's client-credentials flow (an
    app registration with a client secret or a certificate), or a token_command.

    No secret is ever written here: the client secret is read from an environment variable,
    the certificate's private key from a file kept out of git.
    """

    tenant_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$", description=(
        "Directory (tenant) ID of the Microsoft 365 organisation: a GUID, or a domain such "
        "as contoso.onmicrosoft.com"))
    client_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description=(
        "Application (client) ID of the app registration in Microsoft Entra ID"))
    client_secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                          description=(
        "Environment variable that holds the app's client secret (its value, never the "
        "secret's ID); the secret itself is never written in a file or on a command line"))
    certificate: str | None = Field(None, description=(
        "Instead of a client secret: PEM file with the app's certificate and private key, "
        "relative to the project; keep it out of git"))
    thumbprint: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{40}$", description=(
        "SHA-1 thumbprint of that certificate, as Entra ID shows it under Certificates"))
    authority: str = Field("https://login.microsoftonline.com", description=(
        "Entra ID sign-in address: login.microsoftonline.us for US Government clouds, "
        "login.partner.microsoftonline.cn for 21Vianet"))
    token_command: str | None = Field(None, description=(
        "Instead of tenant_id and client_id: a command (run without a shell) whose output "
        "is an access token, e.g. for Google Workspace; run again every 5 minutes and "
        "whenever the server refuses the token"))

    @field_validator("authority")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        return _https_host(value, "https://login.microsoftonline.com")

    @model_validator(mode="after")
    def _one_way(self) -> OAuth2:
        app = [name for name in ("tenant_id", "client_id", "client_secret_env", "certificate",
                                 "thumbprint") if getattr(self, name) is not None]
        if self.token_command is not None:
            if app:
                raise ValueError(f"give either token_command or an app registration, not "
                                 f"both (remove {', '.join(app)} or token_command)")
            if not self.token_command.strip():
                raise FieldError(("token_command",), "token_command is empty")
            try:  # split here as the send splits it, so validate names a broken one
                shlex.split(self.token_command)
            except ValueError as exc:
                raise FieldError(("token_command",), f"token_command cannot be read as a "
                                 f"program and its arguments ({str(exc).lower()}); check its "
                                 "quotes (it runs without a shell)") from None
            return self
        for name in ("tenant_id", "client_id"):
            if getattr(self, name) is None:
                raise ValueError(f"oauth2 needs {name} (from the app registration's Overview "
                                 "page in Entra ID), or a token_command")
        if (self.client_secret_env is None) == (self.certificate is None):
            raise ValueError("oauth2 needs either client_secret_env (the environment variable "
                             "holding the client secret) or certificate and thumbprint, not "
                             "both")
        if (self.certificate is None) != (self.thumbprint is None):
            raise ValueError("certificate and thumbprint go together: give both")
        return self


class Transport(Strict):
    kind: Literal["outbox", "smtp", "graph"] = Field("outbox", description=(
        "outbox (.eml files), smtp, or graph (Microsoft Graph sendMail, with oauth2)"))
    outbox: str = Field(".ldmail/outbox", description="Folder for .eml files (outbox transport)")
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    user: str | None = None
    password_env: str = Field(
        "LDMAIL_SMTP_PASSWORD", description="Environment variable that holds the SMTP password"
    )
    auth: Literal["password", "oauth2"] = Field("password", description=(
        "How smtp logs in as user: password (from password_env), or oauth2 (AUTH XOAUTH2 "
        "with a token from the oauth2 block; Microsoft 365 after basic auth ends)"))
    oauth2: OAuth2 | None = Field(None, description=(
        "Where access tokens come from, for auth: oauth2 and for kind: graph"))
    graph_url: str = Field("https://graph.microsoft.com", description=(
        "Microsoft Graph's address (kind: graph): graph.microsoft.us or "
        "microsoftgraph.chinacloudapi.cn for national clouds"))
    timeout: Duration = timedelta(seconds=30)
    deadline: Duration = Field(timedelta(minutes=2), description=(
        "Longest a connection set-up, or one message, may take in all (a server that "
        "trickles its replies is cut off)"))
    limits: Literal["exchange-online"] | None = Field(None, description=(
        "A provider's sending limits as a preset: exchange-online is 30/min and 10,000 a "
        "day; rate and daily_cap given beside it win"))
    rate: Rate | None = Field(None, description=(
        "At most this many messages, e.g. 30/min; held across runs (cron and ldmail run)"))
    daily_cap: int | None = Field(None, ge=1, description=(
        "At most this many messages in any 24 hours, across runs"))
    connections: int = Field(1, ge=1, le=16)

    @model_validator(mode="before")
    @classmethod
    def _apply_limits(cls, data: Any) -> Any:
        """A preset fills in the rate and the cap that are not given beside it."""
        if isinstance(data, dict) and data.get("limits") in PROVIDER_LIMITS:
            rate, cap = PROVIDER_LIMITS[data["limits"]]
            data = {"rate": rate, "daily_cap": cap, **{k: v for k, v in data.items()
                                                        if v is not None}}
        return data

    @property
    def pace(self) -> Rate | None:
        """The rate messages go out at: the outbox writes files, at no rate."""
        return None if self.kind == "outbox" else self.rate

    @field_validator("graph_url")
    @classmethod
    def _https_graph(cls, value: str) -> str:
        return _https_host(value, "https://graph.microsoft.com")

    @model_validator(mode="after")
    def _smtp_needs_host(self) -> Transport:
        if self.kind == "smtp" and not self.host:
            raise ValueError("transport kind smtp needs a host, e.g. host: smtp.example.org")
        if self.kind == "graph" and self.oauth2 is None:
            raise FieldError(("kind",), "transport kind graph needs an oauth2 block "
                             "(tenant_id, client_id, client_secret_env); see the README's "
                             "'Sending from Microsoft 365'")
        if self.kind == "smtp" and self.auth == "oauth2":
            if self.oauth2 is None:
                raise FieldError(("auth",), "auth: oauth2 needs an oauth2 block under "
                                 "transport (tenant_id, client_id, client_secret_env, or a "
                                 "token_command); see the README's 'Sending from Microsoft 365'")
            if not self.user:
                raise FieldError(("auth",), "auth: oauth2 needs user: the mailbox that sends "
                                 "(its user principal name, e.g. learning@example.org)")
        return self


class Retry(Strict):
    max_attempts: int = Field(5, ge=1, le=50)
    backoff: Duration = timedelta(minutes=10)


class Exits(Strict):
    """Guards against an export that suddenly lacks people (truncated, half-written)."""

    max_share: Percentage = Field(0.10, description=(
        "A sync that would end more than this share of active enrolments because people "
        "vanished from the export stops and changes nothing (send --accept-exits proceeds)"))
    grace: Duration = Field(timedelta(days=2), description=(
        "Someone missing from the export this long leaves their campaigns; back sooner, "
        "they simply continue"))


class DateLimits(Strict):
    """Dates outside these years in an export or event file are rejected rows.

    "0001-01-01" is how .NET and SQL Server exports write an empty date, and a two-digit
    slip ("0219" for 2019) is easy; either would otherwise break every later run.
    """

    earliest_year: int = Field(1900, ge=1, le=9999)
    latest_year: int = Field(2200, ge=1, le=9999)

    def check(self, value: date | datetime, what: str) -> None:
        if not self.earliest_year <= value.year <= self.latest_year:
            raise ValueError(f"{what} {value.isoformat()[:10]} is outside the years "
                             f"{self.earliest_year}-{self.latest_year}; fix it in the export "
                             "(dates.earliest_year and dates.latest_year in ldmail.yaml set "
                             "the range)")


class RunSettings(Strict):
    interval: Duration = timedelta(minutes=5)


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (localhost, 127.0.0.0/8, ::1): no TLS needed."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SenderStop(Strict):
    """When bounces on the sending side (SPF, DKIM, DMARC, block lists, spam or policy
    filters) stop `send` to the receiving domain that gave them."""

    after: int = Field(3, ge=1, le=10_000, description=(
        "This many sender-side bounces from one receiving domain within `within` stop "
        "sending there"))
    within: Duration = Field(timedelta(hours=24), description=(
        "The window they are counted in; the stop ends by itself when fewer remain in it "
        "(or at once with ldmail inbox --resume DOMAIN)"))


class Inbox(Strict):
    """The sender's mailbox, read by `ldmail inbox`: bounces (non-delivery reports, DSNs)
    and unsubscribe mails are applied to the ledger once and moved to `done_folder`."""

    kind: Literal["imap", "maildir", "mbox"] = Field(description=(
        "imap: a folder on a mail server; maildir or mbox: a local Maildir folder or mbox "
        "file (an export, or tests)"))
    host: str | None = Field(None, description="IMAP server, e.g. outlook.office365.com")
    port: int | None = Field(None, ge=1, le=65535, description=(
        "IMAP port [default: 993 with tls, 143 with starttls or none]"))
    security: Literal["tls", "starttls", "none"] = Field("tls", description=(
        "tls (port 993) or starttls (port 143), the certificate verified; none only to a "
        "loopback host"))
    user: str | None = Field(None, description="The mailbox's login, e.g. learning@example.org")
    auth: Literal["password", "oauth2"] = Field("password", description=(
        "How to log in as user: password (from password_env), or oauth2 (AUTHENTICATE "
        "XOAUTH2 with a token from transport.oauth2, the same app registration; Microsoft 365 "
        "needs the IMAP.AccessAsApp permission and access to the mailbox)"))
    password_env: str = Field("LDMAIL_IMAP_PASSWORD", description=(
        "Environment variable that holds the IMAP password (never in a file or on the "
        "command line)"))
    folder: str = Field("INBOX", min_length=1, description="The folder to read")
    done_folder: str = Field("ldmail/processed", min_length=1, description=(
        "Where handled mails are moved, '/' between levels; created if missing. Mails that "
        "are not a bounce or an unsubscribe are left where they are"))
    path: str | None = Field(None, description=(
        "maildir or mbox: the Maildir folder or mbox file, relative to the project; "
        "done_folder is then a sibling of it"))
    timeout: Duration = Field(timedelta(seconds=30), description=(
        "Longest time one IMAP command may take, from sending it to the end of its answer"))
    max_mail_size: int = Field(10 * 1024 * 1024, ge=1024, description=(
        "Largest mail read, in bytes; a larger one is left in the folder and counted, never "
        "loaded (IMAP says each mail's size before it is fetched)"))
    sender_stop: SenderStop = Field(default_factory=SenderStop, description=(
        "Sender-side bounces (SPF, DKIM, DMARC, blocks, spam, policy) never suppress a "
        "learner; this many from one domain stop sending there"))

    @model_validator(mode="after")
    def _complete(self) -> Inbox:
        examples = {"host": "imap.example.org", "user": "learning@example.org",
                    "maildir": "exports/inbox", "mbox": "exports/inbox.mbox"}
        if self.kind == "imap":
            for name in ("host", "user"):
                if not getattr(self, name):
                    raise FieldError((name,), f"inbox kind imap needs a {name}, e.g. "
                                     f"{name}: {examples[name]}")
            if self.security == "none" and not is_loopback(self.host or ""):
                raise FieldError(("security",), "none (no TLS) is only allowed to a loopback "
                                 f"host, not {self.host}; use tls or starttls")
        elif not self.path:
            raise FieldError(("path",), f"inbox kind {self.kind} needs a path, e.g. "
                             f"path: {examples[self.kind]}")
        return self


class Lrs(Strict):
    """A Learning Record Store read by `ldmail events pull`: new xAPI statements become goal
    events, recorded as `ldmail events import` records them."""

    endpoint: str = Field(description=(
        "The LRS's xAPI endpoint, e.g. https://lrs.example.org/xAPI (the statements resource "
        "is <endpoint>/statements); https, or http only to a loopback host"))
    user: str = Field(min_length=1, description=(
        "The read-only key or user name for HTTP Basic auth"))
    password_env: str = Field("LDMAIL_LRS_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                              description=(
        "Environment variable that holds the secret (never in a file or on the command line)"))
    version: str = Field("1.0.3", pattern=r"^[12]\.0(\.\d+)?$", description=(
        "The X-Experience-API-Version sent with every request"))
    account_column: str | None = Field(None, description=(
        "People attribute (or export column) that holds actor.account.name, for statements "
        "without an mbox; without it an account matches only when its name is an e-mail "
        "address"))
    verbs: list[str] = Field(default_factory=list, description=(
        "Only statements with one of these verb ids (empty: every verb)"))
    activities: list[str] = Field(default_factory=list, description=(
        "Only statements about one of these activity ids (empty: every activity)"))
    page_size: int = Field(500, ge=1, le=10000, description="Statements asked for per request")
    timeout: Duration = Field(timedelta(seconds=30), description=(
        "Longest one request to the LRS may take in all (connecting, sending, the whole "
        "answer)"))

    @model_validator(mode="after")
    def _secure(self) -> Lrs:
        from urllib.parse import urlsplit

        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise FieldError(("endpoint",), f"{self.endpoint!r} is not an http(s) URL; e.g. "
                             "endpoint: https://lrs.example.org/xAPI")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise FieldError(("endpoint",), f"http (no TLS) is only allowed to a loopback host, "
                             f"not {parts.hostname}; use https")
        return self


def _listed(value: object) -> object:
    """One value where a list is expected: a list of one."""
    return [value] if isinstance(value, str | bool | date) else value


class Holidays(Strict):
    """The business calendar: days on which no send window opens. `holidays: NL` and
    `holidays: [NL, DE-BY]` are short for the countries alone."""

    countries: Annotated[list[HolidayRegion], BeforeValidator(
        _listed, json_schema_input_type=HolidayRegion | list[HolidayRegion])] = Field(
        default_factory=list, description=(
            "Countries (ISO code, e.g. NL) or regions (country-region, e.g. DE-BY) whose "
            "public holidays, from the holidays package, close the send window; a person's "
            "own country (the export's country column) takes their place for that person"))
    blackout: Annotated[list[BlackoutRange], BeforeValidator(
        _listed, json_schema_input_type=BlackoutRange | list[BlackoutRange])] = Field(
        default_factory=list, description=(
            "Dates or ranges on which nothing is sent, both days included, e.g. "
            "2026-12-24..2027-01-01 for a year-end freeze"))

    def calendar(self) -> BusinessCalendar:
        """The hashable value a run's schedules are worked out with."""
        return BusinessCalendar(tuple(dict.fromkeys(self.countries)),
                                tuple(dict.fromkeys(self.blackout)))


def _holidays_shorthand(value: object) -> object:
    """`holidays: NL` or `holidays: [NL, DE-BY]`: the countries, without a blackout."""
    if isinstance(value, str | list | bool):
        return {"countries": value}
    return value


HolidaysSetting = Annotated[
    Holidays,
    BeforeValidator(_holidays_shorthand, json_schema_input_type=(
        HolidayRegion | list[HolidayRegion] | Holidays)),
]


class Settings(Strict):
    """ldmail.yaml: project-wide settings; the file is optional."""

    organisation: str = ""
    timezone: TimeZone = Field(DEFAULT_TIMEZONE, description=(
        "The project's time zone: a time written without a zone (--now, LMS exports, "
        "survey answers) is read in it, times are shown in it, and it is every campaign's "
        "send_window.timezone unless the campaign names its own"))
    default_language: Slug = "en"
    languages: list[Slug] = Field(default_factory=lambda: ["en"])
    unsubscribe: Unsubscribe = Unsubscribe()
    brand: Brand = Brand()
    utm: Utm = Utm()
    transport: Transport = Transport()
    ledger: str = ".ldmail/ledger.db"
    retry: Retry = Retry()
    exits: Exits = Exits()
    dates: DateLimits = DateLimits()
    run: RunSettings = RunSettings()
    inbox: Inbox | None = Field(None, description=(
        "The sender's mailbox, where bounces and unsubscribe mails arrive (ldmail inbox)"))
    lrs: Lrs | None = Field(None, description=(
        "The Learning Record Store that `ldmail events pull` reads goal events from"))
    holidays: HolidaysSetting = Field(default_factory=Holidays, description=(
        "The business calendar: public holidays and blackout days on which no send window "
        "opens, e.g. NL, or {countries: [NL, DE-BY], blackout: [2026-12-24..2027-01-01]}"))
    vars: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_is_listed(self) -> Settings:
        if self.default_language not in self.languages:
            raise FieldError(("default_language",), f"'{self.default_language}' is not in "
                             f"languages ({', '.join(self.languages)}); add it there or pick one")
        return self


# ---- audiences.yaml ----------------------------------------------------------------------

# Attributes ldmail computes for every person, usable in expressions and templates.
DERIVED_ATTRIBUTES = ("tenure_days", "today")
# The attribute with a person's manager's address: where `to: manager` steps go and whom
# `cc_manager` copies in (map it under people.columns, e.g. manager_email: Manager e-mail).
MANAGER_EMAIL = "manager_email"


class PeopleSource(Strict):
    source: str = Field(description="CSV export of people, relative to the project")
    columns: dict[str, str] = Field(
        description="attribute name -> CSV header; 'email' is required; 'manager_email' is "
                    "each person's manager's address, for steps to (or copying) the manager"
    )
    dates: list[str] = Field(default_factory=list, description="attributes parsed as dates")
    delimiter: Literal[",", ";", "\t"] | None = None
    encoding: str | None = None

    @field_validator("columns")
    @classmethod
    def _needs_email(cls, value: dict[str, str]) -> dict[str, str]:
        if "email" not in value:
            raise ValueError("columns needs an 'email' entry naming the address column")
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"'{name}' is not a usable attribute name; use letters and _")
        return value

    @model_validator(mode="after")
    def _dates_are_columns(self) -> PeopleSource:
        for index, name in enumerate(self.dates):
            if name not in self.columns:
                raise FieldError(("dates", index), f"dates lists '{name}', which is not in "
                                 f"columns ({', '.join(self.columns)}); map it there first")
        return self


LocalText = str | dict[str, str]


class Persona(Strict):
    label: str = ""
    match: Expression = Field(description="Jinja expression over the person's attributes")
    wiifm: LocalText = Field(description="What's in it for me: one text or one per language")
    description: str = ""

    def wiifm_for(self, language: str, fallback: str) -> str:
        if isinstance(self.wiifm, str):
            return self.wiifm
        return self.wiifm.get(language) or self.wiifm.get(fallback) or ""


class Audiences(Strict):
    people: PeopleSource
    personas: dict[Slug, Persona]


# ---- campaigns/*.yaml --------------------------------------------------------------------


class AudienceFilter(Strict):
    personas: list[str] = Field(default_factory=list, description="empty: every persona")
    where: Expression | None = None


class Goal(Strict):
    event: str
    object: str | None = Field(None, description="course id; may use * wildcards; empty: any")
    resume_when_voided: bool = Field(False, description=(
        "When the LRS voids the goal event that ended a person's sequence (a registration "
        "taken back), go on with the steps they have not had. Off: the sequence stays ended; "
        "the report counts them as not converted either way"))


class Trigger(Strict):
    """A learning event that enrols a person: day 0 is the moment it happened."""

    event: str = Field(min_length=1, description=(
        "the event that enrols, e.g. completed (an xAPI verb's last part, or a CSV event name)"))
    object: str | None = Field(None, description=(
        "the course or activity id; may use * wildcards, e.g. course:*; empty: any"))
    repeat: Literal["per-object", "once"] = Field("per-object", description=(
        "per-object: each further object (another finished course) starts the steps again "
        "for that object, once the round before is done; once: one round per person"))


class Hypothesis(Strict):
    """What the campaign is meant to prove, measured on its `goal:` against the holdout."""

    belief: str = Field(description="what we believe the campaign changes, in one sentence")
    expected_uplift: Points = Field(description=(
        "the uplift on the goal we expect, mailed minus holdout, e.g. 15pp"))
    baseline: Percentage | None = Field(None, description=(
        "the share of the holdout expected to reach the goal anyway, e.g. 10% [default: 10%]"))
    kpi: str = Field("", description="the business figure this serves, e.g. average discount")


class SendWindow(Strict):
    days: Weekdays = (0, 1, 2, 3, 4)
    hours: HourRange = (time(9), time(17))
    timezone: TimeZone = Field(DEFAULT_TIMEZONE, description=(
        "the zone of the window's days and hours [default: the project's timezone]"))


class Calendar(Strict):
    title: str
    weekday: Weekday
    time: TimeOfDay
    duration: Duration = timedelta(hours=1)
    weeks: int = Field(12, ge=1, le=104, description="how many weekly occurrences")
    location: str = ""
    description: str = ""


def _inside_templates(value: str) -> str:
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"template '{value}' leaves templates/; name a file below "
                         "templates/<language>/ without '..', e.g. welcome/hello")
    return value


TemplateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+$"),
                         AfterValidator(_inside_templates)]


class Variant(Strict):
    """One version of a step in an A/B test: its own template, and how often it is sent."""

    id: Slug = Field(description="names the variant in the ledger and the report, e.g. story")
    template: TemplateName = Field(description="the variant's template, e.g. welcome/hello-b")
    weight: float = Field(1.0, description=(
        "how often this variant is sent, relative to the step's other variants: weights 70 "
        "and 30 send it to 70% and 30% of people [default: 1, an equal split]"),
        json_schema_extra={"exclusiveMinimum": 0})

    @field_validator("weight")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"{value:g} is not a usable weight; give a number above 0 (weights "
                             "are relative: 70 and 30 send 70% and 30%), or remove the variant")
        return value


class Step(Strict):
    # Editors are told the either-or too: exactly one of template and variants.
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["template"]},
                                                           {"required": ["variants"]}]})

    id: Slug
    after: Duration
    template: TemplateName | None = Field(None, description=(
        "the step's template below templates/<language>/, without .md; or give variants"))
    variants: list[Variant] | None = Field(None, min_length=2, description=(
        "instead of template: an A/B test, each person getting one variant (the same one "
        "every time, drawn from campaign, step and address); the report compares each with "
        "the first"))
    calendar: Calendar | None = None
    when: Expression | None = Field(None, description=(
        "send this step only when the condition holds, else skip it (the next step goes "
        "on): a Jinja expression over the person's attributes and learning events, e.g. "
        "\"reached('registered', 'course:sales-*') and not reached('completed', "
        "'course:sales-*')\"; helpers: reached(event, object), count(event, object), "
        "days_since(event, object)"))
    wait_until: bool = Field(False, description=(
        "with when: instead of skipping at once, wait until the condition holds, at most "
        "`timeout` past the step's due time, then skip"))
    timeout: Duration = Field(timedelta(days=14), description=(
        "with wait_until: how long past its due time the step waits for its condition"))
    to: Literal["person", "manager"] = Field("person", description=(
        "who receives the step: the person [default], or their manager (the address in the "
        "export's manager_email column), in a message about the person, rendered with the "
        "person's data; at most once per person, never once the person reached the goal"))
    cc_manager: bool = Field(False, description=(
        "copy the person's manager (manager_email) in on this step's message, unless the "
        "manager is suppressed or has no address in the export"))

    @field_validator("when", mode="before")
    @classmethod
    def _condition_of_step(cls, value: object, info: ValidationInfo) -> object:
        """A condition the sandbox refuses is named with its step, as validate's answers
        for sample people are."""
        if value is None or value is True:
            return value
        try:
            return _check_expression(str(value))
        except ValueError as exc:
            step = info.data.get("id")
            raise ValueError(f"step '{step}': {exc}" if step else str(exc)) from None

    @model_validator(mode="after")
    def _recipient(self) -> Step:
        if self.to == "manager" and self.cc_manager:
            raise FieldError(("cc_manager",), f"step '{self.id}' goes to the manager already; "
                             "remove cc_manager (it copies the manager in on a step to the "
                             "person)")
        if self.to == "manager" and self.calendar is not None:
            raise FieldError(("calendar",), f"step '{self.id}' goes to the manager, whose "
                             "calendar the learning moment is not for; remove calendar or "
                             "to: manager")
        return self

    @property
    def involves_manager(self) -> bool:
        """Whether the manager gets this step's message, or a copy of it."""
        return self.to == "manager" or self.cc_manager

    @model_validator(mode="after")
    def _condition(self) -> Step:
        if self.wait_until and self.when is None:
            raise FieldError(("wait_until",), f"step '{self.id}' has wait_until but no when: "
                             "condition to wait for; add when: or remove wait_until")
        return self

    @model_validator(mode="after")
    def _template_or_variants(self) -> Step:
        if self.template is not None and self.variants is not None:
            raise FieldError(("variants",), f"step '{self.id}' has both template and "
                             "variants; give one: template for one message, or variants, each "
                             "with its own template, for an A/B test")
        if self.template is None and self.variants is None:
            raise FieldError(("template",), "missing required key 'template'; add it (or "
                             "variants:, each with its own template, for an A/B test)")
        seen: dict[str, int] = {}
        for index, variant in enumerate(self.variants or ()):
            if variant.id in seen:
                raise FieldError(("variants", index, "id"), f"variant id '{variant.id}' is "
                                 f"used twice in step '{self.id}' (also variant "
                                 f"{seen[variant.id]}); variant ids must be unique")
            seen[variant.id] = index + 1
        if not math.isfinite(sum(variant.weight for variant in self.variants or ())):
            # 1e308 + 1e308: every share would be nan or 0, and everyone the last variant's.
            raise FieldError(("variants",), f"step '{self.id}': the weights of its variants "
                             "add up to more than a number can hold; weights are relative, so "
                             "give small numbers such as 70 and 30")
        return self

    @property
    def choices(self) -> list[Variant | None]:
        """What a person may get: each variant, or (None) the step's one template."""
        return list(self.variants) if self.variants else [None]

    def template_of(self, variant: Variant | None) -> str:
        """The template a person gets with `variant` (None: the step's own)."""
        template = variant.template if variant is not None else self.template
        assert template is not None  # the model requires template or variants
        return template

    def shares(self) -> dict[str, float]:
        """Each variant's share of the step's weights, by id (they add up to 1)."""
        total = sum(variant.weight for variant in self.variants or ())
        return {variant.id: variant.weight / total for variant in self.variants or ()}

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants or () if v.id == variant_id), None)


class Survey(Strict):
    """The evaluation survey's "did the training fit me" question, read from a Forms export
    by `ldmail survey import` and reported as a share per persona."""

    email_column: str = Field("Email", min_length=1, description=(
        "Header of the column with the respondent's e-mail address: 'Email' in Microsoft "
        "Forms exports, 'Email address' (or 'E-mailadres') in Google Forms"))
    fit_column: str = Field(min_length=1, description=(
        "Header of the fit question, its full text as the export writes it"))
    did_not_fit: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, description=(
        "The answers that mean 'the training did not fit me'; compared without regard to "
        "case or surrounding spaces"))
    target: Percentage = Field(0.05, description=(
        "The bar: the share of did-not-fit answers should stay under it"))
    time_column: str | None = Field(None, min_length=1, description=(
        "Header of the column with when the answer was given, e.g. 'Completion time' "
        "(day-first or ISO dates; without a zone, the send window's time zone); without it, "
        "an answer counts from when it was imported"))


class Campaign(Strict):
    title: str
    phase: Literal["inform", "activate", "retain"]
    description: str = ""
    hypothesis: Hypothesis | None = None
    audience: AudienceFilter = AudienceFilter()
    starts: date
    ends: date | None = None
    anchor: str | None = None
    trigger: Trigger | None = Field(None, description=(
        "enrol people (of the audience) when a matching learning event arrives, with day 0 at "
        "the event's time; events before `starts` do not enrol; a round per object (see "
        "repeat)"))
    holdout: Percentage = 0.0
    goal: Goal | None = None
    fallback_language: str | None = Field(None, description=(
        "the language a reader gets when their own language has no template for a step; "
        "without it such a message is held until the translation exists"))
    sender: str
    reply_to: str | None = None
    send_window: SendWindow = SendWindow()
    min_gap: Duration = Field(timedelta(days=1), description="least time between two steps")
    steps: list[Step] = Field(min_length=1)
    survey: Survey | None = Field(None, description=(
        "The evaluation survey's fit question, for 'ldmail survey import' and the report"))
    holidays: HolidaysSetting | None = Field(None, description=(
        "This campaign's business calendar, in place of the one in ldmail.yaml (countries "
        "and blackout both): e.g. [] to send on holidays too"))

    @model_validator(mode="after")
    def _unique_steps(self) -> Campaign:
        seen: dict[str, int] = {}
        for index, (previous, step) in enumerate(zip(self.steps, self.steps[1:], strict=False)):
            if step.after < previous.after:
                raise FieldError(
                    ("steps", index + 1, "after"),
                    f"step '{step.id}' comes after '{previous.id}' but is due earlier "
                    f"({units.format_duration(step.after)} < "
                    f"{units.format_duration(previous.after)}); list steps in the order they "
                    "are sent")
        for index, step in enumerate(self.steps):
            if step.id in seen:
                raise FieldError(("steps", index, "id"),
                                 f"step id '{step.id}' is used twice (also step {seen[step.id]}); "
                                 "step ids must be unique")
            seen[step.id] = index + 1
        if self.ends and self.ends < self.starts:
            raise FieldError(("ends",), f"{self.ends} is before starts ({self.starts})")
        if self.trigger is not None and self.anchor is not None:
            raise FieldError(("trigger",), "a campaign has either anchor (day 0 is a date in "
                             "the people export) or trigger (day 0 is a learning event); "
                             "remove one")
        return self
