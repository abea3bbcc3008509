"""A PII corpus made with Faker (fixed seeds, several locales), and a leak counter per entity type.

Each record carries PII in structured fields (one entity per field), in free text mixing a person's name
with a phone number, an email, an address, a card, an IBAN and an SSN, in a slice, and now and then in a
prediction label, a label string or a deploy annotation. Names come from Faker's locale lists, which no
recognizer of the shim uses (the NER pipeline and a capitalised-run rule find them).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_CA")
#: street-address formats the shim recognises out of the box (others are added with Redaction(recognizers=...))
ADDRESS_LOCALES = ("en_US", "en_CA", "en_GB", "de_DE", "fr_FR")
PATTERN_ENTITIES = ("email", "phone", "card", "iban", "ssn", "ip", "address")
TEMPLATES = (
    "Customer {name} asked to be called at {phone} or mailed at {email}; ship to {address}.",
    "{name} paid with card {card} and wants a refund to IBAN {iban}.",
    "Spoke with {name} today: SSN {ssn} verified, new address {address}, phone {phone}.",
    "Please forward this ticket to {name} ({email}, {phone}); login seen from {ip}.",
    "The account holder, {name}, disputes the charge on {card}. Call back on {phone}.",
    "Escalated by {name} after two failed payments from IBAN {iban} (ssn {ssn}).",
    "Hi, this is {name}, my order to {address} never arrived. Reach me at {email}.",
)


@dataclass
class Record:
    rid: str
    features: dict[str, Any]
    slices: dict[str, str]
    prediction: dict[str, Any]
    label: str
    pii: dict[str, list[str]] = field(default_factory=dict)
    names: list[tuple[str, str]] = field(default_factory=list)  # (first, last) in the free text fields
    error: bool = False


def corpus(n: int, seed: int = 2026) -> list[Record]:
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed + i)
    us = fakers["en_US"]
    out = []
    for i in range(n):
        loc = LOCALES[i % len(LOCALES)]
        f = fakers[loc]
        af = fakers[ADDRESS_LOCALES[i % len(ADDRESS_LOCALES)]]
        first, last = f.first_name(), f.last_name()
        v = {"name": f"{first} {last}", "email": f.email(), "phone": f.phone_number(), "card": f.credit_card_number(),
             "iban": f.iban(), "ssn": us.ssn(), "ip": f.ipv4() if i % 2 else f.ipv6(), "address": af.street_address()}
        note = rng.choice(TEMPLATES).format(**v)
        cust_first, cust_last = f.first_name(), f.last_name()
        label = "approve" if i % 10 else f"call back {v['phone']}"
        rec = Record(
            rid=f"req-{i:06d}",
            features={"income": round(rng.lognormvariate(10, 0.5), 2), "age": float(rng.randint(18, 90)),
                      "region": rng.choice(["eu", "us"]), **{k: v[k] for k in PATTERN_ENTITIES},
                      "customer": f"{cust_first} {cust_last}", "note": note},
            slices={"region": rng.choice(["eu", "us"]), "contact": v["email"]},
            prediction={"label": label, "score": 0.5},
            label="deny" if i % 7 else f"fraud by {v['email']}",
            pii={k: [v[k]] for k in PATTERN_ENTITIES},
            names=[(first, last), (cust_first, cust_last)],
            error=i % 13 == 0,
        )
        out.append(rec)
    return out


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


_RUN = re.compile(r"\d[\d \t().+/-]*\d")


def _variants(entity: str, value: str) -> tuple[list[str], str | None]:
    """Substrings whose presence is a leak, and a digit core to look for in the digit runs."""
    if entity == "email":
        return [value, value.split("@")[0] + "@"], None
    if entity == "address":
        first_line = value.splitlines()[0]
        words = first_line.replace(",", " ").split()
        return [first_line, " ".join(words[:2])], None
    if entity == "ip":
        return [value], None
    if entity == "phone":
        core = _digits(re.split(r"(?i)\s*(?:x|ext)", value)[0])
        return [value], core[-8:] if len(core) >= 8 else core
    if entity == "iban":
        return [value, value.replace(" ", "")], _digits(value)[-10:]
    return [value], _digits(value)  # card, ssn


class _Haystack:
    """A text to look for many values in, at a cost that does not grow with its length per value: the runs of
    digits and separators in it (a phone or card written any way) indexed by their last digits, and its
    substrings of ``GRAM`` characters (a value none of whose ends shows cannot be in the text)."""

    GRAM = 8

    def __init__(self, text: str) -> None:
        self.text = text
        self._runs = [(m.start(), _digits(m.group())) for m in _RUN.finditer(text)]
        self._by_end: dict[int, dict[str, list[tuple[int, int]]]] = {}  # core length -> last digits -> (at, len)
        self._grams: set[str] | None = None

    def find(self, sub: str) -> int:
        """``text.find(sub)``."""
        if len(sub) >= self.GRAM:
            if self._grams is None:
                g, t = self.GRAM, self.text
                self._grams = {t[i:i + g] for i in range(len(t) - g + 1)}
            if sub[:self.GRAM] not in self._grams or sub[-self.GRAM:] not in self._grams:
                return -1
        return self.text.find(sub)

    def run_ending_with(self, core: str, limit: int) -> int:
        """Where the first run shows that ends with ``core`` and has at most ``limit`` digits; -1 if none."""
        n = len(core)
        index = self._by_end.get(n)
        if index is None:
            index = self._by_end[n] = {}
            for at, digits in self._runs:
                if len(digits) >= n:
                    index.setdefault(digits[-n:], []).append((at, len(digits)))
        return next((at for at, length in index.get(core, ()) if length <= limit), -1)


def _found_at(entity: str, value: str, text: _Haystack) -> int:
    """Where ``value`` shows in ``text``: as written, or as a digit run that ends with its digit core (the same
    digits with other separators, or behind a prefix); -1 if nowhere. A run must *end* with the core and be
    no longer than the value's digits and a short prefix: a core inside a longer run (a timestamp's seconds and
    microseconds, a log's counter) is a coincidence, not the value."""
    subs, core = _variants(entity, value)
    for sub in subs:
        if sub and (at := text.find(sub)) >= 0:
            return at
    if core:
        return text.run_ending_with(core, len(_digits(value)) + 4)
    return -1


def count_leaks(text: str, records: list[Record]) -> dict[str, list[str]]:
    """For each pattern entity, the values of ``records`` found in ``text`` (as written, or as digits)."""
    hay = _Haystack(text)
    leaks: dict[str, list[str]] = {e: [] for e in PATTERN_ENTITIES}
    for rec in records:
        for entity, values in rec.pii.items():
            for value in values:
                if _found_at(entity, value, hay) >= 0:
                    leaks[entity].append(value)
    return leaks


def leak_context(text: str, leaks: dict[str, list[str]], width: int = 80) -> list[str]:
    """Where each leaked value shows in ``text``: for the failure message."""
    hay = _Haystack(text)
    out = []
    for entity, values in leaks.items():
        for value in values:
            at = _found_at(entity, value, hay)
            out.append(f"{entity} {value!r}: ...{text[max(0, at - width):at + width]!r}...")
    return out


def names_missed(redacted: str, names: list[tuple[str, str]]) -> list[str]:
    """The names (first or last name, as whole words of three letters or more) still in ``redacted``."""
    missed = []
    for first, last in names:
        for part in (first, last):
            for word in re.split(r"[\s-]+", part):
                if len(word) >= 3 and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", redacted):
                    missed.append(f"{first} {last}")
                    break
            else:
                continue
            break
    return missed
