"""`ldmail validate`: every file, expression and template checked, each step rendered."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..audience.export import AudienceScan, scan_audience
from ..errors import (
    BudgetExceeded,
    ConfigError,
    LdmailError,
    MissingTranslation,
    Problem,
    RenderError,
)
from ..measurement.sensitivity import Sensitivity, sensitivity
from ..project.config import (
    AUDIENCES_FILE,
    SETTINGS_FILE,
    TEMPLATES_DIR,
    CampaignFile,
    Project,
    load_project,
)
from ..project.models import Campaign, Step, Variant
from ..project.samples import sample_person
from ..project.yamlfile import Loc
from ..sandbox.budget import CONDITION_SECONDS_ENV, RunAllowance
from ..sandbox.expressions import evaluate
from .render import MAX_SUBJECT, Renderer

if TYPE_CHECKING:
    from ..sandbox.conditions import Trial


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    renders: int = 0
    campaigns: int = 0
    # Per campaign with a goal, read from the people export: what it can detect.
    sensitivities: list[Sensitivity] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        if problem not in self.problems:
            self.problems.append(problem)


def _block_line(path: Path, block: str) -> int | None:
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"{%-?\s*block\s+" + block + r"\b", line):
                return number
    except OSError:
        return None
    return None


Answer = Callable[[str, Mapping[str, Any]], object]


def first_failure(expression: str, people: Iterable[Mapping[str, Any]],
                  answer: Answer = evaluate) -> str | None:
    """Why `expression` fails for the first of `people` it fails for (a bomb the budget stops,
    an escape the sandbox blocks, a value it cannot use), or None.

    The one check for every expression validate tries on people: audience.where, a persona's
    match: (the export's people, or sample people) and a step's when: (its campaign's people).
    """
    for attributes in people:
        try:
            answer(expression, attributes)
        except LdmailError as exc:
            return str(exc)
    return None


def _samples(project: Project, today: date, persona: str | None = None
             ) -> Iterator[dict[str, Any]]:
    return (sample_person(project, language, today, persona)
            for language in project.settings.languages)


def _personas(project: Project, campaign: Campaign) -> list[str]:
    return campaign.audience.personas or list(project.audiences.personas)


def _people_of(project: Project, personas: list[str], audience: AudienceScan | None,
               today: date) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(persona, language, attributes) of whom a campaign is tried on: per persona and
    language, the export's first such person, or a sample person."""
    for persona_id in personas:
        for language in project.settings.languages:
            real = audience.first.get((persona_id, language)) if audience else None
            yield persona_id, language, real.attributes if real else \
                sample_person(project, language, today, persona_id)


def check_where(project: Project, campaign: CampaignFile, audience: AudienceScan | None,
                today: date, report: Report) -> None:
    """The audience filter over every person (the scan ran it), or over sample people."""
    where = campaign.model.audience.where
    if not where:
        return
    if audience and audience.people:
        failure = audience.failures.get(where)
    else:
        failure = first_failure(where, _samples(project, today))
    if failure is not None:
        report.add(Problem(campaign.source.display, campaign.source.line_of(("audience", "where")),
                           f"audience.where: {failure}"))


def check_campaign(project: Project, renderer: Renderer, campaign: CampaignFile,
                   audience: AudienceScan | None, today: date, report: Report) -> None:
    model, source = campaign.model, campaign.source
    check_where(project, campaign, audience, today, report)
    people = list(_people_of(project, _personas(project, model), audience, today))
    for index, step, variant in _templates(model):
        for persona_id, language, attributes in people:
            persona = project.audiences.personas.get(persona_id)
            try:
                rendered = renderer.render(campaign.id, model, step, attributes, persona_id,
                                           persona, language, variant=variant)
            except MissingTranslation:
                continue  # check_translations names it, at the campaign's line
            except RenderError as exc:
                if exc.line is None and "not found" in exc.reason:
                    report.add(Problem(source.display,
                                       source.line_of(_template_key(step, index, variant)),
                                       exc.reason))
                else:
                    report.add(Problem(exc.file, exc.line, exc.reason))
                continue
            report.renders += 1
            template_path = project.root / rendered.template_file
            who = f"persona '{persona_id}' ({language})"
            if variant is not None:
                who += f" in variant '{variant.id}'"
            if not rendered.wiifm.strip():
                cause = ""
                if persona is not None and not persona.wiifm_for(
                        language, project.settings.default_language).strip():
                    cause = f" (it has no wiifm for '{language}' in {AUDIENCES_FILE})"
                report.add(Problem(
                    rendered.template_file, _block_line(template_path, "wiifm"),
                    f"step '{step.id}' gives {who} no WIIFM passage{cause}; write one in "
                    "{% block wiifm %} or give the persona a wiifm in audiences.yaml"))
            if not rendered.subject:
                report.add(Problem(rendered.template_file,
                                   _block_line(template_path, "subject"),
                                   f"step '{step.id}' has an empty subject for {who}; "
                                   "write one in {% block subject %}"))
            elif len(rendered.subject) > MAX_SUBJECT:
                report.add(Problem(rendered.template_file,
                                   _block_line(template_path, "subject"),
                                   f"subject for {who} is {len(rendered.subject)} characters; "
                                   f"keep it under {MAX_SUBJECT} (inboxes cut it at ~60)"))


def check_conditions(project: Project, campaign: CampaignFile, audience: AudienceScan | None,
                     today: date, report: Report) -> None:
    """Each step's when: answered for the people the campaign is tried on, with no learning
    events and with made-up ones for the events it names (conditions.trials), so a bomb or a
    reach into Python internals is an error before any send, even one only an event opens."""
    from ..sandbox.conditions import trials  # loaded here: a quiet cron send imports this module

    now = datetime.combine(today, time(12), UTC)
    people = [attributes for _, _, attributes in
              _people_of(project, _personas(project, campaign.model), audience, today)]
    for index, step in enumerate(campaign.model.steps):
        if step.when is None:
            continue
        failure = first_failure(step.when, people, _trying(trials(step.when, now)))
        if failure is not None:
            report.add(Problem(campaign.source.display,
                               campaign.source.line_of(("steps", index, "when")),
                               f"steps.when: step '{step.id}': {failure}"))


def _trying(histories: list[Trial]) -> Answer:
    """An Answer that tries a condition with each of `histories`, within the time a send's
    conditions get together (RunAllowance): CI runs this on every pull request, and a
    condition slower than that would hold sends anyway."""
    from ..sandbox.conditions import condition_holds

    allowance = RunAllowance()

    def answer(condition: str, attributes: Mapping[str, Any]) -> bool:
        for history in histories:
            if allowance.spent():
                raise BudgetExceeded(
                    f"answering it for the people validate tries it on took longer than "
                    f"{allowance.seconds:g} s ({CONDITION_SECONDS_ENV}), the time a send has "
                    "for the conditions of every person due; make it simpler")
            try:
                with allowance.measuring():
                    condition_holds(condition, attributes, history.events, history.at)
            except LdmailError as exc:
                raise LdmailError(f"{exc}{history.told}") from None
        return True

    return answer


def check_persona_matches(project: Project, today: date, report: Report) -> None:
    """Each persona's match: on sample people; the export's people, when read, are tried as
    they are read (a failure there stops the read and is reported with its row)."""
    source = project.audiences_source
    for persona_id, persona in project.audiences.personas.items():
        failure = first_failure(persona.match, _samples(project, today, persona_id))
        if failure is not None:
            report.add(Problem(AUDIENCES_FILE,
                               source.line_of(("personas", persona_id, "match")) if source
                               else None,
                               f"personas.{persona_id}.match: {failure} (evaluating a sample "
                               "person)"))


def check_translations(project: Project, campaign: CampaignFile, report: Report) -> None:
    """Every language listed in `languages:` has its own template for every step.

    An error, not a warning: a listed language promises its readers their own language, and
    `send` holds their messages until the translation exists. A campaign that names a
    `fallback_language` sends that language's text instead: then it is a warning.
    """
    default = project.settings.default_language
    fallback = campaign.model.fallback_language
    if fallback is not None and fallback not in project.settings.languages:
        report.add(Problem(campaign.source.display, campaign.source.line_of(
            ("fallback_language",)), f"fallback_language '{fallback}' is not one of the "
            f"project's languages ({', '.join(project.settings.languages)} in ldmail.yaml)"))
        return
    for index, step, variant in _templates(campaign.model):
        template = step.template_of(variant)
        instead = f"{TEMPLATES_DIR}/{fallback or default}/{template}.md"
        which = f"step '{step.id}'" if variant is None else \
            f"variant '{variant.id}' of step '{step.id}'"
        for language in project.settings.languages:
            path = f"{TEMPLATES_DIR}/{language}/{template}.md"
            if language == default or (project.root / path).is_file() or \
                    not (project.root / instead).is_file():
                continue
            where = campaign.source.line_of(_template_key(step, index, variant))
            if fallback is None:
                report.add(Problem(campaign.source.display, where,
                                   f"{which} has no '{language}' template: create {path} (its "
                                   f"readers' messages are held until it exists)"))
            elif fallback != language:
                report.warnings.append(Problem(
                    campaign.source.display, where, f"{which} has no '{language}' template: "
                    f"its readers get {instead} (fallback_language)"))


def _templates(campaign: Campaign) -> list[tuple[int, Step, Variant | None]]:
    """(step index, step, variant) of every template a campaign sends: each variant's."""
    return [(index, step, variant) for index, step in enumerate(campaign.steps)
            for variant in step.choices]


def _template_key(step: Step, index: int, variant: Variant | None) -> tuple[str | int, ...]:
    """Where the YAML names the template of `step` (with `variant`)."""
    if variant is None:
        return ("steps", index, "template")
    return ("steps", index, "variants", step.choices.index(variant), "template")


def broken_campaigns(project: Project, renderer: Renderer, campaign_ids: list[str],
                     today: date) -> dict[str, Problem]:
    """The first problem of each campaign whose steps do not render for sample people."""
    broken: dict[str, Problem] = {}
    for campaign_id in campaign_ids:
        report = Report()
        check_campaign(project, renderer, project.campaigns[campaign_id], None, today, report)
        if report.problems:
            broken[campaign_id] = report.problems[0]
    return broken


def validate(root: Path, today: date, *, sample_people: bool = False,
             tracked: Callable[[str], list[str] | None] | None = None) -> Report:
    """Collect every problem in the project; an empty `problems` list means it is clean.

    With `sample_people`, the people export is not read (it need not exist): every step is
    rendered for stand-ins only. `tracked` lists the files git tracks under a folder (None:
    ask git, project.tracked.tracked_files).
    """
    report = Report()
    try:
        project = load_project(root, strict=False)
    except ConfigError as exc:
        report.problems.extend(exc.problems)
        return report
    report.problems.extend(project.problems)
    audience: AudienceScan | None = None
    if not sample_people and not any(p.file == AUDIENCES_FILE for p in project.problems):
        wheres = {file.model.audience.where for file in project.campaigns.values()
                  if file.model.audience.where}
        measured = [campaign_id for campaign_id, file in project.campaigns.items()
                    if file.model.goal is not None]
        try:
            audience = scan_audience(project, today, wheres=sorted(wheres), campaigns=measured)
        except ConfigError as exc:
            report.problems.extend(exc.problems)
        except LdmailError as exc:
            report.problems.append(Problem(AUDIENCES_FILE, None, str(exc)))
    if audience is not None and audience.rejected:
        report.warnings.append(Problem(
            audience.source, audience.rejected[0].row,
            f"{len(audience.rejected)} row(s) rejected; run 'ldmail audience' to see each"))
    if audience is not None and audience.notes:
        first = audience.notes[0]
        report.warnings.append(Problem(
            audience.source, first.row,
            f"{audience.note_count} row(s) read with a note, the first: {first.reason}; run "
            "'ldmail audience' to see each"))
    if sample_people:
        check_persona_matches(project, today, report)
    renderer = Renderer(project)
    failing = {p.file for p in project.problems}
    for campaign in project.campaigns.values():
        report.campaigns += 1
        if campaign.source.display in failing:
            continue
        check_campaign(project, renderer, campaign, audience, today, report)
        check_conditions(project, campaign, audience, today, report)
        check_translations(project, campaign, report)
        check_events(project, campaign, report)
        if audience is not None and campaign.id in audience.groups:
            check_power(campaign, *audience.groups[campaign.id], report)
    check_tracked(project, report, tracked)
    check_hosts(project, report)
    report.problems.sort(key=lambda p: (p.file, p.line or 0))  # as the project's own are
    return report


def check_hosts(project: Project, report: Report) -> None:
    """A problem for an LRS endpoint or IMAP host that no request could go to (a port out of
    range, a double dot): found now rather than as a failed pull or inbox run."""
    import httpx  # only here: a cron send imports this module, and httpx costs 40 ms

    lrs, inbox = project.settings.lrs, project.settings.inbox
    if lrs is not None:
        try:
            httpx.URL(lrs.endpoint)
            _host_name(urlsplit(lrs.endpoint).hostname or "")
        except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError is a ValueError
            report.add(Problem(SETTINGS_FILE, None, f"lrs.endpoint {lrs.endpoint!r} is not a "
                               f"usable URL ({exc}); e.g. https://lrs.example.org/xAPI"))
    if inbox is not None and inbox.kind == "imap" and inbox.host:
        try:
            _host_name(inbox.host)
        except UnicodeError as exc:
            report.add(Problem(SETTINGS_FILE, None, f"inbox.host {inbox.host!r} is not a "
                               f"host name ({exc}); e.g. imap.example.org"))


def _host_name(host: str) -> None:
    """UnicodeError unless the resolver could be asked for `host` (it encodes with IDNA)."""
    host.encode("idna")


def check_tracked(project: Project, report: Report,
                  tracked: Callable[[str], list[str] | None] | None = None) -> None:
    """A warning for each folder with personal data in it that git tracks (`tracked` lists
    them; None: ask git)."""
    from ..project.tracked import private_tracked, tracked_files

    files = (tracked or tracked_files)(str(project.root))
    if not files:
        return
    folders = [".ldmail"]
    inbox = project.settings.inbox
    if inbox is not None and inbox.kind != "imap" and inbox.path:
        where = PurePosixPath(inbox.path)
        done = where.parent / inbox.done_folder
        if inbox.kind == "mbox" and where.suffix:
            done = done.with_name(done.name + where.suffix)
        folders += [str(where), str(done)]
    for folder, inside in private_tracked(files, folders).items():
        report.warnings.append(Problem(
            inside[0], None, f"git tracks {len(inside)} file(s) in {folder}, which hold names "
            f"and addresses; untrack them (git rm -r --cached {shlex.quote(folder)}) and list "
            f"{folder} in .gitignore"))


def known_events(project: Project) -> set[str]:
    """Event names a project can expect: common xAPI verbs, every goal and trigger, and the
    verbs the LRS is read for."""
    from ..sandbox.conditions import COMMON_EVENTS, verb_name

    known = set(COMMON_EVENTS)
    for file in project.campaigns.values():
        known |= {rule.event for rule in (file.model.goal, file.model.trigger) if rule}
    if project.settings.lrs is not None:
        known |= {verb_name(verb) for verb in project.settings.lrs.verbs}
    return known


def check_events(project: Project, campaign: CampaignFile, report: Report) -> None:
    """Warnings for a condition or trigger that names an event nothing seems to produce."""
    from ..sandbox.conditions import events_named, verb_name

    known = known_events(project)
    lrs = project.settings.lrs
    pulled = {verb_name(verb) for verb in lrs.verbs} if lrs is not None and lrs.verbs else None
    named: list[tuple[Loc, str]] = []
    trigger = campaign.model.trigger
    if trigger is not None:
        named.append((("trigger", "event"), trigger.event))
    for index, step in enumerate(campaign.model.steps):
        named += [(("steps", index, "when"), event) for event in events_named(step.when or "")]
    for loc, event in named:
        line = campaign.source.line_of(loc)
        if event not in known:
            close = difflib.get_close_matches(event, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            report.warnings.append(Problem(
                campaign.source.display, line,
                f"event '{event}' is not a goal, trigger or common xAPI verb; {hint}check its "
                "spelling (an event is the last part of an xAPI verb id, e.g. completed)"))
        elif pulled is not None and event not in pulled and loc[0] == "trigger":
            report.warnings.append(Problem(
                campaign.source.display, line,
                f"trigger event '{event}' is not among lrs.verbs, so 'ldmail events pull' "
                "never records it; only 'ldmail events import' can start this campaign"))


def check_power(campaign: CampaignFile, mailed: int, holdout: int, report: Report) -> None:
    """The smallest uplift the campaign can detect; a warning if its hypothesis is smaller."""
    found = sensitivity(campaign.id, campaign.model, mailed, holdout)
    report.sensitivities.append(found)
    advice = found.advice()
    if advice is not None:
        report.warnings.append(Problem(
            campaign.source.display,
            campaign.source.line_of(("hypothesis", "expected_uplift")),
            f"hypothesis cannot be decided: {advice}"))
