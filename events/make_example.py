"""Make the shipped example's HR export and goal events, the same bytes every time.

Writes three files of the example at the repository's top level:

- ``people.csv``: the HR export of Hearth & Home Kitchens as Excel saves it (UTF-8 with BOM,
  semicolons, CRLF, the Dutch headers, DD-MM-YYYY dates): the 200 rows that are already at its
  top, unchanged, then 800 generated colleagues with the same mix of departments, roles,
  locations, languages (NL, EN), start dates, certifications and time zones, with names that
  fit their background (Dutch, Flemish, English, Polish, Turkish, Moroccan, a few German).
  Its last column, each person's manager's address, is worked out from roles and locations
  (see ``_managers``) without drawing from the seeded random numbers, so the rest of the
  files is the same with or without it; only the managing director has none.
- ``events/lms-export.csv`` (the LMS's export: BOM, semicolons, CRLF, day-first timestamps in
  Amsterdam's local time without a zone, as the LMS shows them; ldmail reads them in the
  project's ``timezone``) and ``events/xapi-statements.json`` (the LRS's xAPI statements):
  what these people did in the learning platform in the eight weeks from Tue 1 Dec 2026 to
  Mon 25 Jan 2027, the
  registrations and completions that are the campaigns' goals. A few events are in both files,
  as when the LMS and the LRS both saw them.

The behaviour is simulated day by day against the campaigns' schedules (steps, send windows,
audiences and holdouts as in ``campaigns/*.yaml``; group membership from ldmail's own
``in_holdout``, so the mailed group and the holdout are the ones ldmail draws). Nobody
registers in answer to a mail they were never sent: a mail goes only to a mailed-group member
who is in the audience and has not reached that campaign's goal by then.

- On their own, 10-25% of people (by persona) register for a course in the eight weeks, about
  9% of sales and service staff for Sales Advisor, and some new colleagues for their First 90
  days path.
- Mails add to that: Sales Advisor's three mails bring about a quarter of its mailed group to
  register for it (about 32% in all, against about 9% of its holdout); the launch's four mails
  add about 10 points of registrations, the announcement a few; the onboarding mails get
  newcomers to start their First 90 days path; the learning-habit mails get a few more people
  to finish a course.
- The certification campaign (compelled learners; its last step goes to their managers) is
  not simulated: nobody answers its reminders here, so its figures show what a campaign
  without effect would send. Simulating it would change every later draw.
- Registrations come in the days after each mail, mostly on working days, fewer over
  Christmas; about half the short courses are completed within a few weeks, Sales Advisor
  (about two months) and the 90-day path rarely within the eight weeks.
- Of the seeds 1 to 59, this one's draw lands closest to those expected figures, and none of
  its persona slices shows a chance effect against the mails. With a 10% holdout of about a
  hundred people, another draw can show the launch's or the announcement's effect quite a bit
  larger or smaller.

No one in these files is a real person; addresses are on ``hearthandhome.example``.

Re-run it after changing the campaigns' audiences, steps or holdouts (it writes the files
next to itself, from whatever folder it is started in)::

    python events/make_example.py

It uses the standard library and ``ldmail.project.schedule.in_holdout`` only. No test and no part of
the ldmail package imports it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import re
import sys
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ldmail.project.schedule import in_holdout  # noqa: E402  (after the path is set)

SEED = 37  # a typical draw: see the docstring
KEPT = 200  # the original example's rows, kept at the top of people.csv as they are
NEW = 800
DOMAIN = "hearthandhome.example"
HEADER = ("Personeelsnummer;Voornaam;Achternaam;E-mail;Taal;Afdeling;Functie;Vestiging;"
          "Startdatum;Verplichte certificering;Tijdzone;E-mail leidinggevende")
COLUMNS = 11  # the cells before the manager's address, which is worked out (see _managers)

FIRST_DAY = date(2026, 12, 1)  # the campaigns start; the README's demo sends each day at 10:00
LAST_DAY = date(2027, 1, 25)  # the eighth week's last day; the report is read on 26 Jan
LMS_ZONE = ZoneInfo("Europe/Amsterdam")  # the project's timezone, in ldmail.yaml
SEND_AT = time(9, 0, tzinfo=UTC)  # 10:00 in Amsterdam in winter: when the demo's sends run
FIRST_EVENT = datetime(2026, 12, 2, tzinfo=UTC)
END = datetime.combine(LAST_DAY, time(23, 0), tzinfo=UTC)
CHRISTMAS = (date(2026, 12, 24), date(2027, 1, 3))  # the showrooms' quiet days and holidays

# -- names ------------------------------------------------------------------------------------
# (male first names, female first names, surnames); Polish surnames ending in -ski/-cki take
# -ska/-cka for women.
NAMES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "dutch": (
        "Jan Pieter Daan Bram Thijs Ruben Jeroen Martijn Sander Niels Wouter Joost Stijn Koen "
        "Bas Tim Rick Mark Erik Dennis Jasper Maarten Gert-Jan Sjoerd Hidde Teun Floris Wout "
        "Jeroen Lars Vincent Roel Gijs Menno".split(),
        "Linda Lotte Eline Sophie Anouk Iris Femke Sanne Marieke Esther Ilse Floor Renée Fleur "
        "Emma Julia Lisa Anne Mirjam Karin Ingrid Petra Saskia Yvonne Noor Tessa Britt Zoë "
        "Maud Marloes".split(),
        ["de Vries", "Jansen", "de Jong", "Bakker", "Visser", "Smit", "Meijer", "de Boer",
         "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker",
         "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer", "van der Linden",
         "Kok", "de Haan", "van den Berg", "van Dijk", "Schouten", "Post", "Kuipers",
         "Veenstra", "Hoekstra", "Verhoeven", "Prins", "Huisman", "Koster", "van Beek",
         "Bosman", "Kramer", "van Wijk", "Timmermans", "Groen"]),
    "flemish": (
        "Arne Koen Bart Stijn Jeroen Maarten Wout Sander Wim Dries Pieter-Jan Thibault Kobe "
        "Jens Ruben Tom Bert Joris Lennert Senne".split(),
        "Tine Griet Fien Lien Ellen Annelies Joke Céline Ine Lotte Jolien Lore Nele Elke Sofie "
        "Laura Hanne Eva Liesbeth Sien".split(),
        ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
         "Wouters", "De Smet", "Dubois", "Lambrechts", "Vermeulen", "Van Damme", "De Clercq",
         "Vandenbroucke", "Coppens", "Hermans", "Michiels", "Aerts", "Van den Broeck",
         "Verbeke", "De Backer", "Claeys", "Martens", "Pauwels", "Smets", "Vercammen",
         "Van Hoof", "De Wilde"]),
    "english": (
        "George Harry Oliver James Daniel Jack Thomas William Samuel Joshua Noël Matthew "
        "Benjamin Alfie Ethan".split(),
        "Sophie Emma Hannah Charlotte Amelia Chloë Olivia Grace Lucy Emily Jessica Ruth "
        "Megan Isla Holly".split(),
        ["Hughes", "Wright", "Robinson", "Smith", "Brown", "Clarke", "Taylor", "Walker",
         "Edwards", "O'Brien", "Wilson", "Evans", "Thompson", "Johnson", "Roberts", "Wood",
         "Hall", "Green", "Lewis", "Harris", "Murphy", "Kelly", "Turner", "Cooper"]),
    "polish": (
        "Marek Piotr Tomasz Łukasz Paweł Krzysztof Michał Jakub Adam Kamil Grzegorz "
        "Wojciech".split(),
        "Joanna Małgorzata Agnieszka Katarzyna Magdalena Anna Ewa Monika Aleksandra Karolina "
        "Dorota Beata".split(),
        ["Kowalski", "Nowak", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński",
         "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Mazur", "Krawczyk", "Piotrowski",
         "Grabowski", "Pawlak", "Michalski", "Król"]),
    "turkish": (
        "Gökhan Emre Kerem Serkan Can Burak Mert Onur Murat Hakan Okan Tolga".split(),
        "Elif Fatma Özlem Ayşe Zeynep Çağla Esra Merve Derya Selin Büşra Gamze".split(),
        ["Demir", "Arslan", "Öztürk", "Aydın", "Koç", "Çelik", "Şahin", "Kaya", "Doğan",
         "Yılmaz", "Yıldız", "Kılıç", "Korkmaz", "Polat", "Güneş", "Aksoy", "Kurt"]),
    "moroccan": (
        "Mohamed Ayoub Hamza Yassine Nordin Soufiane Karim Bilal Mehdi Ilias Anas Younes "
        "Reda".split(),
        "Fatima Samira Khadija Naima Latifa Imane Nadia Salma Hanane Yasmina Sanae "
        "Loubna".split(),
        ["Ait Taleb", "El Idrissi", "El Amrani", "El Khattabi", "Haddouchi", "Ouali",
         "Benali", "Bouali", "Zaoui", "Boukhari", "El Ouardi", "Tahiri", "Azzouzi", "Bakkali",
         "Chaouch", "El Hadji"]),
    "german": (
        "Lukas Jonas Felix Tobias Stefan Andreas Matthias Jürgen Florian Sebastian".split(),
        "Lena Katharina Julia Sabine Miriam Johanna Jana Franziska Ute Svenja".split(),
        ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Schulz", "Hoffmann", "Krüger", "Schäfer", "Koch", "Richter", "Braun",
         "Zimmermann", "Hartmann", "Lange"]),
}
# Background, its weight in the Netherlands and in Belgium, and the chance of a Dutch-language
# (NL) record rather than English (EN).
BACKGROUNDS = {  # name: (weight NL location, weight BE location, P(language NL))
    "dutch": (44, 3, 0.86), "flemish": (3, 62, 0.82), "english": (12, 9, 0.08),
    "polish": (12, 7, 0.25), "turkish": (11, 8, 0.8), "moroccan": (11, 9, 0.82),
    "german": (4, 2, 0.35),
}
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ı": "i", "ß": "ss", "'": "", " ": ""})
_GERMAN_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe",
                              "Ü": "Ue"})

# -- the company ------------------------------------------------------------------------------
DEPARTMENTS = {  # department: (weight, [(role, weight)])
    "Sales": (370, [("Verkoopadviseur", 28), ("Keukenontwerper", 19),
                    ("Junior verkoopadviseur", 13), ("Showroommanager", 8),
                    ("Regiomanager verkoop", 5)]),
    "Installation": (155, [("Keukenmonteur", 16), ("Allround installateur", 12),
                           ("Coördinator montage", 2), ("Werkvoorbereider", 2)]),
    "Warehouse": (110, [("Chauffeur-bezorger", 10), ("Magazijnmedewerker", 10),
                        ("Teamleider logistiek", 1), ("Supplier liaison", 1)]),
    "Customer Service": (110, [("Medewerker klantenservice", 17), ("Planner leveringen", 5)]),
    "Finance": (75, [("Financieel administratief medewerker", 11), ("Controller", 3),
                     ("Supplier liaison", 1)]),
    "IT": (65, [("Servicedeskmedewerker", 7), ("Applicatiebeheerder", 4), ("Developer", 3)]),
    "Marketing": (60, [("Marketingcoördinator", 5), ("Online marketeer", 3),
                       ("Contentmaker", 2), ("Merchandiser", 2)]),
    "HR": (45, [("HR-adviseur", 8), ("L&D-adviseur", 1), ("Recruiter", 2)]),
}
BOARD = ["Commercieel directeur", "Operationeel directeur", "HR-directeur"]  # 3 of the 800
HEAD_OFFICE, DISTRIBUTION = "Hoofdkantoor", "Distributiecentrum Waalwijk"
SHOWROOMS_NL = {"Amsterdam": 4, "Rotterdam": 5, "Den Haag": 5, "Utrecht": 3, "Eindhoven": 6,
                "Leiden": 6, "Gouda": 4, "Amersfoort": 5, "Almere": 3, "Arnhem": 3,
                "Nijmegen": 3, "Hilversum": 3, "Haarlem": 3, "Breda": 3, "Tilburg": 2,
                "Maastricht": 3, "Venlo": 4, "Roermond": 2, "Emmen": 5, "Groningen": 3,
                "Zwolle": 2, "Deventer": 2, "Enschede": 3, "Alkmaar": 3, "Hoofddorp": 3,
                "Dordrecht": 2, "'s-Hertogenbosch": 2}
SHOWROOMS_BE = {"Aalst": 5, "Leuven": 5, "Sint-Niklaas": 4, "Brugge": 4, "Gent": 5,
                "Hasselt": 4, "Kortrijk": 3, "Antwerpen": 4, "Genk": 2, "Mechelen": 2}
SHOWROOMS = {**SHOWROOMS_NL, **SHOWROOMS_BE}
CERTIFICATIONS = {  # department: (share with one, [(certification, weight)])
    "Installation": (0.32, [("Electrical safety NEN 1010", 4), ("Food-safe installation", 1)]),
    "Finance": (0.3, [("ERP go-live 2027", 4), ("GDPR basics", 1)]),
    "IT": (0.25, [("ERP go-live 2027", 1)]),
    "Customer Service": (0.18, [("GDPR basics", 1)]),
    "HR": (0.12, [("GDPR basics", 1)]),
    "Warehouse": (0.06, [("ERP go-live 2027", 1)]),
}
MANAGERS = ("Showroommanager", "Regiomanager verkoop", "Teamleider logistiek",
            "Coördinator montage", "Controller")

# -- the learning platform --------------------------------------------------------------------
COURSES = {  # object id: (display name, P(completed), median days to complete)
    "course:kitchen-design-basics": ("Kitchen design basics", 0.5, 6),
    "course:customer-conversations": ("Customer conversations", 0.55, 4),
    "course:upselling-appliances": ("Upselling appliances", 0.5, 4),
    "course:reading-kitchen-plans": ("Reading kitchen plans", 0.45, 7),
    "course:complaint-handling": ("Complaint handling", 0.55, 4),
    "course:installation-safety": ("Installation safety", 0.65, 5),
    "course:forklift-refresher": ("Forklift refresher", 0.6, 3),
    "course:excel-essentials": ("Excel essentials", 0.5, 5),
    "course:erp-basics": ("ERP basics", 0.55, 8),
    "course:gdpr-basics": ("GDPR basics", 0.65, 3),
    "course:cyber-hygiene": ("Cyber hygiene", 0.6, 3),
    "course:copywriting": ("Copywriting", 0.45, 8),
    "course:interviewing-well": ("Interviewing well", 0.5, 6),
    "course:leading-a-team": ("Leading a team", 0.4, 12),
    "course:feedback-that-lands": ("Feedback that lands", 0.5, 5),
    "course:time-management": ("Time management", 0.5, 4),
    "course:sales-advisor": ("Sales Advisor", 0.6, 45),  # six weekly modules, one afternoon
    "path:first-90-days": ("First 90 days", 0.55, 60),
}
SALES_ADVISOR, FIRST_90_DAYS = "course:sales-advisor", "path:first-90-days"
FOR_DEPARTMENT = {
    "Sales": {"kitchen-design-basics": 3, "customer-conversations": 3,
              "upselling-appliances": 2, "reading-kitchen-plans": 1},
    "Customer Service": {"customer-conversations": 3, "complaint-handling": 3},
    "Installation": {"installation-safety": 3, "reading-kitchen-plans": 2},
    "Warehouse": {"forklift-refresher": 3, "erp-basics": 1},
    "Finance": {"excel-essentials": 3, "erp-basics": 2},
    "IT": {"cyber-hygiene": 3, "erp-basics": 1},
    "Marketing": {"copywriting": 3, "excel-essentials": 1},
    "HR": {"interviewing-well": 3, "feedback-that-lands": 1},
    "Board": {"leading-a-team": 2},
}
FOR_EVERYONE = {"time-management": 2, "feedback-that-lands": 2, "excel-essentials": 1}
FOR_CERTIFICATION = {"ERP go-live 2027": "course:erp-basics",
                     "Electrical safety NEN 1010": "course:installation-safety",
                     "Food-safe installation": "course:installation-safety",
                     "GDPR basics": "course:gdpr-basics"}
ON_THEIR_OWN = {"compelled": 0.25, "newcomer": 0.15, "skill-builder": 0.1,
                "broad-developer": 0.12}  # P(registering for a course unprompted)
SALES_ADVISOR_ON_THEIR_OWN = 0.09  # of sales and service staff: word of mouth, their manager
RESPONSE = {  # per step: P(the mail brings a mailed-group member to act)
    "platform-announcement": [0.02, 0.02, 0.025],
    "platform-launch": [0.07, 0.05, 0.04, 0.04],
    "sales-advisor": [0.12, 0.09, 0.07],
    "newcomer-onboarding": [0.5, 0.15, 0.15],
    "learning-habit": [0.06, 0.06, 0.06, 0.06],
}


@dataclass
class Person:
    number: str
    first: str
    last: str
    email: str
    language: str
    department: str
    role: str
    location: str
    start: date
    certification: str
    timezone: str
    manager: str = ""  # the manager's address (see _managers)

    def row(self) -> str:
        return ";".join((self.number, self.first, self.last, self.email, self.language,
                         self.department, self.role, self.location,
                         self.start.strftime("%d-%m-%Y"), self.certification, self.timezone))

    def persona(self, day: date) -> str:
        """As audiences.yaml matches them, first match wins."""
        if self.certification:
            return "compelled"
        if (day - self.start).days < 120:
            return "newcomer"
        if self.department in ("Sales", "Customer Service"):
            return "skill-builder"
        return "broad-developer"


@dataclass(frozen=True)
class Schedule:
    """What campaigns/<id>.yaml says about when its steps go out."""

    holdout: float
    afters: list[int]
    weekdays: frozenset[int]
    anchored: bool


def _schedule(campaign_id: str) -> Schedule:
    text = (ROOT / "campaigns" / f"{campaign_id}.yaml").read_text(encoding="utf-8")
    holdout = re.search(r"^holdout:\s*(\d+)%", text, re.M)
    days = re.search(r"days:\s*(mon-fri|\[[^\]]*\])", text)
    assert holdout and days, campaign_id
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    weekdays = frozenset(range(5)) if days[1] == "mon-fri" else frozenset(
        names.index(d.strip()) for d in days[1].strip("[]").split(","))
    return Schedule(float(holdout[1]) / 100,
                    [int(d) for d in re.findall(r"after:\s*(\d+)d", text)], weekdays,
                    re.search(r"^anchor:\s*start_date", text, re.M) is not None)


CAMPAIGNS = ("platform-announcement", "platform-launch", "sales-advisor",
             "newcomer-onboarding", "learning-habit")
SCHEDULES = {campaign_id: _schedule(campaign_id) for campaign_id in CAMPAIGNS}


def in_audience(campaign_id: str, person: Person, day: date) -> bool:
    """The campaigns' `audience:` (personas and `where`), as in campaigns/*.yaml."""
    tenure, persona = (day - person.start).days, person.persona(day)
    if campaign_id == "sales-advisor":
        return persona in ("skill-builder", "newcomer") and tenure >= 30 and \
            person.department in ("Sales", "Customer Service")
    if campaign_id == "newcomer-onboarding":
        return persona == "newcomer" and tenure < 30
    return person.department != "Board" and tenure >= 30


