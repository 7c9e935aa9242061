"""`ldmail preview`: what a persona, or one person, will receive for each step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from ..audience.export import AudienceScan, Person, scan_audience
from ..errors import LdmailError
from ..project.config import PREVIEW_FOLDER, Project
from ..project.models import MANAGER_EMAIL, Campaign, Step, Variant
from ..project.samples import sample_manager, sample_person
from ..project.schedule import assign_variant
from ..sandbox.expressions import evaluate
from ..sandbox.hygiene import file_name_part, private_folder, write_private
from ..units import format_duration
from .render import Rendered, Renderer

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class PreviewItem:
    step: Step
    persona: str | None
    language: str
    recipient: str
    real_person: bool
    rendered: Rendered
    # Why the campaign would not send this to the person asked for (--person), if it would not.
    outside: str | None = None
    # The step's A/B variant shown: the one the person gets (--person), or each in turn.
    variant: Variant | None = None
    cc: str | None = None  # the manager copied in (cc_manager)
    # A step to the manager: the person it is about (`recipient` is then the manager's
    # address, a stand-in's for a persona), and why it would not go, if it would not.
    about: str | None = None
    not_sent: str | None = None
    # The step's condition (when:), answered for the person asked for (--person) by the end
    # of the preview's day; for a persona, only the condition.
    branch: str | None = None

    @property
    def fallback(self) -> str | None:
        """Why the text is in another language than the reader's, when it is."""
        used = self.rendered.language
        if used == self.language:
            return None
        return f"{used} (fallback_language: there is no {self.language} template)"

    @property
    def to(self) -> str:
        """The To line as previews show it."""
        if self.about is None:
            return self.recipient
        shown = f"{self.recipient or '(nobody)'} (the manager of {self.about})"
        return f"{shown}: {self.not_sent}" if self.not_sent else shown


# Whom a preview renders for: persona, language, attributes, address, and whether it is a
# real person of the export (else a stand-in).
_Target = tuple[str | None, str, Mapping[str, object], str, bool]


def build_preview(project: Project, campaign_id: str, today: date, *, step_id: str | None = None,
                  persona_id: str | None = None, email: str | None = None,
                  language: str | None = None, sample_people: bool = False
                  ) -> list[PreviewItem]:
    """Render the chosen steps for the chosen personas (or one person); with `sample_people`,
    for stand-ins only, without reading the people export. A step with A/B variants is shown
    in the variant a person gets, and for a persona in every variant."""
    campaign = project.campaign(campaign_id)
    _check_language(project, language)
    steps = _chosen_steps(campaign, campaign_id, step_id)
    if sample_people and email is not None:
        raise LdmailError("--person shows a real person from the export; leave out "
                          "--sample-people")
    wanted = email.strip().lower() if email is not None else None
    audience = AudienceScan("sample people", []) if sample_people else \
        scan_audience(project, today, email=wanted)
    manager: _Manager | None = None
    outside: str | None = None
    chosen: str | None = None
    if email is not None:
        person = audience.found
        if person is None:
            raise LdmailError(f"{email} is not in {audience.source} (or its row was rejected; "
                              "see 'ldmail audience')")
        targets: list[_Target] = [(person.persona, language or person.language,
                                   person.attributes, person.email, True)]
        outside = _outside(campaign, person.persona, person.attributes)
        chosen = person.email
        if any(step.involves_manager for step in steps):
            manager = _manager_of(project, today, person)
    else:
        targets = _persona_targets(project, campaign, audience, today, persona_id, language)
    answer = _conditions(project, today, chosen, targets[0][2]) if chosen else None
    renderer = Renderer(project)
    items: list[PreviewItem] = []
    for step in steps:
        variants = step.choices if chosen is None else \
            [assign_variant(campaign_id, step, chosen)]
        for variant in variants:
            for target in targets:
                branch = None if step.when is None else \
                    f"{step.when}: {answer(step.when)}" if answer else f"sent only when {step.when}"
                items.append(_render_for(project, renderer, campaign_id, step, variant, target,
                                         manager, language, outside, branch))
    return items


def _check_language(project: Project, language: str | None) -> None:
    if language is not None and language not in project.settings.languages:
        raise LdmailError(f"--lang {language}: not one of this project's languages "
                          f"({', '.join(project.settings.languages)}); add it to languages in "
                          "ldmail.yaml, with its templates, to write to its readers")


def _chosen_steps(campaign: Campaign, campaign_id: str, step_id: str | None) -> list[Step]:
    if step_id is None:
        return list(campaign.steps)
    steps = [s for s in campaign.steps if s.id == step_id]
    if not steps:
        raise LdmailError(f"campaign '{campaign_id}' has no step '{step_id}'; its steps: "
                          f"{', '.join(s.id for s in campaign.steps)}")
    return steps


def _persona_targets(project: Project, campaign: Campaign, audience: AudienceScan, today: date,
                     persona_id: str | None, language: str | None) -> list[_Target]:
    """One target per persona: the first real person of the export in it, else a stand-in."""
    targets: list[_Target] = []
    personas = [persona_id] if persona_id else (campaign.audience.personas
                                                 or list(project.audiences.personas))
    for name in personas:
        if name not in project.audiences.personas:
            raise LdmailError(f"no persona '{name}'; personas: "
                              f"{', '.join(project.audiences.personas)}")
        lang = language or project.settings.default_language
        real = audience.first.get((name, lang))
        attributes: Mapping[str, object] = real.attributes if real else \
            sample_person(project, lang, today, name)
        targets.append((name, lang, attributes, str(attributes["email"]), real is not None))
    return targets


