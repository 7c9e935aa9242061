"""`ldmail survey import`: answers to a campaign's evaluation survey from a Forms export.

Microsoft Forms and Google Forms export one row per response: an ID (Microsoft), when it was
submitted, the respondent's address and one column per question. Of those, the address, the
answer to the campaign's fit question ("did the training fit me") and the time are recorded,
so the report can show the share of did-not-fit answers per persona.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from ..audience.export import find_column, normalise_email, open_text, read_rows, sniff_delimiter
from ..clock import iso
from ..errors import LdmailError
from ..ledger import Ledger, SurveyAnswer
from ..project.config import CAMPAIGNS_DIR, PEOPLE_SOURCE, Project
from ..project.models import DateLimits, Survey
from ..sandbox.hygiene import excerpt
from .events import Skipped, parse_timestamp, require_file

# The response number Microsoft Forms writes first ("ID"); Google Forms has none.
ID_COLUMNS = ("id",)
# What Microsoft Forms writes as the address when the form does not record who answered.
ANONYMOUS = "anonymous"
_QUOTED = re.compile(r'"(?:[^"]|"")*"')


@dataclass
class SurveyImport:
    source: str
    campaign: str
    added: int = 0
    already_known: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether no row could be imported (nor was already known)."""
        return not self.added and not self.already_known


def import_survey_file(project: Project, campaign: str | None, path: Path, now: datetime, *,
                       db: Path | None = None) -> SurveyImport:
    """`ldmail survey import`: a Forms export's answers for `campaign`, or for the only
    campaign with a survey: block."""
    chosen = survey_campaign(project, campaign)
    with Ledger.of(project, db) as ledger:
        return import_survey(ledger, project, chosen, path, now)


def survey_campaign(project: Project, campaign: str | None) -> str:
    """The campaign whose survey a file answers: `campaign`, or the only one with a survey."""
    with_survey = sorted(c for c, f in project.campaigns.items() if f.model.survey)
    if campaign is not None:
        if project.campaign(campaign).survey is None:
            others = f" (campaigns with one: {', '.join(with_survey)})" if with_survey else ""
            raise LdmailError(f"campaign '{campaign}' has no survey: block{others}; add one to "
                              f"{CAMPAIGNS_DIR}/{campaign}.yaml naming the export's columns "
                              "(email_column, fit_column, did_not_fit)")
        return campaign
    if len(with_survey) == 1:
        return with_survey[0]
    if not with_survey:
        raise LdmailError(f"no campaign has a survey: block; add one to the campaign whose "
                          f"survey this is ({CAMPAIGNS_DIR}/<campaign>.yaml) naming the export's "
                          "columns (email_column, fit_column, did_not_fit)")
    raise LdmailError(f"several campaigns have a survey: block ({', '.join(with_survey)}); "
                      "name the one this export answers with -c CAMPAIGN")


def _header_key(text: str) -> str:
    """A header as compared: spaces (no-break ones too) collapsed, case ignored."""
    return " ".join(text.split()).casefold()


def answer_key(text: str) -> str:
    """An answer as compared: spaces collapsed, case ignored."""
    return " ".join(text.split()).casefold()


def did_not_fit(survey: Survey, answer: str) -> bool:
    """Whether `answer` is one of the survey's did-not-fit answers (case and spaces aside)."""
    return answer_key(answer) in {answer_key(a) for a in survey.did_not_fit}


def _delimiter(path: Path, wanted: list[str]) -> str | None:
    """The header's delimiter: the one that splits it into cells holding the `wanted`
    headers, else the most frequent one outside quotes (question texts often hold commas,
    and Excel quotes only cells with the delimiter in them). None when the file cannot be
    read (read_rows then says why)."""
    try:
        with open_text(path, None) as source:
            first = source.readline()
    except (OSError, ValueError):
        return None
    keys = {_header_key(w) for w in wanted}
    for delimiter in (";", ",", "\t"):
        try:
            cells = next(csv.reader([first], delimiter=delimiter), [])
        except csv.Error:
            continue
        if keys <= {_header_key(c) for c in cells}:
            return delimiter
    return sniff_delimiter(_QUOTED.sub("", first))


def _export_addresses(project: Project) -> set[str]:
    """Every readable address in the people export (rows rejected for other reasons too:
    such a person is still in the export)."""
    people = project.audiences.people
    header, rows = read_rows(project.path(people.source, PEOPLE_SOURCE), people.source,
                             people.encoding, people.delimiter)
    column = find_column(header, (people.columns["email"].strip().lower(),))
    found: set[str] = set()
    if column is None:
        return found  # audience, validate and send name the missing column
    for _, cells in rows:
        if column < len(cells):
            try:
                found.add(normalise_email(cells[column]))
            except ValueError:
                continue
    return found


class _Known:
    """Whether an address is known: in the ledger, else in the people export (read once,
    only when the ledger does not know someone)."""

    def __init__(self, ledger: Ledger, project: Project) -> None:
        self.project = project
        self.addresses = set(ledger.known_addresses())
        self.export_read = False

    def __contains__(self, email: object) -> bool:
        if email in self.addresses:
            return True
        if not self.export_read:
            self.export_read = True
            self.addresses |= _export_addresses(self.project)
        return email in self.addresses