# -- people -----------------------------------------------------------------------------------

def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, [weights[n] for n in names])[0]


def _address(first: str, last: str, background: str, taken: set[str]) -> str:
    def fold(text: str) -> str:
        if background == "german":
            text = text.translate(_GERMAN_FOLD)
        text = unicodedata.normalize("NFKD", text.translate(_FOLD))
        return "".join(c for c in text if not unicodedata.combining(c)).lower()

    local = f"{fold(first)}.{fold(last)}"
    candidate, number = local, 1
    while f"{candidate}@{DOMAIN}" in taken:
        number += 1
        candidate = f"{local}{number}"
    taken.add(f"{candidate}@{DOMAIN}")
    return f"{candidate}@{DOMAIN}"


def _start_date(rng: random.Random) -> date:
    """Long-serving staff since 2008, a wave of hires this autumn and some who start soon."""
    roll = rng.random()
    if roll < 0.84:
        day = date(2008, 1, 1) + timedelta(days=rng.randrange((date(2026, 1, 1)
                                                                - date(2008, 1, 1)).days))
    elif roll < 0.92:
        day = date(2026, 1, 1) + timedelta(days=int(304 * rng.random() ** 0.6))  # to October
    elif roll < 0.95:
        day = date(2026, 11, 1) + timedelta(days=rng.randrange(30))
    else:
        day = date(2026, 12, 1) + timedelta(days=rng.randrange(62))  # December and January
    if rng.random() < 0.45:  # most people start on a Monday
        return day + timedelta(days=(7 - day.weekday()) % 7)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _location(rng: random.Random, department: str, role: str) -> str:
    if department == "Sales":
        return HEAD_OFFICE if role == "Regiomanager verkoop" or rng.random() < 0.05 \
            else _pick(rng, SHOWROOMS)
    if department == "Installation":
        return _pick(rng, SHOWROOMS)
    if department == "Warehouse":
        return DISTRIBUTION if rng.random() < 0.55 or role == "Supplier liaison" \
            else _pick(rng, SHOWROOMS)
    if department == "Customer Service":
        return HEAD_OFFICE if rng.random() < 0.72 else _pick(rng, SHOWROOMS)
    return HEAD_OFFICE


