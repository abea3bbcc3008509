"""PII redaction with Presidio recognizers (and an optional spaCy NER pipeline), on the background worker.

One :class:`Redactor` applies one :class:`Redaction` to every way a value leaves: features and slices
(:meth:`Redactor.apply`), prediction labels, label strings and class names (:meth:`Redactor.label`),
error types (:meth:`Redactor.error_type`) and deploy annotations (:meth:`Redactor.annotations`). The
collector uses the same class for events from senders that are not the SDK.

Free text goes through pattern recognizers (Presidio's email, IP, IBAN, US SSN and URL recognizers, and
the shim's address, phone and payment-card recognizers, see :mod:`serving_shim._internal.recognizers`)
and, when the user installed and named one, a spaCy NER pipeline run in batches (``nlp.pipe``, with only
its ``ner`` component and what it listens to). Nothing touches the network: no spaCy model is loaded unless
named (a missing one is an error, never a download), and the email recognizer validates domains against
tldextract's bundled public-suffix snapshot.

Cheap skips before Presidio: numbers and nulls, known categories, tokens this redactor made, and
recognizers whose pattern cannot match the text (no ``@`` for email, too few digits for phones, cards,
SSNs...). Results of repeated values are cached. Raw values are never logged.

Without the ``redaction`` extra (presidio-analyzer, on an SDK-only install) nothing readable that a
recognizer could have matched leaves either: every string that would have been analysed, and that could
hold an entity at all (the same cheap necessary conditions: an ``@``, enough digits, a dot...), is
replaced whole by its salted hash token (the salt given, or a random one per process), with one warning
naming the extra. Strings no recognizer could match (``"pro"``, ``"stay"``) pass as before. Settings that
need Presidio (``recognizers=``, ``ner_model=``, ``phone_regions=``) raise an ImportError naming the extra.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from hashlib import sha256
from typing import Any

from serving_shim._internal.config import Redaction, ShimConfigError
from serving_shim._internal.entities import ENTITIES
from serving_shim._internal.extras import installed, missing_extra

__all__ = ["Redactor", "TOKEN_RE"]

log = logging.getLogger("driftline.shim")
_DIGITS = str.maketrans("", "", "0123456789")
#: What :meth:`Redactor.hash` makes: a token is never tokenized again (SDK, then collector).
TOKEN_RE = re.compile(r"h:[0-9a-f]{32}")
_SPACY_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
                 "ORG": "ORGANIZATION", "NORP": "NRP"}


#: a company designator: an ORG entity holding one is an organisation, not a misread name
_ORG_WORD = re.compile(r"(?i)\b(?:inc|ltd|llc|plc|gmbh|ag|sa|sas|corp|corporation|company|co|group|bank|university|"
                       r"college|school|hospital|institute|foundation|association|agency|department|ministry|"
                       r"council|club|partners|holdings|technologies|systems|services|solutions)\b\.?")
_CAP = r"[^\W\d_a-z][^\W\d_A-Z]{1,30}(?:[-'’][^\W\d_a-z]?[^\W\d_A-Z]{1,30}){0,3}"
_NAME_RUN = re.compile(rf"(?<![\w]){_CAP}(?:\s+(?:(?:von|van|de|der|den|da|di|du|del|la|le|zu|y|bin|al)\s+){{0,3}}"
                       rf"{_CAP}){{1,5}}")


def _n_digits(text: str) -> int:
    return len(text) - len(text.translate(_DIGITS))


_fallback_warned = False


def _fallback_salt(cfg: Redaction) -> bytes:
    """Without Presidio: the salt of the whole-string tokens (one warning per process names the extra)."""
    global _fallback_warned
    if cfg.recognizers or cfg.ner_model or cfg.phone_regions:
        raise missing_extra("redaction", "Redaction(recognizers=, ner_model=, phone_regions=)", "presidio_analyzer")
    if not _fallback_warned:
        _fallback_warned = True
        log.warning("presidio-analyzer is not installed (pip install 'driftline[redaction]'): strings that could "
                    "hold PII are replaced whole by salted hash tokens%s",
                    "" if cfg.salt else " (a random salt per process: pass Redaction(salt=...) for tokens that "
                                        "match across processes)")
    return cfg.salt or secrets.token_bytes(32)


def _recognizers(cfg: Redaction) -> list[tuple[Any, str, Any]]:
    """(gate, entity, recognizer) for each recognizer of ``cfg`` (the user's own have no gate)."""
    out: list[tuple[Any, str, Any]] = []
    for name in cfg.entities:
        entity = ENTITIES[name]
        out.extend((entity.gate, name, rec) for rec in entity.make())
    if "PHONE_NUMBER" in cfg.entities and cfg.phone_regions:
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer

        # national formats of the named regions, by phonenumbers (leniency 0: unassigned numbers count too)
        out.append((ENTITIES["PHONE_NUMBER"].gate, "PHONE_NUMBER",
                    PhoneRecognizer(supported_regions=cfg.phone_regions, leniency=0)))
    for rec in cfg.recognizers:
        if not hasattr(rec, "analyze") or not getattr(rec, "supported_entities", None):
            raise ShimConfigError(f"recognizers: {type(rec).__name__} is not a Presidio recognizer")
        out.append((None, rec.supported_entities[0], rec))
    return out


def _ner_pipeline(cfg: Redaction) -> Any:
    """The user's installed spaCy pipeline (never downloaded) with only what NER needs enabled."""
    from pathlib import Path

    import spacy

    name = cfg.ner_model or ""
    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ShimConfigError(f"spaCy model {name!r} is not installed (the shim never downloads one; "
                              f"pip install it, e.g. en_core_web_sm)")
    nlp = spacy.load(name)
    keep = {"ner", "entity_ruler", "span_ruler"}
    for shared in ("tok2vec", "transformer"):  # kept only when the NER component listens to it
        if shared in nlp.pipe_names and "ner" in getattr(nlp.get_pipe(shared), "listening_components", ()):
            keep.add(shared)
    nlp.select_pipes(disable=[p for p in nlp.pipe_names if p not in keep])
    return nlp


class Redactor:
    """Applies a :class:`Redaction` to values on their way out (one dict in, a new dict out)."""

    def __init__(self, cfg: Redaction) -> None:
        self.cfg = cfg
        self._fields = dict(cfg.fields)
        self._categories = dict(cfg.categories)
        self._default = cfg.default or "text"
        self._strict = cfg.mode == "strict"
        # without Presidio (no ``redaction`` extra) every string a recognizer might match becomes a token
        self._whole_salt = None if installed("presidio_analyzer") else _fallback_salt(cfg)
        self._recs = _recognizers(cfg) if self._whole_salt is None else []
        self._gates = [ENTITIES[e].gate for e in cfg.entities]
        self._ner = _ner_pipeline(cfg) if cfg.ner_model else None
        self._ner_types = set(cfg.ner_entities)
        self._cache: dict[str, str] = {}
        self._batch: dict[str, str] = {}
        self.analyzed = 0  # texts analysed (cache misses)

    # -- the ways out ------------------------------------------------------------------------
    def apply(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Features or slices: each value by its field's policy (``drop`` leaves the key out)."""
        out: dict[str, Any] = {}
        for name, v in values.items():
            pol = self._fields.get(name, self._default)
            if pol == "drop":
                continue
            # numbers are hashed only when their field is named ``hash`` (strict mode tokenizes strings)
            num_hash = self._fields.get(name) == "hash"
            if v is None or (isinstance(v, (int, float)) and not num_hash):
                out[name] = v
                continue
            if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
                v = v.item()
                if isinstance(v, (int, float)) and not num_hash:
                    out[name] = v
                    continue
            out[name] = self._value(name, pol, v if isinstance(v, str) else str(v))
        return out

    def field(self, name: str, value: str) -> str | None:
        """One string of the field ``name`` (None: the policy drops it)."""
        pol = self._fields.get(name, self._default)
        return None if pol == "drop" else self._value(name, pol, value)

    def label(self, value: str) -> str:
        """A prediction label, a label string or a class name (one policy: they must still match)."""
        return self.field("label", value) or ""

    def error_type(self, value: str) -> str:
        pol = self._fields.get("error_type", "text")
        if pol == "drop":
            return ""
        if pol in ("text", "redact") and "_" in value:  # Err_555-123-4567: the recognizers need word breaks
            spaced = value.replace("_", " ")
            red = self._value("error_type", pol, spaced)
            return value if red == spaced else red
        return self._value("error_type", pol, value)

    def annotations(self, values: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for k, v in values.items():
            r = self.field(f"deploy.{k}", str(v))
            if r is not None:
                out[k] = r
        return out

    def _route(self, name: str, pol: str, s: str) -> str:
        """What the policy does with the string ``s`` of field ``name``: keep, drop, hash or text (analyse)."""
        if pol in ("keep", "drop"):
            return pol
        cats = self._categories.get(name)
        if cats is not None and s in cats:
            return "keep"
        if pol == "hash" or (self._strict and cats is not None):
            return "hash"
        return "text"

    def _value(self, name: str, pol: str, s: str) -> str:
        route = self._route(name, pol, s)
        if route == "text":
            return self.redact_text(s)
        if route == "hash":  # a token made upstream (the SDK, then the collector) is not tokenized again
            return s if TOKEN_RE.fullmatch(s) else self.hash(s)
        return s if route == "keep" else ""  # (callers leave dropped fields out before they get here)

    def policy(self, name: str) -> str:
        return self._fields.get(name, self._default)


    @property
    def has_ner(self) -> bool:
        return self._ner is not None

    def hash(self, value: str) -> str:
        assert self.cfg.salt is not None
        return _token(self.cfg.salt, value)

    # -- free text ---------------------------------------------------------------------------
    def text_values(self, values: Mapping[str, Any] | None) -> Iterable[str]:
        """The strings of ``values`` that :meth:`apply` will analyse as free text."""
        if not values:
            return ()
        return [v for k, v in values.items()
                if isinstance(v, str) and self._route(k, self._fields.get(k, self._default), v) == "text"]

    def prefetch_values(self, mappings: Iterable[Mapping[str, Any] | None]) -> None:
        """The free texts of many events' features and slices through the NER pipeline at once (``nlp.pipe``),
        before :meth:`apply` reads them one by one. Never raises: after a failure each value is analysed (and
        may fail) on its own. Without NER it does nothing."""
        if self._ner is None:
            return
        try:
            self.prefetch(t for m in mappings for t in self.text_values(m))
        except Exception as exc:  # noqa: BLE001
            log.warning("batched redaction failed (%s)", type(exc).__name__)

    def prefetch(self, texts: Iterable[str]) -> None:
        """Analyse many texts at once (the NER pipeline runs over them in batches); the results serve the
        :meth:`redact_text` calls that follow, until the next prefetch. Without NER it does nothing."""
        if self._ner is None:
            return
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self._batch = dict(zip(todo, self._analyze_many(todo), strict=True)) if todo else {}

    def redact_text(self, text: str) -> str:
        hit = self._cache.get(text)
        if hit is None:
            hit = self._batch.get(text)
        if hit is None:
            hit = self._analyze_many([text])[0]
        if self.cfg.cache_size and text not in self._cache:
            if len(self._cache) >= self.cfg.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = hit
        return hit

    def _analyze_many(self, texts: list[str]) -> list[str]:
        self.analyzed += len(texts)
        if self._whole_salt is not None:
            return [self._whole(t, self._whole_salt) for t in texts]
        spans: list[list[tuple[int, int, str]]] = [self._pattern_spans(t) for t in texts]
        if self._ner is not None:
            docs = self._ner.pipe(texts, batch_size=256)
            names = "PERSON" in self._ner_types
            for text, found, doc in zip(texts, spans, docs, strict=True):
                for ent in doc.ents:
                    kind = _SPACY_LABELS.get(ent.label_)
                    if kind in self._ner_types or (names and kind == "ORGANIZATION" and not _ORG_WORD.search(ent.text)):
                        # a small pipeline often calls a person's name an ORG: without a company word it is a name
                        found.append((ent.start_char, ent.end_char, kind if kind in self._ner_types else "PERSON"))
                if names:  # two or more capitalised words in a row (what NER missed): taken as a name
                    found.extend((m.start(), m.end(), "PERSON") for m in _NAME_RUN.finditer(text))
        return [_replace(t, s) for t, s in zip(texts, spans, strict=True)]

    def _whole(self, text: str, salt: bytes) -> str:
        """Without Presidio: the text, if no recognizer could match it; else its token, whole."""
        if TOKEN_RE.fullmatch(text):
            return text
        d = _n_digits(text)
        return _token(salt, text) if any(gate(text, d) for gate in self._gates) else text

    def _pattern_spans(self, text: str) -> list[tuple[int, int, str]]:
        d = _n_digits(text)
        spans: list[tuple[int, int, str]] = []
        for gate, entity, rec in self._recs:
            if gate is None or gate(text, d):
                spans.extend((r.start, r.end, entity) for r in rec.analyze(text, [entity], None))
        return spans


def _token(salt: bytes, value: str) -> str:
    return "h:" + hmac.new(salt, value.encode(), sha256).hexdigest()[:32]


_PRIORITY = {"US_SSN": 0, "CREDIT_CARD": 1, "IBAN_CODE": 2, "EMAIL_ADDRESS": 3, "IP_ADDRESS": 4, "PHONE_NUMBER": 6,
             "STREET_ADDRESS": 7}


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return text
    # the longest span first where two start together; on a tie the most specific entity names it
    spans.sort(key=lambda sp: (sp[0], -sp[1], _PRIORITY.get(sp[2], 5)))
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