def _render_for(project: Project, renderer: Renderer, campaign_id: str, step: Step,
                variant: Variant | None, target: _Target, manager: _Manager | None,
                language: str | None, outside: str | None, branch: str | None
                ) -> PreviewItem:
    """One step in one variant for one target; a step to the manager goes to the manager
    (a stand-in for a persona), and a step that copies the manager shows the copy."""
    persona, lang, attributes, recipient, is_real = target
    campaign = project.campaign(campaign_id)
    model = project.audiences.personas.get(persona) if persona else None
    shown = manager or _Manager(sample_manager(lang)["email"])
    about = cc = not_sent = None
    context = None
    if step.to == "manager":
        about, recipient, not_sent = str(attributes["email"]), shown.address, shown.problem
        if shown.context is not None:
            context, lang = shown.context, language or shown.language
    elif step.cc_manager and not shown.problem:
        cc = shown.address
    rendered = renderer.render(campaign_id, campaign, step, attributes, persona, model, lang,
                               variant=variant, manager=context)
    return PreviewItem(step, persona, lang, recipient, is_real, rendered, outside, variant, cc,
                       about, not_sent, branch)


def _conditions(project: Project, today: date, email: str, attributes: Mapping[str, object]
                ) -> Callable[[str], str]:
    """Answers a condition for one person with their learning events in the ledger (none
    when there is no ledger yet), as it stands at the end of `today`."""
    from ..clock import from_iso, iso
    from ..ledger import Ledger, ledger_path
    from ..sandbox.conditions import LearningEvent, condition_holds

    moment = datetime.combine(today, time(23, 59, 59), tzinfo=UTC)
    found: list[LearningEvent] = []
    if ledger_path(project, None).exists():
        with Ledger.of(project, None, readonly=True) as ledger:
            found = [LearningEvent(e.event, e.object, from_iso(e.occurred_at))
                     for e in ledger.events_of([email], iso(moment)).get(email, [])]

    def answer(condition: str) -> str:
        try:
            holds = condition_holds(condition, attributes, found, moment)
        except LdmailError as exc:
            return f"it fails for this person ({exc}): the step would be held"
        return "true for this person now: they get this step" if holds else \
            "false for this person now: the step would be skipped"

    return answer


@dataclass(frozen=True)
class _Manager:
    """The manager of the person previewed, as the export gives them."""

    address: str
    problem: str | None = None  # why nothing goes to them
    language: str = ""
    context: Mapping[str, str] | None = None  # from their own row, when the export has one


def _manager_of(project: Project, today: date, person: Person) -> _Manager:
    address = str(person.attributes.get(MANAGER_EMAIL) or "")
    if not address:
        return _Manager("", f"the export gives no {MANAGER_EMAIL} for this person, so a step "
                            "to the manager is skipped")
    if address == person.email:
        return _Manager(address, "the person's own address, so a step to the manager is "
                                 "skipped")
    found = scan_audience(project, today, email=address).found
    if found is None:
        return _Manager(address, context={"email": address, "name": "", "first_name": ""})
    return _Manager(address, None, found.language, {
        "email": address, "name": found.display_name,
        "first_name": str(found.attributes.get("first_name") or "")})


def _outside(campaign: Campaign, persona: str | None,
             attributes: Mapping[str, object]) -> str | None:
    """Why `campaign` does not target a person, or None when it does."""
    wanted = campaign.audience.personas
    if wanted and persona not in wanted:
        return (f"their persona is {persona or 'none'}, and the campaign is for "
                f"{', '.join(wanted)}")
    where = campaign.audience.where
    if where:
        try:
            if not evaluate(where, attributes):
                return f"the campaign's audience rule ({where}) is false for them"
        except LdmailError as exc:
            return f"the campaign's audience rule cannot be evaluated for them ({exc})"
    return None


def write_html(root: Path, campaign: str, item: PreviewItem) -> Path:
    """`preview --html`: the item's HTML part in the project's preview folder, in a file named
    for what it shows (no address in the name)."""
    folder = private_folder(root / PREVIEW_FOLDER)
    name = "-".join(file_name_part(part) for part in (
        campaign, item.step.id, *([item.variant.id] if item.variant else []),
        item.persona or "none", item.language)) + ".html"
    path = folder / name
    write_private(path, item.rendered.html)
    return path


def invite_summary(campaign: Campaign, step: Step) -> str | None:
    """The step's meeting request in one line, as the reader's calendar will show it."""
    invite = step.calendar
    if invite is None:
        return None
    day = WEEKDAY_NAMES[invite.weekday]
    where = f", {invite.location}" if invite.location else ""
    return (f"{invite.title}: every {day} at {invite.time:%H:%M} for "
            f"{format_duration(invite.duration)}, {invite.weeks} weeks "
            f"({campaign.send_window.timezone.key}{where}); sent as a meeting request")


def variant_summary(step: Step, variant: Variant | None, *, assigned: bool) -> str | None:
    """Which A/B variant is shown, and its share of the step's weights, in one line."""
    if variant is None or not step.variants:
        return None
    share = step.shares()[variant.id]
    others = [v.id for v in step.variants if v is not variant]
    plural = "s" if len(others) > 1 else ""
    line = f"{variant.id}, sent to {share:.0%} of people (the other{plural}: {', '.join(others)})"
    return line + "; this person gets it" if assigned else line
