"""Stand-in people: plausible names per language, and every mapped attribute filled in.

Validation renders each persona in each language for one of them where no real person of
the export falls into it; `--sample-people` uses only them, so that CI needs no HR export in
git and a preview gallery shows no real employee's name or address.
"""

from __future__ import annotations

import hashlib
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
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def sample_person(project: Project, language: str, today: date,
                  persona: str | None = None) -> dict[str, Any]:
    """A stand-in with every mapped attribute and a name fitting `language` (the same one for
    the same persona and language, a different one for each persona)."""
    people = project.audiences.people
    attributes: dict[str, Any] = {}
    for name in people.columns:
        attributes[name] = today - timedelta(days=30) if name in people.dates else f"Sample {name}"
    firsts, lasts = NAMES.get(language, NAMES["en"])
    key = f"{persona or ''}/{language}"
    first, last = _pick(firsts, key + "/first"), _pick(lasts, key + "/last")
    local = "".join(c for c in f"{first}.{last}".lower().replace(" ", "")
                    if c.isascii() and (c.isalnum() or c == ".")) or "sample"
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
