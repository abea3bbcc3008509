"""PII redaction with presidio-analyzer, run on the background worker only.

Free-text values go through Presidio's pattern recognizers (email, phone, credit card, IP, IBAN,
US SSN by default) and, when the user installed one, a spaCy NER model. Nothing touches the
network: no spaCy model is loaded unless named (and a missing one is an error, never a download),
and the email recognizer validates domains against tldextract's bundled public-suffix snapshot.

Cheap skips before Presidio: numbers and nulls, known categories, and recognizers whose pattern
cannot match the text (no ``@`` for email, too few digits for phones, cards, SSNs...). Results of
repeated values are cached. Raw values are never logged.
"""

from __future__ import annotations

import hmac
import logging
from hashlib import sha256
from typing import Any

from serving_shim._internal.config import Redaction, ShimConfigError

__all__ = ["Redactor"]

log = logging.getLogger("driftline.shim")
_DIGITS = str.maketrans("", "", "0123456789")


def _n_digits(text: str) -> int:
    return len(text) - len(text.translate(_DIGITS))


# Necessary conditions for each pattern recognizer to match (cheap, conservative).
_GATES: dict[str, Any] = {
    "EMAIL_ADDRESS": lambda t, d: "@" in t,
    "PHONE_NUMBER": lambda t, d: d >= 5,
    "CREDIT_CARD": lambda t, d: d >= 12,
    "IP_ADDRESS": lambda t, d: ":" in t or (d >= 4 and "." in t),
    "IBAN_CODE": lambda t, d: d >= 2 and len(t) >= 15,
    "US_SSN": lambda t, d: d >= 9,
    "URL": lambda t, d: "." in t,
}


def _offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # suffix_list_urls=() and no cache dir: the bundled snapshot, never a download.
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            # a known suffix raises the score; an unknown one keeps the match (redacting is the safe side)
            return True if extract(pattern_text.rsplit("@", 1)[-1]).fqdn else None

    return OfflineEmailRecognizer()


def _recognizers(cfg: Redaction) -> list[tuple[str, Any]]:
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    factories: dict[str, Any] = {
        "EMAIL_ADDRESS": _offline_email_recognizer,
        # leniency 0 (POSSIBLE): a phone-shaped number with an unassigned area code is still redacted
        "PHONE_NUMBER": lambda: PhoneRecognizer(supported_regions=cfg.phone_regions, leniency=0),
        "CREDIT_CARD": CreditCardRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "US_SSN": UsSsnRecognizer,
        "URL": UrlRecognizer,
    }
    unknown = [e for e in cfg.entities if e not in factories]
    if unknown:
        raise ShimConfigError(f"no pattern recognizer for entities {unknown} (known: {sorted(factories)})")
    return [(e, factories[e]()) for e in cfg.entities]


def _ner_engine(cfg: Redaction) -> Any:
    """An AnalyzerEngine over the user's installed spaCy model (never downloaded)."""
    from pathlib import Path

    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    name = cfg.ner_model or ""
    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ShimConfigError(f"spaCy model {name!r} is not installed (the shim never downloads one)")
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": name}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_entities=list(cfg.ner_entities)))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


class Redactor:
    """Applies a :class:`Redaction` to features and slices (one dict in, a new dict out)."""

    def __init__(self, cfg: Redaction) -> None:
        self.cfg = cfg
        self._fields = dict(cfg.fields)
        self._categories = dict(cfg.categories)
        self._recs = _recognizers(cfg)
        self._ner = _ner_engine(cfg) if cfg.ner_model else None
        self._cache: dict[str, str] = {}
        self.analyzed = 0  # texts analysed (cache misses)

    def apply(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, v in values.items():
            pol = self._fields.get(name, self.cfg.default)
            if pol == "drop":
                continue
            if v is None or (isinstance(v, (int, float)) and pol != "hash"):
                out[name] = v
                continue
            if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
                v = v.item()
                if isinstance(v, (int, float)) and pol != "hash":
                    out[name] = v
                    continue
            s = v if isinstance(v, str) else str(v)
            if pol == "keep" or s in self._categories.get(name, ()):
                out[name] = s
            elif pol == "hash":
                out[name] = self.hash(s)
            else:
                out[name] = self.redact_text(s)
        return out

    def hash(self, value: str) -> str:
        assert self.cfg.salt is not None
        return "h:" + hmac.new(self.cfg.salt, value.encode(), sha256).hexdigest()[:32]

    def redact_text(self, text: str) -> str:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        red = self._analyze(text)
        if self.cfg.cache_size:
            if len(self._cache) >= self.cfg.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = red
        return red

    def _analyze(self, text: str) -> str:
        d = _n_digits(text)
        spans: list[tuple[int, int, str]] = []
        self.analyzed += 1
        for entity, rec in self._recs:
            if _GATES[entity](text, d):
                spans.extend((r.start, r.end, r.entity_type) for r in rec.analyze(text, [entity], None))
        if self._ner is not None:
            spans.extend((r.start, r.end, r.entity_type) for r in self._ner.analyze(text, language="en"))
        if not spans:
            return text
        spans.sort()
        parts, pos = [], 0
        for start, end, kind in spans:
            if end <= pos:
                continue  # inside a span already replaced
            if start < pos:  # overlaps the previous span: extend it
                pos = end
                continue
            parts.append(text[pos:start])
            parts.append(f"<{kind}>")
            pos = end
        parts.append(text[pos:])
        return "".join(parts)
