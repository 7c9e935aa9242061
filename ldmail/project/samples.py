"""Stand-in people: plausible names per language, and every mapped attribute filled in.

Validation renders each persona in each language for one of them where no real person of
the export falls into it; `--sample-people` uses only them, so that CI needs no HR export in
git and a preview gallery shows no real employee's name or address.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import date, timedelta
from typing import Any

from .config import Project

# A few first and last names as each language's readers would expect to see them.
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (("Emma", "James", "Olivia", "Noah", "Amelia", "Oliver"),
           ("Clarke", "Walker", "Bennett", "Hughes", "Turner", "Wright")),
    "nl": (("Sanne", "Daan", "Lotte", "Bram", "Fleur", "Thijs"),
           ("de Jong", "Visser", "Bakker", "Mulder", "de Boer", "Smit")),
    "de": (("Lena", "Jonas", "Mia", "Felix", "Hannah", "Lukas"),
           ("Müller", "Schmidt", "Schneider", "Wagner", "Becker", "Hoffmann")),
    "fr": (("Camille", "Lucas", "Chloé", "Hugo", "Léa", "Louis"),
           ("Martin", "Bernard", "Dubois", "Laurent", "Moreau", "Lefèvre")),
    "es": (("Lucía", "Hugo", "Martina", "Pablo", "Sofía", "Mateo"),
           ("García", "Martínez", "López", "Sánchez", "Pérez", "Gómez")),
    "it": (("Giulia", "Leonardo", "Sofia", "Francesco", "Aurora", "Tommaso"),
           ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano")),
    "pl": (("Zuzanna", "Jakub", "Julia", "Antoni", "Maja", "Szymon"),
           ("Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski")),
}


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[_index(options, key)]


def _index(options: tuple[str, ...], key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)


def _stand_in(project: Project, language: str, persona: str | None) -> tuple[str, str, int]:
    """(first name, last name, round) of a persona's stand-in: the name its hash picks, unless
    a persona declared before it has that one already; then the next free name. Round 0 until
    every name of the language is taken (by more personas than names), then 1, 2, ..."""
    firsts, lasts = NAMES.get(language, NAMES["en"])
    size = len(firsts) * len(lasts)
    known = list(project.audiences.personas)
    # The personas before it, in their order, get theirs first; no persona (or one that is
    # not declared) comes after all of them.
    order = known[:known.index(persona) + 1] if persona in known else [*known, persona]
    taken: set[int] = set()
    slot = rounds = 0
    for name in order:
        if len(taken) == size:
            taken, rounds = set(), rounds + 1
        key = f"{name or ''}/{language}"
        slot = _index(firsts, key + "/first") * len(lasts) + _index(lasts, key + "/last")
        while slot in taken:
            slot = (slot + 1) % size
        taken.add(slot)
    return firsts[slot // len(lasts)], lasts[slot % len(lasts)], rounds


# Letters that Unicode does not decompose into a base letter and a mark, and German's own
# spelling without umlauts (Müller is mueller, not muller).
_LATIN = str.maketrans({"ß": "ss", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d",
                        "ı": "i"})
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})


def _local_part(first: str, last: str, language: str) -> str:
    """first.last as an ASCII local part that still reads as the name (jonas.mueller,
    lucia.garcia): accents dropped, never the letter they sit on."""
    text = f"{first}.{last}".lower().replace(" ", "")
    if language == "de":
        text = text.translate(_GERMAN)
    text = unicodedata.normalize("NFKD", text.translate(_LATIN))
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c == ".")) or "sample"


def sample_person(project: Project, language: str, today: date,
                  persona: str | None = None) -> dict[str, Any]:
    """A stand-in with every mapped attribute and a name fitting `language` (the same one for
    the same persona and language, a different one for each persona)."""
    people = project.audiences.people
    attributes: dict[str, Any] = {}
    for name in people.columns:
        attributes[name] = today - timedelta(days=30) if name in people.dates else f"Sample {name}"
    first, last, rounds = _stand_in(project, language, persona)
    local = _local_part(first, last, language) + (str(rounds + 1) if rounds else "")
    attributes.update(email=f"{local}@example.org", first_name=first, last_name=last,
                      language=language, today=today)
    start = attributes.get("start_date")
    attributes["tenure_days"] = (today - start).days if isinstance(start, date) else None
    return attributes


def sample_manager(language: str) -> dict[str, str]:
    """A stand-in for a person's manager, the reader of a step that goes to the manager."""
    firsts, lasts = NAMES.get(language, NAMES["en"])
    first, last = _pick(firsts, f"manager/{language}/first"), \
        _pick(lasts, f"manager/{language}/last")
    return {"email": "manager@example.org", "name": f"{first} {last}", "first_name": first}
