"""The entities the shim's pattern recognizers find, in one table.

For each entity: whether it is looked for by default, its gate (a cheap necessary condition for any of its
recognizers to match: an ``@`` for email, enough digits for phones, cards and SSNs...; the redactor skips
Presidio when it fails, and without Presidio tokenizes the strings where it holds) and how its Presidio
recognizers are built (Presidio is imported only then).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Entity", "ENTITIES", "DEFAULT_ENTITIES", "KNOWN_ENTITIES", "NER_ENTITIES"]

# addresses without a digit: French street lines (``rue de Legros``) and ships (``USNS Smith``)
_NUMBERLESS_ADDRESS = re.compile(r"(?i:\b(?:rue|boulevard|bd|chemin|allée|impasse|quai|avenue)\s)"
                                 r"|\bUS(?:S|NS|NV|CGC)\s")


def _presidio(*names: str) -> Callable[[], list[Any]]:
    def make() -> list[Any]:
        from presidio_analyzer import predefined_recognizers

        return [getattr(predefined_recognizers, n)() for n in names]

    return make


def _ours(*names: str) -> Callable[[], list[Any]]:
    def make() -> list[Any]:
        from serving_shim._internal import recognizers

        return [getattr(recognizers, n)() for n in names]

    return make


def _offline_email() -> list[Any]:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # suffix_list_urls=() and no cache dir: the bundled snapshot, never a download.
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            # a known suffix raises the score; an unknown one keeps the match (redacting is the safe side)
            return True if extract(pattern_text.rsplit("@", 1)[-1]).fqdn else None

    return [OfflineEmailRecognizer()]


def _iban() -> list[Any]:
    # Presidio's (registered lengths and formats) and the shim's (any IBAN-shaped code with a valid checksum)
    return _presidio("IbanRecognizer")() + _ours("IbanChecksumRecognizer")()


@dataclass(frozen=True, slots=True)
class Entity:
    #: a necessary condition for a match: (text, its number of digits) -> bool; cheap and conservative
    gate: Callable[[str, int], bool]
    #: the entity's Presidio recognizers (imports Presidio)
    make: Callable[[], list[Any]]
    default: bool = True


ENTITIES: dict[str, Entity] = {
    "EMAIL_ADDRESS": Entity(lambda t, d: "@" in t, _offline_email),
    "PHONE_NUMBER": Entity(lambda t, d: d >= 7, _ours("PhonePatternRecognizer")),
    "CREDIT_CARD": Entity(lambda t, d: d >= 12, _ours("PaymentCardRecognizer")),
    "IP_ADDRESS": Entity(lambda t, d: ":" in t or (d >= 4 and "." in t), _presidio("IpRecognizer")),
    "IBAN_CODE": Entity(lambda t, d: d >= 2 and len(t) >= 15, _iban),
    "US_SSN": Entity(lambda t, d: d >= 9, _presidio("UsSsnRecognizer")),
    "STREET_ADDRESS": Entity(lambda t, d: d >= 1 or _NUMBERLESS_ADDRESS.search(t) is not None,
                             _ours("AddressRecognizer")),
    "URL": Entity(lambda t, d: "." in t, _presidio("UrlRecognizer"), default=False),
}
#: Entities the default recognizers look for (Presidio names; ``STREET_ADDRESS`` is the shim's own).
DEFAULT_ENTITIES: tuple[str, ...] = tuple(name for name, e in ENTITIES.items() if e.default)
#: Every entity the shim has a pattern recognizer for.
KNOWN_ENTITIES: tuple[str, ...] = tuple(ENTITIES)
#: NER entities (spaCy labels are mapped: PERSON; GPE, LOC, FAC -> LOCATION; ORG -> ORGANIZATION; NORP -> NRP).
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")
