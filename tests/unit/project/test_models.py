"""ldmail.project.models: the typed files an author edits. Unknown keys are errors and loaded
values never change; defaults are sensible; every whole-model check names the key it is
about, so a user reads `file:line: what to do`; steps, variants and holiday settings offer
the derived values the send relies on (shares, choices, the business calendar)."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ldmail.project.business_days import Blackout, BusinessCalendar, Region
from ldmail.project.models import (
    Audiences,
    Campaign,
    DateLimits,
    Persona,
    Settings,
    Step,
    Transport,
    is_loopback,
)

from .conftest import Complaints

CAMPAIGN = """title: Welcome
phase: activate
starts: 2026-01-01
sender: learning@example.org
steps:
"""
ONE_STEP = CAMPAIGN + "  - {id: hello, after: 0d, template: welcome/hello}\n"


def step(**fields: object) -> Step:
    return Step.model_validate({"id": "hello", "after": "0d", **fields})


def test_an_empty_settings_file_means_the_documented_defaults() -> None:
    settings = Settings()
    assert settings.timezone == ZoneInfo("Europe/Amsterdam")
    assert (settings.default_language, settings.languages) == ("en", ["en"])
    assert settings.transport.kind == "outbox" and settings.transport.pace is None
    assert settings.ledger == ".ldmail/ledger.db"
    assert settings.retry.max_attempts == 5 and settings.retry.backoff == timedelta(minutes=10)
    assert not settings.holidays.calendar()  # no holidays: every day is open


def test_a_typo_is_an_unknown_key_with_a_suggestion(complaints: Complaints) -> None:
    assert complaints(Settings, "organisation: Acme\ntimezon: Europe/Berlin\n") == [
        "file.yaml:2: unknown key 'timezon' (did you mean 'timezone'?); allowed here: "
        "organisation, timezone, default_language, languages, unsubscribe, brand, utm, "
        "transport, ledger, retry, exits, dates, run, inbox, lrs, holidays, vars"]


def test_loaded_values_never_change() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.organisation = "Acme"  # type: ignore[misc]


def test_the_default_language_must_be_one_of_the_languages(complaints: Complaints) -> None:
    assert complaints(Settings, "languages: [en, nl]\ndefault_language: de\n") == [
        "file.yaml:2: default_language: 'de' is not in languages (en, nl); add it there or "
        "pick one"]


def test_a_provider_preset_fills_in_only_what_is_not_given() -> None:
    preset = Transport.model_validate({"kind": "smtp", "host": "smtp.example.org",
                                       "limits": "exchange-online"})
    assert preset.rate == pytest.approx(0.5) and preset.daily_cap == 10_000
    own_rate = Transport.model_validate({"kind": "smtp", "host": "smtp.example.org",
                                         "limits": "exchange-online", "rate": "10/min"})
    assert own_rate.rate == pytest.approx(10 / 60) and own_rate.daily_cap == 10_000
    assert own_rate.pace == own_rate.rate
    # The outbox writes files: it has no pace even with a rate.
    assert Transport.model_validate({"rate": "10/min"}).pace is None


@pytest.mark.parametrize(("text", "expected"), [
    ("transport:\n  kind: smtp\n",
     "file.yaml:1: transport: transport kind smtp needs a host, e.g. host: smtp.example.org"),
    ("transport:\n  kind: graph\n",
     "file.yaml:2: transport.kind: transport kind graph needs an oauth2 block (tenant_id, "
     "client_id, client_secret_env); see the README's 'Sending from Microsoft 365'"),
    ("transport:\n  kind: smtp\n  host: smtp.example.org\n  auth: oauth2\n",
     "file.yaml:4: transport.auth: auth: oauth2 needs an oauth2 block under transport "
     "(tenant_id, client_id, client_secret_env, or a token_command); see the README's "
     "'Sending from Microsoft 365'"),
    ("transport:\n  kind: smtp\n  host: smtp.example.org\n  auth: oauth2\n"
     "  oauth2: {token_command: get-token}\n",
     "file.yaml:4: transport.auth: auth: oauth2 needs user: the mailbox that sends (its user "
     "principal name, e.g. learning@example.org)"),
    ("transport:\n  graph_url: https://graph.example.org/v1.0\n",
     "file.yaml:2: transport.graph_url: 'https://graph.example.org/v1.0' must be an https:// "
     "address with only a host, e.g. https://graph.microsoft.com"),
])
def test_a_transport_says_what_its_kind_still_needs(complaints: Complaints, text: str,
                                                    expected: str) -> None:
    assert complaints(Settings, text) == [expected]


@pytest.mark.parametrize(("oauth2", "expected"), [
    ("{token_command: get-token, tenant_id: contoso}",
     "give either token_command or an app registration, not both (remove tenant_id or "
     "token_command)"),
    ("{token_command: \"get 'token\"}",
     "transport.oauth2.token_command: token_command cannot be read as a program and its "
     "arguments (no closing quotation); check its quotes (it runs without a shell)"),
    ("{tenant_id: contoso}",
     "oauth2 needs client_id (from the app registration's Overview page in Entra ID), or a "
     "token_command"),
    ("{tenant_id: contoso, client_id: app}",
     "oauth2 needs either client_secret_env (the environment variable holding the client "
     "secret) or certificate and thumbprint, not both"),
    ("{tenant_id: contoso, client_id: app, certificate: app.pem}",
     "certificate and thumbprint go together: give both"),
])
def test_oauth2_is_a_token_command_or_one_complete_app_registration(
        complaints: Complaints, oauth2: str, expected: str) -> None:
    text = f"transport:\n  kind: graph\n  oauth2: {oauth2}\n"
    found = complaints(Settings, text)
    assert len(found) == 1 and found[0].startswith("file.yaml:3: ")
    assert found[0].endswith(expected)


def test_a_secret_comes_from_an_environment_variable_never_the_file() -> None:
    settings = Settings.model_validate({"transport": {"kind": "graph", "oauth2": {
        "tenant_id": "contoso", "client_id": "app", "client_secret_env": "LDMAIL_SECRET"}}})
    oauth2 = settings.transport.oauth2
    assert oauth2 is not None and oauth2.client_secret_env == "LDMAIL_SECRET"
    assert oauth2.authority == "https://login.microsoftonline.com"


@pytest.mark.parametrize(("text", "expected"), [
    ("unsubscribe: {url: 'http://example.org/off'}\n",
     "file.yaml:1: unsubscribe.url: 'http://example.org/off' must be an https:// URL (mail "
     "clients ignore others)"),
    ("brand: {logo: 'https://example.org/our logo.png'}\n",
     "file.yaml:1: brand.logo: 'https://example.org/our logo.png' must be an https:// URL of "
     "an image (mail clients block others), without quotes, spaces or angle brackets"),
    ("inbox: {kind: imap, host: imap.example.org}\n",
     "file.yaml:1: inbox.user: inbox kind imap needs a user, e.g. user: learning@example.org"),
    ("inbox: {kind: imap, host: imap.example.org, user: l@example.org, security: none}\n",
     "file.yaml:1: inbox.security: none (no TLS) is only allowed to a loopback host, not "
     "imap.example.org; use tls or starttls"),
    ("inbox: {kind: mbox}\n",
     "file.yaml:1: inbox.path: inbox kind mbox needs a path, e.g. path: exports/inbox.mbox"),
    ("lrs: {endpoint: 'http://lrs.example.org/xAPI', user: reader}\n",
     "file.yaml:1: lrs.endpoint: http (no TLS) is only allowed to a loopback host, not "
     "lrs.example.org; use https"),
    ("lrs: {endpoint: 'lrs.example.org', user: reader}\n",
     "file.yaml:1: lrs.endpoint: 'lrs.example.org' is not an http(s) URL; e.g. endpoint: "
     "https://lrs.example.org/xAPI"),
])
def test_addresses_of_outside_services_must_be_secure(complaints: Complaints, text: str,
                                                      expected: str) -> None:
    assert complaints(Settings, text) == [expected]


def test_plain_text_connections_are_allowed_to_this_machine_only(
        complaints: Complaints) -> None:
    assert complaints(Settings, "inbox: {kind: imap, host: 127.0.0.1, user: u, "
                                "security: none}\n"
                                "lrs: {endpoint: 'http://localhost:8080/xAPI', user: u}\n") == []
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("localhost.example.org")


def test_a_date_outside_the_years_says_where_the_range_is_set() -> None:
    limits = DateLimits()
    limits.check(date(2026, 3, 1), "start_date")
    with pytest.raises(ValueError) as caught:
        limits.check(date(1, 1, 1), "start_date")
    assert str(caught.value) == (
        "start_date 0001-01-01 is outside the years 1900-2200; fix it in the export "
        "(dates.earliest_year and dates.latest_year in ldmail.yaml set the range)")


@pytest.mark.parametrize(("people", "expected"), [
    ("{source: p.csv, columns: {mail: Email}}",
     "file.yaml:1: people.columns: columns needs an 'email' entry naming the address column"),
    ("{source: p.csv, columns: {email: Email, first-name: First}}",
     "file.yaml:1: people.columns: 'first-name' is not a usable attribute name; use letters "
     "and _"),
    ("{source: p.csv, columns: {email: Email}, dates: [start_date]}",
     "file.yaml:1: people.dates: dates lists 'start_date', which is not in columns (email); "
     "map it there first"),
])
def test_the_people_mapping_needs_email_and_usable_attribute_names(
        complaints: Complaints, people: str, expected: str) -> None:
    assert complaints(Audiences, f"people: {people}\npersonas: {{}}\n") == [expected]


def test_a_persona_speaks_the_readers_language_or_the_fallback() -> None:
    persona = Persona.model_validate({"match": "true", "wiifm": {"en": "Grow", "nl": "Groei"}})
    assert persona.wiifm_for("nl", "en") == "Groei"
    assert persona.wiifm_for("de", "en") == "Grow"
    assert persona.wiifm_for("de", "fr") == ""
    one = Persona.model_validate({"match": "true", "wiifm": "Grow"})
    assert one.wiifm_for("nl", "en") == "Grow"


@pytest.mark.parametrize(("steps", "expected"), [
    ("  - {id: hello, after: 0d}\n",
     "file.yaml:6: steps.template: missing required key 'template'; add it (or variants:, "
     "each with its own template, for an A/B test)"),
    ("  - id: hello\n    after: 0d\n    template: welcome/hello\n    variants:\n"
     "      - {id: a, template: welcome/a}\n      - {id: b, template: welcome/b}\n",
     "file.yaml:9: steps.variants: step 'hello' has both template and variants; give one: "
     "template for one message, or variants, each with its own template, for an A/B test"),
    ("  - id: hello\n    after: 0d\n    variants:\n"
     "      - {id: a, template: welcome/a}\n      - {id: a, template: welcome/b}\n",
     "file.yaml:10: steps.variants.id: variant id 'a' is used twice in step 'hello' (also "
     "variant 1); variant ids must be unique"),
    ("  - id: hello\n    after: 0d\n    variants:\n"
     "      - {id: a, template: welcome/a, weight: 0}\n      - {id: b, template: welcome/b}\n",
     "file.yaml:9: steps.variants.weight: 0 is not a usable weight; give a number above 0 "
     "(weights are relative: 70 and 30 send 70% and 30%), or remove the variant"),
    ("  - id: hello\n    after: 0d\n    variants:\n"
     "      - {id: a, template: welcome/a, weight: 1e308}\n"
     "      - {id: b, template: welcome/b, weight: 1e308}\n",
     "file.yaml:8: steps.variants: step 'hello': the weights of its variants add up to more "
     "than a number can hold; weights are relative, so give small numbers such as 70 and 30"),
    ("  - id: hello\n    after: 0d\n    variants:\n      - {id: a, template: welcome/a}\n",
     "file.yaml:8: steps.variants: needs at least 2 item(s)"),
    ("  - {id: hello, after: 0d, template: ../secrets/key}\n",
     "file.yaml:6: steps.template: template '../secrets/key' leaves templates/; name a file "
     "below templates/<language>/ without '..', e.g. welcome/hello"),
])
def test_a_step_has_one_template_or_a_real_ab_test(complaints: Complaints, steps: str,
                                                   expected: str) -> None:
    assert complaints(Campaign, CAMPAIGN + steps) == [expected]


def test_variant_shares_follow_the_weights_and_each_variant_has_its_template() -> None:
    ab = step(variants=[{"id": "story", "template": "w/story", "weight": 70},
                        {"id": "facts", "template": "w/facts", "weight": 30}])
    assert ab.shares() == pytest.approx({"story": 0.7, "facts": 0.3})
    assert [v.id if v else None for v in ab.choices] == ["story", "facts"]
    facts = ab.variant("facts")
    assert facts is not None and ab.template_of(facts) == "w/facts"
    assert ab.variant("nope") is None
    plain = step(template="w/hello")
    assert plain.choices == [None] and plain.template_of(None) == "w/hello"
    assert plain.shares() == {}


@pytest.mark.parametrize(("fields", "expected"), [
    ("to: manager, cc_manager: true",
     "file.yaml:6: steps.cc_manager: step 'hello' goes to the manager already; remove "
     "cc_manager (it copies the manager in on a step to the person)"),
    ("to: manager, calendar: {title: Learning hour, weekday: fri, time: '15:00'}",
     "file.yaml:6: steps.calendar: step 'hello' goes to the manager, whose calendar the "
     "learning moment is not for; remove calendar or to: manager"),
    ("wait_until: true",
     "file.yaml:6: steps.wait_until: step 'hello' has wait_until but no when: condition to "
     "wait for; add when: or remove wait_until"),
])
def test_a_step_refuses_settings_that_contradict_each_other(complaints: Complaints,
                                                            fields: str,
                                                            expected: str) -> None:
    text = CAMPAIGN + f"  - {{id: hello, after: 0d, template: w/hello, {fields}}}\n"
    assert complaints(Campaign, text) == [expected]


def test_who_gets_a_step_and_who_is_copied_in() -> None:
    assert not step(template="w/x").involves_manager
    assert step(template="w/x", to="manager").involves_manager
    assert step(template="w/x", cc_manager=True).involves_manager


@pytest.mark.parametrize(("extra", "expected"), [
    ("  - {id: later, after: 3d, template: w/later}\n  - {id: sooner, after: 1d, "
     "template: w/sooner}\n",
     "file.yaml:8: steps.after: step 'sooner' comes after 'later' but is due earlier (1d < "
     "3d); list steps in the order they are sent"),
    ("  - {id: hello, after: 1d, template: w/again}\n",
     "file.yaml:7: steps.id: step id 'hello' is used twice (also step 1); step ids must be "
     "unique"),
    ("ends: 2025-12-31\n",
     "file.yaml:7: ends: 2025-12-31 is before starts (2026-01-01)"),
    ("anchor: start_date\ntrigger: {event: completed}\n",
     "file.yaml:8: trigger: a campaign has either anchor (day 0 is a date in the people "
     "export) or trigger (day 0 is a learning event); remove one"),
])
def test_a_campaign_refuses_an_order_or_a_start_that_cannot_be(complaints: Complaints,
                                                               extra: str,
                                                               expected: str) -> None:
    assert complaints(Campaign, ONE_STEP + extra) == [expected]


def test_a_campaigns_own_holidays_may_be_none_or_a_short_list() -> None:
    assert Campaign.model_validate({
        "title": "t", "phase": "inform", "starts": "2026-01-01", "sender": "a@example.org",
        "steps": [{"id": "a", "after": "0d", "template": "w/a"}]}).holidays is None
    for written in ("NL", ["NL", "nl"], {"countries": "NL"}):
        holidays = Settings.model_validate({"holidays": written}).holidays
        assert holidays.calendar() == BusinessCalendar((Region("NL"),))
    full = Settings.model_validate({"holidays": {
        "countries": ["DE-BY"], "blackout": ["2026-12-24..2027-01-01", "2027-05-05"]}})
    assert full.holidays.calendar() == BusinessCalendar(
        (Region("DE", "BY"),), (Blackout(date(2026, 12, 24), date(2027, 1, 1)),
                                Blackout(date(2027, 5, 5), date(2027, 5, 5))))


def test_an_unquoted_no_for_norway_is_explained(complaints: Complaints) -> None:
    assert complaints(Campaign, ONE_STEP + "holidays: NO\n") == [
        "file.yaml:7: holidays.countries: 'false' is not a country code: YAML reads an "
        "unquoted NO as false, so write Norway in quotes, \"NO\" (and holidays: [] for no "
        "holidays at all)"]