def _person(rng: random.Random, department: str, role: str, numbers: set[str],
            taken: set[str]) -> Person:
    location = _location(rng, department, role)
    belgian = location in SHOWROOMS_BE
    background = _pick(rng, {b: w[1 if belgian else 0] for b, w in BACKGROUNDS.items()})
    men, women, surnames = NAMES[background]
    male = rng.random() < (0.8 if department in ("Installation", "Warehouse") else 0.48)
    first = rng.choice(men if male else women)
    last = rng.choice(surnames)
    if background == "polish" and not male and last.endswith(("ski", "cki")):
        last = last[:-1] + "a"
    language = "NL" if rng.random() < BACKGROUNDS[background][2] else "EN"
    certification = ""
    share, kinds = CERTIFICATIONS.get(department, (0.0, []))
    if rng.random() < share:
        certification = _pick(rng, dict(kinds))
    timezone = ""
    if belgian and rng.random() < 0.42:
        timezone = "Europe/Brussels"
    elif role == "Supplier liaison" and background == "english":
        timezone = "Europe/London"  # works from the UK, with the British suppliers
    number = str(rng.randrange(10000, 100000))
    while number in numbers:
        number = str(rng.randrange(10000, 100000))
    numbers.add(number)
    return Person(number, first, last, _address(first, last, background, taken), language,
                  department, role, location, _start_date(rng), certification, timezone)