@dataclass
class _Rows:
    """What reading one export's rows as answers needs."""

    ledger: Ledger
    campaign: str
    survey: Survey
    email_at: int
    fit_at: int
    time_at: int | None
    id_at: int | None
    zone: tzinfo
    limits: DateLimits
    known: _Known
    forgotten: set[str]
    now: datetime

    def answer(self, cells: list[str]) -> SurveyAnswer:
        """One row as an answer; raises ValueError with the reason it was skipped."""
        survey = self.survey

        def cell(index: int) -> str:
            return cells[index].strip() if index < len(cells) else ""

        address = cell(self.email_at)
        if not address:
            raise ValueError(f"no e-mail address in column '{survey.email_column}'; the "
                             "answer was skipped")
        if address.lower() == ANONYMOUS:
            raise ValueError("the answer is anonymous (the form did not record who answered, "
                             "so it cannot be matched to a persona): let the form record "
                             "names; the answer was skipped")
        try:
            email = normalise_email(address)
        except ValueError as exc:
            raise ValueError(f"{exc} (column '{survey.email_column}'); the answer was "
                             "skipped") from None
        if self.forgotten and self.ledger.address_hash(email) in self.forgotten:
            raise ValueError("this person was forgotten on request; their answers are not "
                             "recorded")
        if email not in self.known:
            raise ValueError(f"{email} is not in the people export or the ledger; the answer "
                             "was skipped")
        answer = " ".join(cell(self.fit_at).split())
        if not answer:
            raise ValueError(f"no answer in column {excerpt(survey.fit_column, 120)}; the row "
                             "was skipped")
        submitted = self.now
        if self.time_at is not None:
            stamp = cell(self.time_at)
            if not stamp:
                raise ValueError(f"no time in column '{survey.time_column}'; the answer was "
                                 "skipped")
            try:
                submitted = parse_timestamp(stamp, self.zone)
            except ValueError as exc:
                raise ValueError(f"{exc} in column '{survey.time_column}' (write e.g. "
                                 "31-01-2027 14:05:00 or 2027-01-31T14:05:00); the answer was "
                                 "skipped") from None
            self.limits.check(submitted, "the answer's date")
        response = cell(self.id_at) if self.id_at is not None else ""
        if response:
            identity = f"id\n{response}\n{email}"
        elif self.time_at is not None:
            identity = f"at\n{email}\n{iso(submitted)}\n{answer_key(answer)}"
        else:
            identity = f"answer\n{email}\n{answer_key(answer)}"
        return SurveyAnswer(self.campaign, email, answer, iso(submitted), identity)


def import_survey(ledger: Ledger, project: Project, campaign: str, path: Path, now: datetime,
                  *, display: str | None = None) -> SurveyImport:
    """Record the fit answers of a Forms export for `campaign`; answers already recorded are
    not added again. Bad rows are skipped and listed; a missing column stops the import."""
    model = project.campaign(campaign)
    survey = model.survey
    if survey is None:
        raise LdmailError(f"campaign '{campaign}' has no survey: block")
    require_file(path)
    display = display or str(path)
    wanted = [c for c in (survey.email_column, survey.fit_column, survey.time_column) if c]
    header, rows = read_rows(path, display, delimiter=_delimiter(path, wanted),
                             missing="check the path given")
    keys = [_header_key(h) for h in header]
    source = project.campaigns[campaign].source
    positions: dict[str, int] = {}
    for setting, column in (("email_column", survey.email_column),
                            ("fit_column", survey.fit_column),
                            ("time_column", survey.time_column)):
        if column is None:
            continue
        try:
            positions[setting] = keys.index(_header_key(column))
        except ValueError:
            rows_left = getattr(rows, "close", None)
            if rows_left is not None:
                rows_left()  # and with it the file
            line = source.line_of(("survey", setting))
            raise LdmailError(
                f"{display}: no column {excerpt(column, 80)} (survey.{setting} in "
                f"{source.display}:{line}); its columns are: {', '.join(header)}") from None
    reader = _Rows(ledger, campaign, survey, positions["email_column"],
                   positions["fit_column"], positions.get("time_column"),
                   find_column(header, ID_COLUMNS), model.send_window.timezone,
                   project.settings.dates, _Known(ledger, project), ledger.forgotten_hashes(),
                   now)
    result = SurveyImport(display, campaign)
    good: list[SurveyAnswer] = []
    for line, cells in rows:
        where = f"row {line}"
        if cells and cells[0].startswith("\x00"):  # read_rows' mark for a row csv cannot parse
            result.skipped.append(Skipped(where, f"unreadable CSV ({cells[0][1:]})"))
            continue
        try:
            good.append(reader.answer(cells))
        except ValueError as exc:
            result.skipped.append(Skipped(where, str(exc)))
    result.added, result.already_known = ledger.record_survey_answers(good, path.name)
    return result
