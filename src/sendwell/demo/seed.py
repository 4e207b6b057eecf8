"""Realistic synthetic B2B buyers for the demo: industries, stages, countries, languages."""

from __future__ import annotations

import csv
import random
import unicodedata
from pathlib import Path

# country: (weight, language, first names, last names, company suffix)
COUNTRIES: dict[str, tuple[int, str, list[str], list[str], str]] = {
    "DE": (14, "de", ["Anna", "Lukas", "Katrin", "Jonas", "Sabine", "Matthias"], ["Müller", "Schmidt", "Weber", "Fischer", "Becker"], "GmbH"),
    "FR": (9, "fr", ["Camille", "Julien", "Élodie", "Nicolas", "Claire"], ["Martin", "Bernard", "Dubois", "Lefèvre", "Moreau"], "SARL"),
    "IT": (7, "it", ["Giulia", "Marco", "Francesca", "Luca"], ["Rossi", "Bianchi", "Romano", "Greco"], "S.r.l."),
    "ES": (7, "es", ["Lucía", "Javier", "Carmen", "Pablo"], ["García", "López", "Martínez", "Sánchez"], "S.L."),
    "NL": (5, "nl", ["Sanne", "Daan", "Femke", "Bram"], ["de Jong", "Jansen", "Visser", "Bakker"], "B.V."),
    "PL": (4, "pl", ["Agnieszka", "Piotr", "Katarzyna", "Tomasz"], ["Nowak", "Kowalski", "Wiśniewski"], "Sp. z o.o."),
    "SE": (3, "sv", ["Emma", "Oskar", "Maja", "Erik"], ["Andersson", "Johansson", "Karlsson"], "AB"),
    "GB": (10, "en", ["Oliver", "Charlotte", "Harry", "Amelia", "George"], ["Smith", "Jones", "Taylor", "Brown", "Wilson"], "Ltd"),
    "US": (16, "en", ["James", "Emily", "Michael", "Sarah", "David", "Jessica"], ["Johnson", "Williams", "Miller", "Davis", "Garcia"], "Inc."),
    "CA": (5, "en", ["Liam", "Olivia", "Noah", "Chloé"], ["Tremblay", "Roy", "Campbell", "Gagnon"], "Ltd."),
    "AU": (5, "en", ["Jack", "Mia", "William", "Isla"], ["Nguyen", "Kelly", "Walker", "Harris"], "Pty Ltd"),
    "AE": (3, "en", ["Omar", "Fatima", "Ahmed", "Layla"], ["Al Mansouri", "Haddad", "Khan"], "LLC"),
    "BR": (4, "pt", ["Ana", "João", "Mariana", "Rafael"], ["Silva", "Santos", "Oliveira", "Souza"], "Ltda."),
    "JP": (3, "ja", ["Yuki", "Haruto", "Sakura", "Ren"], ["Sato", "Suzuki", "Takahashi"], "K.K."),
    "ZA": (2, "en", ["Thabo", "Naledi", "Pieter", "Zanele"], ["Dlamini", "van der Merwe", "Nkosi"], "(Pty) Ltd"),
    "MX": (3, "es", ["Sofía", "Diego", "Valentina", "Mateo"], ["Hernández", "Ramírez", "Torres"], "S.A. de C.V."),
}
INDUSTRIES = {
    "lighting": ["Licht", "Lighting", "Luce", "Lumière", "Iluminación"],
    "hardware": ["Tools", "Hardware", "Werkzeug", "Ferretería"],
    "furniture": ["Furniture", "Möbel", "Meubles", "Interiors"],
    "textiles": ["Textiles", "Fabrics", "Stoffe", "Tessuti"],
    "packaging": ["Packaging", "Verpackung", "Emballage"],
    "electronics": ["Electronics", "Elektronik", "Components"],
}
TITLES = ["Purchasing Manager", "Head of Procurement", "Buyer", "Category Manager", "Owner",
          "Import Manager", "Sourcing Specialist", "Managing Director"]
STAGES = [("new_lead", 50), ("prospect", 30), ("customer", 20)]


def _ascii(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if c.isascii() and (c.isalnum() or c in " -")).strip()


def write_contacts_csv(path: Path, count: int = 1200, seed: int = 2026) -> int:
    """Write `count` synthetic buyers to a CSV with the import's standard headers."""
    rng = random.Random(seed)
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][0] for c in countries]
    seen: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "first_name", "last_name", "company", "job_title", "country",
                         "industry", "stage", "language", "tags"])
        written = 0
        while written < count:
            country = rng.choices(countries, weights)[0]
            _, lang, firsts, lasts, suffix = COUNTRIES[country]
            first, last = rng.choice(firsts), rng.choice(lasts)
            industry = rng.choice(list(INDUSTRIES))
            word = rng.choice(INDUSTRIES[industry])
            company = f"{last.split()[-1]} {word} {suffix}"
            domain = f"{_ascii(last).lower().replace(' ', '')}-{_ascii(word).lower()}{rng.randint(1, 99)}.example"
            email = f"{_ascii(first).lower()}.{_ascii(last).lower().replace(' ', '')}@{domain}"
            if email in seen:
                continue
            seen.add(email)
            stage = rng.choices([s for s, _ in STAGES], [w for _, w in STAGES])[0]
            tags = ";".join(sorted(rng.sample(["canton-fair-2026", "website-inquiry", "sample-sent", "catalogue-2026"], k=rng.randint(0, 2))))
            writer.writerow([email, first, last, company, rng.choice(TITLES), country, industry, stage, lang, tags])
            written += 1
    return written
