"""Typed, keyword-only, immutable settings of the shim (validated once, at construction).

Nothing here reads the environment: an application that wants ``DRIFTLINE_*`` variables reads them
itself at start and passes the values in.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from serving_shim._internal.entities import DEFAULT_ENTITIES, KNOWN_ENTITIES, NER_ENTITIES
from serving_shim.exceptions import ShimConfigError

__all__ = ["Policy", "Mode", "BatchConfig", "Redaction", "ShimConfigError"]

#: What happens to one field: ``keep`` as is, ``drop`` it, ``hash`` it (a token: HMAC-SHA256 with a secret
#: salt, deterministic, so joins and categorical drift still work; not readable), or ``text`` (free text:
#: each entity the recognizers or the NER model find is replaced with ``<TYPE>``). ``redact`` is the
#: older name of ``text``.
Policy = Literal["keep", "drop", "hash", "text", "redact"]
_POLICIES = ("keep", "drop", "hash", "text", "redact")
Mode = Literal["standard", "strict"]



@dataclass(frozen=True, kw_only=True, slots=True)
class BatchConfig:
    """The background export: how much may wait, how much goes in one message, how often.

    - ``max_queue_size``: sampled events waiting for the worker; beyond it new events are dropped
      (reason ``queue_full``), so memory stays bounded whatever the sink does.
    - ``max_export_batch_size``: events per exported batch (one Kafka message or one HTTP post);
      reaching it wakes the worker early.
    - ``schedule_delay_s``: the worker wakes at least this often (exports what is queued, closes
      finished metric windows).
    - ``export_timeout_s``: the longest one export may take before it counts as failed.
    - ``shutdown_timeout_s``: the budget of the final flush at shutdown (and at interpreter exit).
    - ``max_pending_windows``: metric windows kept for re-sending while the sink is down (their
      ``event_id`` is deterministic, so a re-send is deduplicated); the oldest go first (reason
      ``window_overflow``).
    """

    max_queue_size: int = 10_000
    max_export_batch_size: int = 512
    schedule_delay_s: float = 1.0
    export_timeout_s: float = 5.0
    shutdown_timeout_s: float = 5.0
    max_pending_windows: int = 1_000

    def __post_init__(self) -> None:
        if self.max_queue_size < 1:
            raise ShimConfigError("max_queue_size must be at least 1")
        if not 1 <= self.max_export_batch_size <= self.max_queue_size:
            raise ShimConfigError("max_export_batch_size must be between 1 and max_queue_size")
        for name in ("schedule_delay_s", "export_timeout_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ShimConfigError(f"{name} must be positive")
        if self.max_pending_windows < 1:
            raise ShimConfigError("max_pending_windows must be at least 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class Redaction:
    """What may leave the process. Applied on the background worker (and, server side, by the collector).

    - ``mode``: ``strict`` (recommended) tokenizes every string that is not declared: a field is
      ``hash``-ed unless ``fields`` names it ``keep`` or ``text``, or ``categories`` lists its values
      (a value outside the list is tokenized too). ``standard`` runs the recognizers over undeclared
      strings instead (fails open on PII they do not know, such as names without an NER model).
    - ``fields``: a policy per feature or slice name (see :data:`Policy`). The other ways out have
      names of their own: ``label`` (prediction labels, label strings and class names: one policy, so
      predictions and labels still match), ``error_type`` (error types, also in metric windows) and
      ``deploy.<key>`` (a deploy annotation).
    - ``default``: the policy of string fields not named in ``fields`` (``hash`` in strict mode, ``text``
      otherwise). Numbers and nulls cannot hold text PII and pass unless their field says otherwise
      (name identifier-like numeric fields with ``hash`` or ``drop``). Error types default to ``text``
      in both modes (they are names of exception classes; the recognizers still run over them).
    - ``categories``: known values per field (``{"region": {"eu", "us"}, "label": {"approve", "deny"}}``)
      that pass untouched.
    - ``salt``: the secret key of ``hash`` (required when any field uses it, so always in strict mode;
      keep it out of code, the same in every replica so tokens match).
    - ``entities``: the entities the pattern recognizers find (:data:`KNOWN_ENTITIES`);
      ``phone_regions``: regions (``("US", "GB")``) whose national phone formats Presidio's
      phonenumbers-based recognizer also checks (slower; the shim's own phone recognizer, always on with
      ``PHONE_NUMBER``, already finds numbers in the usual written forms of any country); ``recognizers``:
      more Presidio recognizers of your own (another locale's addresses...).
    - ``ner_model``: an installed spaCy pipeline name or path adding names and places to ``text`` fields
      (``ner_entities``, default PERSON and LOCATION). Never downloaded: a missing one is an error.
    - ``cache_size``: redacted values remembered (repeated values are not analysed again).
    """

    mode: Mode = "standard"
    fields: Mapping[str, Policy] = field(default_factory=dict)
    default: Policy | None = None
    categories: Mapping[str, Set[str]] = field(default_factory=dict)  # frozensets after __post_init__
    salt: bytes | None = None
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    phone_regions: tuple[str, ...] = ()
    recognizers: tuple[Any, ...] = ()
    ner_model: str | None = None
    ner_entities: tuple[str, ...] = ("PERSON", "LOCATION")
    cache_size: int = 10_000

    def __post_init__(self) -> None:
        if self.mode not in ("standard", "strict"):
            raise ShimConfigError(f"mode must be 'standard' or 'strict', got {self.mode!r}")
        default = self.default or ("hash" if self.mode == "strict" else "text")
        for name, pol in {**self.fields, "(default)": default}.items():
            if pol not in _POLICIES:
                raise ShimConfigError(f"redaction policy of {name!r} must be one of {_POLICIES}, got {pol!r}")
        if self.mode == "strict" and default not in ("hash", "drop"):
            raise ShimConfigError("strict mode tokenizes undeclared fields: default must be 'hash' or 'drop', "
                                  f"got {default!r}")
        uses_hash = default == "hash" or "hash" in self.fields.values() or self.mode == "strict"
        if uses_hash and not self.salt:
            raise ShimConfigError("the 'hash' policy (and strict mode) needs a secret salt (Redaction(salt=...))")
        if self.salt is not None and len(self.salt) < 16:
            raise ShimConfigError("salt must be at least 16 bytes")
        if self.cache_size < 0:
            raise ShimConfigError("cache_size must be >= 0")
        unknown = [e for e in self.entities if e not in KNOWN_ENTITIES]
        if unknown:
            raise ShimConfigError(f"entities: no pattern recognizer for {unknown} (known: {sorted(KNOWN_ENTITIES)})")
        bad_ner = [e for e in self.ner_entities if e not in NER_ENTITIES]
        if bad_ner:
            raise ShimConfigError(f"ner_entities: unknown {bad_ner} (known: {list(NER_ENTITIES)})")
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "categories", MappingProxyType({k: frozenset(v) for k, v in self.categories.items()}))
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "phone_regions", tuple(self.phone_regions))
        object.__setattr__(self, "recognizers", tuple(self.recognizers))
        object.__setattr__(self, "ner_entities", tuple(self.ner_entities))

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, salt: bytes | None = None) -> Redaction:
        """A Redaction from a plain mapping (JSON or YAML): the keys are this class's fields, except the
        salt, which is passed apart (never in a file), and ``recognizers`` (code, not data).

        ``{"mode": "strict", "fields": {"note": "text"}, "categories": {"region": ["eu", "us"]}}``
        """
        if not isinstance(spec, Mapping):
            raise ShimConfigError(f"redaction spec must be a mapping, got {type(spec).__name__}")
        allowed = {"mode", "fields", "default", "categories", "entities", "phone_regions", "ner_model",
                   "ner_entities", "cache_size"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ShimConfigError(f"redaction spec: unknown keys {unknown} (allowed: {sorted(allowed)}; "
                                  "the salt is passed apart)")
        kw: dict[str, Any] = dict(spec)
        for key in ("entities", "phone_regions", "ner_entities"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if "categories" in kw:
            kw["categories"] = {k: frozenset(str(x) for x in v) for k, v in kw["categories"].items()}
        return cls(**kw, salt=salt)

    def __repr__(self) -> str:  # never print the salt
        return (f"Redaction(mode={self.mode!r}, fields={dict(self.fields)!r}, default={self.default!r}, "
                f"categories={sorted(self.categories)!r}, salt={'<set>' if self.salt else None}, "
                f"entities={self.entities!r}, ner_model={self.ner_model!r})")