def _read(line: str) -> Person:
    cells = line.split(";")
    number, first, last, email, language, department, role, location = cells[:8]
    return Person(number, first, last, email, language, department, role, location,
                  datetime.strptime(cells[8], "%d-%m-%Y").date(), cells[9], cells[10])


def make_people(rng: random.Random) -> tuple[list[str], list[Person]]:
    """The kept rows (as text, without the manager's address) and every person, kept ones
    first."""
    text = (ROOT / "people.csv").read_bytes().decode("utf-8-sig")  # CRLF kept
    lines = text.split("\r\n")
    assert lines[0].split(";")[:COLUMNS] == HEADER.split(";")[:COLUMNS], \
        "people.csv does not start with the expected header"
    kept = [";".join(line.split(";")[:COLUMNS]) for line in lines[1:KEPT + 1]]
    people = [_read(line) for line in kept]
    numbers = {p.number for p in people}
    taken = {p.email for p in people}
    roles = [(department, role, weight * share / sum(w for _, w in roles_of))
             for department, (share, roles_of) in DEPARTMENTS.items()
             for role, weight in roles_of]
    for index in range(NEW):
        if index in (123, 456, 789):
            department, role = "Board", BOARD[(index - 123) // 333]
        else:
            department, role, _ = rng.choices(roles, [w for *_, w in roles])[0]
        people.append(_person(rng, department, role, numbers, taken))
    return kept, people


def _one_of(candidates: list[Person], key: str) -> Person | None:
    """One of `candidates`, the same one for the same key (a hash, so the draw above is left
    as it was)."""
    if not candidates:
        return None
    return candidates[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(candidates)]


def _managers(people: list[Person]) -> None:
    """Everyone's manager, from roles and locations: showroom staff report to their
    showroom's manager (else a regional sales manager), showroom and regional managers up
    the sales line, fitters to a montage coordinator and warehouse staff to a logistics team
    leader (by location), finance staff to a controller, departments without team leads to
    their director, directors to the managing director, who has none."""
    by_role: dict[str, list[Person]] = {}
    for person in people:
        by_role.setdefault(person.role, []).append(person)

    def role(name: str, key: str) -> Person | None:
        return _one_of(by_role.get(name, []), key)

    showroom_managers = {p.location: p for p in reversed(by_role.get("Showroommanager", []))}
    directors = {"Sales": "Commercieel directeur", "Customer Service": "Commercieel directeur",
                 "Marketing": "Commercieel directeur", "Installation": "Operationeel directeur",
                 "Warehouse": "Operationeel directeur", "IT": "Operationeel directeur",
                 "Finance": "Financieel directeur", "HR": "HR-directeur"}
    for person in people:
        boss: Person | None
        if person.department == "Board":
            boss = None if person.role == "Algemeen directeur" else \
                role("Algemeen directeur", person.number)
        elif person.role == "Showroommanager":
            boss = role("Regiomanager verkoop", person.location)
        elif person.department == "Sales" and person.role != "Regiomanager verkoop":
            boss = showroom_managers.get(person.location) or \
                role("Regiomanager verkoop", person.location)
        elif person.department == "Installation" and person.role != "Coördinator montage":
            boss = role("Coördinator montage", person.location)
        elif person.department == "Warehouse" and person.role != "Teamleider logistiek":
            boss = role("Teamleider logistiek", person.location)
        elif person.department == "Finance" and person.role != "Controller":
            boss = role("Controller", person.number)
        else:
            boss = role(directors[person.department], person.number)
        person.manager = boss.email if boss is not None and boss is not person else ""


# -- behaviour --------------------------------------------------------------------------------

@dataclass
class Learner:
    """One person's time line: what they registered for and completed, and when."""

    person: Person
    registered: dict[str, datetime] = field(default_factory=dict)
    completed: dict[str, datetime] = field(default_factory=dict)
    mails: list[tuple[datetime, str, int]] = field(default_factory=list)

    def reached(self, campaign_id: str, moment: datetime) -> bool:
        """Whether the campaign's `goal:` was reached before `moment`."""
        if campaign_id in ("platform-announcement", "platform-launch"):
            return any(at < moment for at in self.registered.values())
        if campaign_id == "sales-advisor":
            return self.registered.get(SALES_ADVISOR, END) < moment
        if campaign_id == "newcomer-onboarding":
            return self.completed.get(FIRST_90_DAYS, END) < moment
        return any(at < moment for at in self.completed.values())


def _at(day: date, clock: time = SEND_AT) -> datetime:
    return datetime.combine(day, clock.replace(tzinfo=None), tzinfo=UTC)


def _working_moment(rng: random.Random, day: date) -> datetime:
    """A time someone is at work (07:00-17:00 UTC), now and then in the evening."""
    hour = rng.uniform(17, 21) if rng.random() < 0.1 else rng.triangular(7, 17, 10)
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(seconds=int(hour * 3600))


def _settle(rng: random.Random, moment: datetime) -> datetime:
    """Most people act on working days, fewer in the Christmas weeks."""
    day = moment.date()
    if CHRISTMAS[0] <= day <= CHRISTMAS[1] and rng.random() < 0.55:
        day = CHRISTMAS[1] + timedelta(days=1 + rng.randrange(3))
        return _working_moment(rng, day)
    if day.weekday() >= 5 and rng.random() < 0.7:
        day += timedelta(days=7 - day.weekday())
        return _working_moment(rng, day)
    return moment


def _after_mail(rng: random.Random, sent: datetime, *, same_day: float = 0.4) -> datetime:
    """When someone acts on a mail: often the same day, otherwise in the days after."""
    if rng.random() < same_day:
        return sent + timedelta(minutes=rng.randrange(5, 7 * 60))
    day = sent.date() + timedelta(days=1 + int(rng.expovariate(1 / 2.5)))
    return _settle(rng, _working_moment(rng, day))


def _later(rng: random.Random, moment: datetime, days: float) -> datetime:
    """A working moment about `days` after `moment`, and after it."""
    later = _working_moment(rng, (moment + timedelta(days=days)).date())
    if later <= moment:
        later = moment + timedelta(minutes=rng.randrange(15, 240))
    return _settle(rng, later)


def _some_day(rng: random.Random, first: date | None = None) -> datetime:
    first = first or FIRST_EVENT.date()
    span = (LAST_DAY - first).days + 1
    return _settle(rng, _working_moment(rng, first + timedelta(days=rng.randrange(span))))


def _mail_days(schedule: Schedule, enrolled: date, anchor: date | None) -> list[date]:
    """The days the demo's daily 10:00 send delivers each step (day 0 + after, no sooner than
    a day after the step before, on a day the send window is open)."""
    days: list[date] = []
    for after in schedule.afters:
        day = max((anchor or enrolled) + timedelta(days=after), enrolled)
        if days:
            day = max(day, days[-1] + timedelta(days=1))
        while day.weekday() not in schedule.weekdays:
            day += timedelta(days=1)
        if day > LAST_DAY:
            break
        days.append(day)
    return days


def _course(rng: random.Random, person: Person, day: date) -> str:
    if person.certification and rng.random() < 0.7:
        return FOR_CERTIFICATION[person.certification]
    weights = {**FOR_EVERYONE, **FOR_DEPARTMENT[person.department]}
    if person.role in MANAGERS:
        weights["leading-a-team"] = 3
    if person.persona(day) == "newcomer":
        weights = {k: v for k, v in weights.items() if k != "leading-a-team"}
    return "course:" + _pick(rng, weights)


def _sales_advisor_pull(person: Person, day: date) -> float:
    """Advisers and designers answer the Sales Advisor mails more than planners do."""
    factor = {"Verkoopadviseur": 1.2, "Junior verkoopadviseur": 1.25, "Keukenontwerper": 1.0,
              "Showroommanager": 0.7, "Regiomanager verkoop": 0.5}.get(person.role, 0.8)
    return factor * (1.1 if person.persona(day) == "newcomer" else 1.0)


def simulate(rng: random.Random, people: list[Person]) -> tuple[list[Learner], Counter[str]]:
    learners = [Learner(p) for p in people]
    queue: list[tuple[datetime, int, str, int, str, int]] = []
    order = 0

    def push(moment: datetime, kind: str, who: int, what: str = "", step: int = 0) -> None:
        nonlocal order
        if FIRST_EVENT <= moment <= END or kind == "mail":
            heapq.heappush(queue, (moment, order, kind, who, what, step))
            order += 1

    enrolled: Counter[str] = Counter()
    for who, learner in enumerate(learners):
        person = learner.person
        persona = person.persona(FIRST_DAY)
        if rng.random() < ON_THEIR_OWN[persona]:
            push(_some_day(rng), "register", who, _course(rng, person, FIRST_DAY))
            if rng.random() < 0.3:
                push(_some_day(rng), "register", who, _course(rng, person, FIRST_DAY))
        if person.department in ("Sales", "Customer Service") and \
                rng.random() < SALES_ADVISOR_ON_THEIR_OWN:
            push(_some_day(rng), "register", who, SALES_ADVISOR)
        if persona == "newcomer" and FIRST_DAY - timedelta(days=29) <= person.start \
                <= LAST_DAY and rng.random() < 0.3:  # HR's welcome pack points to the path as well
            push(_some_day(rng, max(person.start, FIRST_EVENT.date())), "register", who,
                 FIRST_90_DAYS)
        for campaign_id, schedule in SCHEDULES.items():
            day = next((FIRST_DAY + timedelta(days=d) for d in range((LAST_DAY - FIRST_DAY).days
                        + 1) if in_audience(campaign_id, person, FIRST_DAY + timedelta(days=d))),
                       None)
            if day is None:
                continue
            holdout = in_holdout(campaign_id, person.email, schedule.holdout)
            enrolled[f"{campaign_id} {'holdout' if holdout else 'mailed'}"] += 1
            if holdout:
                continue
            for step, sent in enumerate(_mail_days(schedule, day,
                                                   person.start if schedule.anchored else None)):
                push(_at(sent), "mail", who, campaign_id, step)

    while queue:
        moment, _, kind, who, what, step = heapq.heappop(queue)
        learner = learners[who]
        person = learner.person
        if kind == "register":
            if what in learner.registered:
                continue
            learner.registered[what] = moment
            name, chance, median = COURSES[what]
            if what == FIRST_90_DAYS and any(c == "newcomer-onboarding" for _, c, _ in
                                             learner.mails):
                chance += 0.15  # the check-in with their manager keeps them going
            if rng.random() < chance:
                days = median * rng.lognormvariate(0, 0.45 if median > 30 else 0.8)
                if what == FIRST_90_DAYS:
                    days = max(days, 42)  # its modules open week by week
                push(_later(rng, moment, days), "complete", who, what)
        elif kind == "complete":
            learner.completed.setdefault(what, moment)
        else:  # a mail goes out, unless the person reached the goal or left the audience
            if learner.reached(what, moment) or not in_audience(what, person, moment.date()):
                continue
            learner.mails.append((moment, what, step))
            pull = RESPONSE[what][step]
            if what == "sales-advisor":
                pull *= _sales_advisor_pull(person, moment.date())
            if rng.random() >= pull:
                continue
            if what == "sales-advisor":
                push(_after_mail(rng, moment), "register", who, SALES_ADVISOR)
            elif what == "newcomer-onboarding":
                push(_after_mail(rng, moment, same_day=0.6), "register", who,
                     FIRST_90_DAYS if step == 0 else _course(rng, person, moment.date()))
            elif what == "learning-habit":
                open_ones = sorted(c for c in learner.registered
                                   if c not in learner.completed and c != SALES_ADVISOR)
                if open_ones:  # finish what they started
                    push(_after_mail(rng, moment), "complete", who, rng.choice(open_ones))
                elif rng.random() < 0.25:  # or take a short one in the learning moment
                    course = _course(rng, person, moment.date())
                    start = _after_mail(rng, moment)
                    push(start, "register", who, course)
                    push(_later(rng, start, rng.uniform(0, 4)), "complete", who, course)
            else:
                push(_after_mail(rng, moment, same_day=0.0 if what == "platform-announcement"
                                 else 0.4), "register", who, _course(rng, person,
                                                                     moment.date()))
    return learners, enrolled


# -- files ------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Event:
    at: datetime
    email: str
    verb: str
    object: str
    name: str


def _statement(rng: random.Random, event: Event) -> dict[str, object]:
    statement: dict[str, object] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "actor": {"objectType": "Agent", "name": event.name, "mbox": f"mailto:{event.email}"},
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{event.verb}",
                 "display": {"en-US": event.verb}},
        "object": {"objectType": "Activity", "id": event.object,
                   "definition": {"name": {"en-US": COURSES[event.object][0]},
                                  "type": "http://adlnet.gov/expapi/activities/course"}},
        "timestamp": event.at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    if event.verb == "completed":
        statement["result"] = {"completion": True}
    return statement


