"""The report's words and numbers in the reader's language: English, Dutch and German.

Every sentence the table, the HTML page and the CSV show comes from `PHRASES`, so the three
outputs say the same thing; numbers, percentages and dates are written the way the locale
writes them (Babel, from the Unicode CLDR data): 12.5% and 1,234 in English, 12,5% and 1.234
in Dutch and German.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Final

from babel.dates import format_date, format_time
from babel.numbers import format_decimal, format_percent

from ..states import ExitReason
from .stats import Outcome

LANGUAGES: Final = ("en", "nl", "de")

# key -> (English, Dutch, German); {names} are filled in by `Words.t`.
PHRASES: Final[dict[str, tuple[str, str, str]]] = {
    # page
    "report": ("campaign report", "campagnerapport", "Kampagnenbericht"),
    "default_organisation": ("Learning campaigns", "Leercampagnes", "Lernkampagnen"),
    "intro": ("Did the drip campaigns move people to their goal, compared with a holdout group "
              "that got no mail? Figures as of {when}.",
              "Brachten de campagnes mensen dichter bij hun doel dan een controlegroep die geen "
              "mail kreeg? Cijfers tot en met {when}.",
              "Haben die Kampagnen Menschen ihrem Ziel nähergebracht als eine Kontrollgruppe ohne "
              "Mails? Zahlen mit Stand {when}."),
    "at_a_glance": ("At a glance", "In één oogopslag", "Auf einen Blick"),
    "no_campaigns": ("No campaigns in this report.", "Geen campagnes in dit rapport.",
                     "Keine Kampagnen in diesem Bericht."),
    # columns and labels
    "campaign": ("campaign", "campagne", "Kampagne"),
    "phase": ("phase", "fase", "Phase"),
    "enrolled": ("enrolled", "ingeschreven", "aufgenommen"),
    "mailed": ("mailed", "gemaild", "angeschrieben"),
    "holdout": ("holdout", "controlegroep", "Kontrollgruppe"),
    "holdout_share": ("holdout ({share})", "controlegroep ({share})", "Kontrollgruppe ({share})"),
    "messages_sent": ("messages sent", "berichten verstuurd", "Mails versendet"),
    "mailed_converted": ("mailed: goal reached", "gemaild: doel bereikt",
                         "angeschrieben: Ziel erreicht"),
    "holdout_converted": ("holdout: goal reached", "controlegroep: doel bereikt",
                          "Kontrollgruppe: Ziel erreicht"),
    "uplift": ("uplift", "effect", "Effekt"),
    "interval": ("95% interval", "95%-interval", "95%-Intervall"),
    "p": ("p", "p", "p"),
    "days_to_goal": ("median days to goal", "mediaan dagen tot doel", "Median Tage bis Ziel"),
    "verdict": ("verdict", "oordeel", "Ergebnis"),
    "segment": ("segment", "groep", "Gruppe"),
    "all": ("all", "iedereen", "alle"),
    "no_persona": ("(no persona)", "(geen persona)", "(keine Persona)"),
    "step": ("step", "stap", "Schritt"),
    "sent": ("sent", "verstuurd", "versendet"),
    "bounced": ("bounced", "onbestelbaar", "unzustellbar"),
    "skipped": ("skipped", "overgeslagen", "übersprungen"),
    # a step's reader, beside its id: to the manager, or the person with the manager in Cc
    "to_manager": ("{step} (to the manager)", "{step} (aan de leidinggevende)",
                   "{step} (an die Führungskraft)"),
    "cc_manager": ("{step} (cc the manager)", "{step} (cc leidinggevende)",
                   "{step} (cc Führungskraft)"),
    "failed": ("failed", "mislukt", "fehlgeschlagen"),
    "unknown": ("unknown", "onbekend", "unbekannt"),
    "pending": ("pending", "gepland", "geplant"),
    "goal": ("Goal: {goal}", "Doel: {goal}", "Ziel: {goal}"),
    "no_goal_short": ("no goal set", "geen doel ingesteld", "kein Ziel festgelegt"),
    "left_sequence": ("Left the sequence", "Uit de reeks gegaan", "Aus der Reihe ausgestiegen"),
    "reason": ("reason", "reden", "Grund"),
    "people": ("people", "mensen", "Personen"),
    "summary": ("{enrolled} enrolled: {mailed} mailed, {holdout} holdout",
                "{enrolled} ingeschreven: {mailed} gemaild, {holdout} in de controlegroep",
                "{enrolled} aufgenommen: {mailed} angeschrieben, {holdout} in der Kontrollgruppe"),
    # phases
    "phase_inform": ("inform", "informeren", "informieren"),
    "phase_activate": ("activate", "activeren", "aktivieren"),
    "phase_retain": ("retain", "vasthouden", "festigen"),
    # exit reasons, as the ledger writes them
    f"exit_{ExitReason.GOAL_REACHED}": ("goal reached", "doel bereikt", "Ziel erreicht"),
    f"exit_{ExitReason.ALL_STEPS_DONE}": ("all steps done", "alle stappen afgerond",
                                          "alle Schritte erledigt"),
    f"exit_{ExitReason.GOAL_REACHED_BEFORE}": ("goal reached before enrolment",
                                               "doel al bereikt vóór de inschrijving",
                                               "Ziel schon vor der Aufnahme erreicht"),
    f"exit_{ExitReason.SUPPRESSED}": ("suppressed", "geblokkeerd", "gesperrt"),
    f"exit_{ExitReason.UNSUBSCRIBED}": ("unsubscribed", "afgemeld", "abgemeldet"),
    f"exit_{ExitReason.BOUNCED}": ("bounced", "onbestelbaar", "unzustellbar"),
    f"exit_{ExitReason.NOT_IN_EXPORT}": ("no longer in the people export",
                                         "niet meer in het personeelsbestand",
                                         "nicht mehr im Personalexport"),
    f"exit_{ExitReason.NOT_IN_AUDIENCE}": ("no longer in the audience",
                                           "niet meer in de doelgroep",
                                           "nicht mehr in der Zielgruppe"),
    # charts
    "chart_steps": ("Messages per step", "Berichten per stap", "Mails pro Schritt"),
    "chart_steps_note": ("sent and failed per step, in sequence order",
                         "verstuurd en mislukt per stap, in volgorde",
                         "versendet und fehlgeschlagen pro Schritt, in Reihenfolge"),
    "chart_personas": ("Conversion by persona", "Conversie per persona", "Konversion nach Persona"),
    "chart_personas_note": ("share who reached the goal: mailed vs holdout",
                            "aandeel dat het doel bereikte: gemaild tegenover controlegroep",
                            "Anteil mit erreichtem Ziel: angeschrieben gegenüber Kontrollgruppe"),
    "chart_uplift": ("Uplift against the holdout", "Effect ten opzichte van de controlegroep",
                     "Effekt gegenüber der Kontrollgruppe"),
    "chart_uplift_note": ("mailed minus holdout, with the 95% interval; left of 0 means no gain",
                          "gemaild min controlegroep, met het 95%-interval; links van 0 is geen "
                          "winst",
                          "angeschrieben minus Kontrollgruppe, mit 95%-Intervall; links von 0 "
                          "kein Gewinn"),
    "chart_days": ("Messages sent per day", "Berichten verstuurd per dag", "Mails pro Tag"),
    "chart_days_note": ("every calendar day between the first and last send",
                        "elke kalenderdag tussen de eerste en de laatste verzending",
                        "jeder Kalendertag zwischen erstem und letztem Versand"),
    "empty_steps": ("No steps.", "Geen stappen.", "Keine Schritte."),
    "empty_goal": ("No goal set, so no conversion to show.",
                   "Geen doel ingesteld, dus geen conversie om te tonen.",
                   "Kein Ziel festgelegt, also keine Konversion."),
    "empty_holdout": ("Nothing to compare: no holdout members yet.",
                      "Niets te vergelijken: nog niemand in de controlegroep.",
                      "Nichts zu vergleichen: noch niemand in der Kontrollgruppe."),
    "empty_days": ("No messages sent yet.", "Nog geen berichten verstuurd.",
                   "Noch keine Mails versendet."),
    "axis_pair": ("mailed vs holdout", "gemaild / controle", "angeschrieben / Kontrolle"),
    "axis_uplift": ("uplift in percentage points, 95% interval",
                    "effect in procentpunten, 95%-interval",
                    "Effekt in Prozentpunkten, 95%-Intervall"),
    "no_holdout_short": ("no holdout", "geen controlegroep", "keine Kontrollgruppe"),
    "versus": ("{a} vs {b}", "{a} / {b}", "{a} / {b}"),
    "tip_reached": ("{name}, {group}: {k} of {n} reached the goal ({rate})",
                    "{name}, {group}: {k} van {n} bereikten het doel ({rate})",
                    "{name}, {group}: {k} von {n} erreichten das Ziel ({rate})"),
    # headline
    "no_goal": ("No goal set", "Geen doel ingesteld", "Kein Ziel festgelegt"),
    "no_goal_hint": ("Add goal: {event: …} to the campaign to measure conversion against the "
                     "holdout.",
                     "Voeg goal: {event: …} toe aan de campagne om de conversie met de "
                     "controlegroep te vergelijken.",
                     "Ergänzen Sie goal: {event: …} in der Kampagne, um die Konversion mit der "
                     "Kontrollgruppe zu vergleichen."),
    "nobody_yet": ("Nobody enrolled yet", "Nog niemand ingeschreven", "Noch niemand aufgenommen"),
    "nobody_yet_hint": ("The figures appear after the first ldmail send.",
                        "De cijfers verschijnen na de eerste ldmail send.",
                        "Die Zahlen erscheinen nach dem ersten ldmail send."),
    "detail": ("{rate1} of mailed people reached the goal ({k1} of {n1}), against {rate2} of "
               "the holdout ({k2} of {n2}): {uplift}, 95% interval {interval}.",
               "{rate1} van de gemailde mensen bereikte het doel ({k1} van {n1}), tegenover "
               "{rate2} van de controlegroep ({k2} van {n2}): {uplift}, 95%-interval "
               "{interval}.",
               "{rate1} der Angeschriebenen erreichten das Ziel ({k1} von {n1}), gegenüber "
               "{rate2} der Kontrollgruppe ({k2} von {n2}): {uplift}, 95%-Intervall "
               "{interval}."),
    "detail_no_holdout": ("{rate1} of mailed people reached the goal ({k1} of {n1}); there is "
                          "no holdout group, so the effect of the mails cannot be measured.",
                          "{rate1} van de gemailde mensen bereikte het doel ({k1} van {n1}); er "
                          "is geen controlegroep, dus het effect van de mails is niet te meten.",
                          "{rate1} der Angeschriebenen erreichten das Ziel ({k1} von {n1}); es "
                          "gibt keine Kontrollgruppe, daher ist die Wirkung nicht messbar."),
    # verdicts (one per stats.Outcome; the rules are stats.VERDICT_RULES)
    "verdict_no-holdout": ("no holdout members to compare with",
                           "niemand in de controlegroep om mee te vergelijken",
                           "niemand in der Kontrollgruppe zum Vergleich"),
    "verdict_raised": ("the campaign raised conversion (p {p})",
                       "de campagne verhoogde de conversie (p {p})",
                       "die Kampagne hat die Konversion erhöht (p {p})"),
    "verdict_lowered": ("the mailed group converted less than the holdout (p {p})",
                        "de gemailde groep converteerde minder dan de controlegroep (p {p})",
                        "die Angeschriebenen konvertierten seltener als die Kontrollgruppe "
                        "(p {p})"),
    "verdict_borderline": ("borderline (p {p}): keep measuring before drawing a conclusion",
                           "grensgeval (p {p}): blijf meten voor u conclusies trekt",
                           "Grenzfall (p {p}): weiter messen, bevor Sie folgern"),
    "verdict_unclear": ("no clear effect yet (p {p}); keep measuring or widen the audience",
                        "nog geen duidelijk effect (p {p}); blijf meten of vergroot de "
                        "doelgroep",
                        "noch keine klare Wirkung (p {p}); weiter messen oder Zielgruppe "
                        "vergrößern"),
    # A/B variants (each against the step's first listed variant; the same rules)
    "variants": ("A/B variants on the goal", "A/B-varianten op het doel",
                 "A/B-Varianten beim Ziel"),
    "variants_note": ("each variant against the step's first one, the reference: of the people "
                      "who received it, the share who reached the goal afterwards; interval, "
                      "test and verdict as for the holdout",
                      "elke variant tegenover de eerste van de stap, de referentie: van wie hem "
                      "ontving, het aandeel dat daarna het doel bereikte; interval, toets en "
                      "oordeel als bij de controlegroep",
                      "jede Variante gegenüber der ersten des Schritts, der Referenz: von "
                      "denen, die sie erhielten, der Anteil, der danach das Ziel erreichte; "
                      "Intervall, Test und Ergebnis wie bei der Kontrollgruppe"),
    "variant": ("variant", "variant", "Variante"),
    "variant_weight": ("planned share", "gepland aandeel", "geplanter Anteil"),
    "variant_reached": ("received: goal reached", "ontvangen: doel bereikt",
                        "erhalten: Ziel erreicht"),
    "difference": ("difference", "verschil", "Unterschied"),
    "variant_reference": ("the reference: the other variants are compared with it",
                          "de referentie: de andere varianten worden ermee vergeleken",
                          "die Referenz: die anderen Varianten werden mit ihr verglichen"),
    "variant_no-holdout": ("nothing to compare yet: {variant} and {reference} have not both "
                           "been sent",
                           "nog niets te vergelijken: {variant} en {reference} zijn nog niet "
                           "allebei verstuurd",
                           "noch nichts zu vergleichen: {variant} und {reference} wurden noch "
                           "nicht beide versendet"),
    "variant_raised": ("{variant} converted more than {reference} (p {p})",
                       "{variant} converteerde meer dan {reference} (p {p})",
                       "{variant} konvertierte häufiger als {reference} (p {p})"),
    "variant_lowered": ("{variant} converted less than {reference} (p {p})",
                        "{variant} converteerde minder dan {reference} (p {p})",
                        "{variant} konvertierte seltener als {reference} (p {p})"),
    "variant_borderline": ("borderline (p {p}): keep measuring before choosing a variant",
                           "grensgeval (p {p}): blijf meten voor u een variant kiest",
                           "Grenzfall (p {p}): weiter messen, bevor Sie eine Variante wählen"),
    "variant_unclear": ("no clear difference from {reference} yet (p {p})",
                        "nog geen duidelijk verschil met {reference} (p {p})",
                        "noch kein klarer Unterschied zu {reference} (p {p})"),
    # hypotheses
    "hypothesis": ("Hypothesis", "Hypothese", "Hypothese"),
    "hypothesis_expects": ("expects {uplift} on the goal", "verwacht {uplift} op het doel",
                           "erwartet {uplift} beim Ziel"),
    "kpi": ("business KPI: {kpi}", "bedrijfs-KPI: {kpi}", "Geschäfts-KPI: {kpi}"),
    "status_supported": ("supported", "bevestigd", "bestätigt"),
    "status_not-supported": ("not supported", "niet bevestigd", "nicht bestätigt"),
    "status_undecided": ("not yet decidable", "nog niet te beoordelen", "noch nicht entscheidbar"),
    "status_line": ("Hypothesis {status}: {reason}", "Hypothese {status}: {reason}",
                    "Hypothese {status}: {reason}"),
    "why_supported": ("the mailed group converted more, by {interval}",
                      "de gemailde groep converteerde meer, met {interval}",
                      "die Angeschriebenen konvertierten häufiger, um {interval}"),
    "why_smaller": ("the whole interval ({interval}) lies below the expected {expected}",
                    "het hele interval ({interval}) ligt onder de verwachte {expected}",
                    "das ganze Intervall ({interval}) liegt unter den erwarteten {expected}"),
    "why_undecided": ("the interval ({interval}) still holds both zero and {expected}",
                      "het interval ({interval}) omvat nog zowel nul als {expected}",
                      "das Intervall ({interval}) umfasst noch null und {expected}"),
    "why_running": ("{active} people are still in the sequence; so far the interval "
                    "({interval}) lies below the expected {expected}",
                    "{active} mensen zitten nog in de reeks; tot nu toe ligt het interval "
                    "({interval}) onder de verwachte {expected}",
                    "{active} Personen sind noch in der Reihe; bisher liegt das Intervall "
                    "({interval}) unter den erwarteten {expected}"),
    "why_no_data": ("no holdout members to compare with yet",
                    "nog niemand in de controlegroep om mee te vergelijken",
                    "noch niemand in der Kontrollgruppe zum Vergleich"),
    "detectable": ("With {mailed} mailed and {holdout} in the holdout this campaign can detect "
                   "{uplift} or more (80% power, baseline {baseline}).",
                   "Met {mailed} gemaild en {holdout} in de controlegroep kan deze campagne "
                   "{uplift} of meer aantonen (80% power, basis {baseline}).",
                   "Mit {mailed} Angeschriebenen und {holdout} in der Kontrollgruppe erkennt "
                   "diese Kampagne {uplift} oder mehr (80 % Power, Basis {baseline})."),
    "undetectable": ("With {mailed} mailed and {holdout} in the holdout no uplift can be "
                     "detected reliably.",
                     "Met {mailed} gemaild en {holdout} in de controlegroep is geen effect "
                     "betrouwbaar aan te tonen.",
                     "Mit {mailed} Angeschriebenen und {holdout} in der Kontrollgruppe ist kein "
                     "Effekt verlässlich erkennbar."),
    # the fit KPI
    "fit": ("Did the training fit?", "Paste het aanbod?", "Hat das Angebot gepasst?"),
    "fit_note": ("share answering that the training did not fit them, against the {target} bar",
                 "aandeel dat antwoordde dat het aanbod niet bij hen paste, tegen de grens van "
                 "{target}",
                 "Anteil, der angab, dass das Angebot nicht passte, gegenüber der Grenze von "
                 "{target}"),
    "answers": ("answers", "antwoorden", "Antworten"),
    "did_not_fit": ("did not fit", "paste niet", "passte nicht"),
    "fit_under": ("under the bar", "onder de grens", "unter der Grenze"),
    "fit_over": ("over the bar", "boven de grens", "über der Grenze"),
    "fit_none": ("no answers yet", "nog geen antwoorden", "noch keine Antworten"),
    "share_label": ("share", "aandeel", "Anteil"),
    "bar": ("against the bar", "tegen de grens", "gegenüber der Grenze"),
    "answers_given": ("answers given", "gegeven antwoorden", "gegebene Antworten"),
    # footnote
    "footnote": ("Mailed: enrolled people in the treatment group; holdout: a deterministic "
                 "control group that is never mailed. Uplift: mailed minus holdout conversion, in "
                 "percentage points. Interval: 95% Newcombe hybrid score interval (from the two "
                 "groups' Wilson intervals). p: two-sided Fisher exact test. A verdict needs "
                 "both: the whole interval on one side of zero and p under 0.05; when only one "
                 "holds the result is borderline. Detectable uplift: the smallest uplift found "
                 "with 80% power at the 5% level.",
                 "Gemaild: ingeschreven mensen in de behandelgroep; controlegroep: een vaste groep "
                 "die nooit mail krijgt. Effect: conversie gemaild min controlegroep, in "
                 "procentpunten. Interval: 95%-hybride score-interval van Newcombe (uit de "
                 "Wilson-intervallen van beide groepen). p: tweezijdige exacte toets van Fisher. "
                 "Een oordeel vraagt beide: het hele interval aan één kant van nul en p onder "
                 "0,05; geldt er maar één, dan is het een grensgeval. Aantoonbaar effect: het "
                 "kleinste effect dat met 80% power op 5%-niveau gevonden wordt.",
                 "Angeschrieben: aufgenommene Personen der Versuchsgruppe; Kontrollgruppe: eine "
                 "feste Gruppe, die nie Mails erhält. Effekt: Konversion der Angeschriebenen "
                 "minus Kontrollgruppe, in Prozentpunkten. Intervall: 95%-Hybrid-Score-Intervall "
                 "nach Newcombe (aus den Wilson-Intervallen beider Gruppen). p: zweiseitiger "
                 "exakter Test nach Fisher. Ein Ergebnis braucht beides: das ganze Intervall auf "
                 "einer Seite von null und p unter 0,05; gilt nur eines, ist es ein Grenzfall. "
                 "Erkennbarer Effekt: der kleinste Effekt, der mit 80 % Power auf 5 %-Niveau "
                 "gefunden wird."),
    "generated": ("Generated by ldmail.", "Gemaakt met ldmail.", "Erstellt mit ldmail."),
}

# The Babel locale of each language: British English writes 26 January 2027, 14:00, as the
# European teams that read these reports do.
LOCALES: Final = {"en": "en_GB", "nl": "nl_NL", "de": "de_DE"}
POINTS_UNIT: Final = {"en": "pp", "nl": "%-punt", "de": "Pp."}
RANGE_WORD: Final = {"en": "to", "nl": "tot", "de": "bis"}
DASH: Final = "\u2013"  # shown where there is no figure


class Words:
    """Phrases and number formats of one language (falls back to English)."""

    def __init__(self, language: str = "en", zone: tzinfo = UTC) -> None:
        self.language = language if language in LANGUAGES else "en"
        self.zone = zone
        self._index = LANGUAGES.index(self.language)
        self.locale = LOCALES[self.language]

    def t(self, key: str, **values: object) -> str:
        text = PHRASES[key][self._index]
        return text.format(**values) if values else text

    def phase(self, phase: str) -> str:
        return self.t(f"phase_{phase}") if f"phase_{phase}" in PHRASES else phase

    def exit_reason(self, reason: str) -> str:
        """The ledger's exit reason in this language ('no longer in the audience (persona x)'
        keeps its detail in brackets)."""
        head, bracket, detail = reason.partition(" (")
        if f"exit_{head}" not in PHRASES:
            return reason
        return self.t(f"exit_{head}") + (f" ({detail}" if bracket else "")

    def step(self, step: str, to: str) -> str:
        """A step as the report names it, with who gets it when that is not just the person."""
        if to == "manager":
            return self.t("to_manager", step=step)
        if to != "person":
            return self.t("cc_manager", step=step)
        return step

    def segment(self, name: str) -> str:
        if name == "all":
            return self.t("all")
        return self.t("no_persona") if name == "(none)" else name

    def count(self, value: float) -> str:
        return format_decimal(value, "#,##0", locale=self.locale)

    def number(self, value: float, digits: int = 1) -> str:
        return format_decimal(value, "#,##0." + "0" * digits, locale=self.locale)

    def pct(self, fraction: float | None, digits: int = 1) -> str:
        if fraction is None:
            return DASH
        pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
        return format_percent(fraction, pattern, locale=self.locale)

    def pp(self, fraction: float | None, digits: int = 1) -> str:
        """A difference of two fractions, signed, in percentage points."""
        if fraction is None:
            return DASH
        return f"{self._signed(fraction * 100, digits)} {POINTS_UNIT[self.language]}"

    def rate(self, converted: int, total: int) -> str:
        """'40/200 (20.0%)': how many of a group reached the goal."""
        if not total:
            return DASH
        return f"{self.count(converted)}/{self.count(total)} ({self.pct(converted / total)})"

    def interval(self, bounds: tuple[float, float] | None) -> str:
        if bounds is None:
            return DASH
        low, high = (self._signed(b * 100, 1) for b in bounds)
        return f"{low} {RANGE_WORD[self.language]} {high} {POINTS_UNIT[self.language]}"

    def p_value(self, p: float | None) -> str:
        """'= 0.034' or '< 0.001', the relation included, for 'p {p}'."""
        if p is None:
            return DASH
        if p < 0.001:
            return "< " + self.number(0.001, 3)
        return "= " + self.number(p, 3)

    def verdict(self, outcome: Outcome, p: float | None) -> str:
        return self.t(f"verdict_{outcome}", p=self.p_value(p))

    def date(self, day: date) -> str:
        return format_date(day, "d MMM", locale=self.locale)

    def moment(self, when: datetime) -> str:
        """A moment in the project's time zone, with the zone's name."""
        local = when.astimezone(self.zone)
        return (f"{format_date(local, 'long', locale=self.locale)}, "
                f"{format_time(local, 'short', locale=self.locale)} "
                f"({local.strftime('%Z') or 'UTC' + local.strftime('%z')})")

    def _signed(self, value: float, digits: int) -> str:
        rounded = round(value, digits)
        text = self.number(abs(rounded), digits)
        if rounded == 0:
            return "\u00b1" + text
        return ("+" if rounded > 0 else "\u2212") + text