def write_files(rng: random.Random, kept: list[str], people: list[Person],
                learners: list[Learner]) -> tuple[int, int, int]:
    _managers(people)
    rows = [f"{text};{person.manager}" for text, person in
            zip(kept + [p.row() for p in people[len(kept):]], people, strict=True)]
    (ROOT / "people.csv").write_bytes(
        ("\ufeff" + "\r\n".join([HEADER, *rows]) + "\r\n").encode("utf-8"))
    lms: list[Event] = []
    lrs: list[Event] = []
    for learner in learners:
        p = learner.person
        for course in sorted(learner.registered):
            # The LMS hosts most courses; the rest report to the LRS. Now and then both saw it.
            source = lms if rng.random() < 0.55 else lrs
            both = rng.random() < 0.04
            for verb, moments in (("registered", learner.registered),
                                  ("completed", learner.completed)):
                if course in moments:
                    event = Event(moments[course].replace(microsecond=0), p.email, verb, course,
                                  f"{p.first} {p.last}")
                    source.append(event)
                    if both:
                        (lrs if source is lms else lms).append(event)
    lms.sort()
    lrs.sort()
    lines = ["E-mail;Event;Course;Timestamp"] + [
        f"{e.email};{e.verb};{e.object};{e.at.astimezone(LMS_ZONE).strftime('%d-%m-%Y %H:%M:%S')}"
        for e in lms]
    (ROOT / "events" / "lms-export.csv").write_bytes(
        ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    (ROOT / "events" / "xapi-statements.json").write_text(
        json.dumps([_statement(rng, e) for e in lrs], indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8")
    return len(rows), len(lms), len(lrs)


def main() -> None:
    rng = random.Random(SEED)
    kept, people = make_people(rng)
    learners, enrolled = simulate(rng, people)
    rows, lms, lrs = write_files(rng, kept, people, learners)
    print(f"people.csv: {rows} people; events/lms-export.csv: {lms} events; "
          f"events/xapi-statements.json: {lrs} statements")
    personas = Counter(p.persona(FIRST_DAY) for p in people)
    print("personas on 1 Dec 2026: " + ", ".join(f"{k} {v}" for k, v in personas.items()))
    for line in sorted(enrolled.items()):
        print(f"  enrolled by 25 Jan: {line[0]} {line[1]}")


if __name__ == "__main__":
    main()
