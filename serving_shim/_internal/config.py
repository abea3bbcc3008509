"""Typed, keyword-only, immutable settings of the shim (validated once, at construction).

Nothing here reads the environment: an application that wants ``DRIFTLINE_*`` variables reads them
itself at start and passes the values in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from serving_shim.exceptions import ShimConfigError

__all__ = ["Policy", "BatchConfig", "Redaction", "DEFAULT_ENTITIES", "ShimConfigError"]

#: What happens to one field: ``keep`` as is, ``drop`` it, ``hash`` it (HMAC-SHA256 with a secret
#: salt: joinable, not readable), or ``redact`` it (Presidio replaces each entity found with ``<TYPE>``).
Policy = Literal["keep", "drop", "hash", "redact"]
_POLICIES = ("keep", "drop", "hash", "redact")

#: Entities the default pattern recognizers look for (Presidio names).
DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "IBAN_CODE", "US_SSN",
)


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
    """What may leave the process. Applied on the background worker, before serialisation.

    - ``fields``: a policy per feature or slice name (see :data:`Policy`).
    - ``default``: the policy of string fields not named in ``fields`` (``redact``: Presidio looks
      at them). Numbers and nulls cannot hold text PII and pass unless their field says otherwise
      (name identifier-like numeric fields with ``hash`` or ``drop``).
    - ``categories``: known values per field (``{"region": {"eu", "us"}}``) that pass untouched.
    - ``salt``: the secret key of ``hash`` (required when any field uses it; keep it out of code).
    - ``entities``: the Presidio entities to find; ``phone_regions``: regions whose national phone
      formats are recognised (international ``+…`` numbers are found whatever the region).
    - ``ner_model``: an installed spaCy model name or path (e.g. ``en_core_web_sm``) adding
      PERSON, LOCATION… via NER. Never downloaded: a missing model is an error at construction.
    - ``cache_size``: redacted values remembered (repeated values are not analysed again).
    """

    fields: Mapping[str, Policy] = field(default_factory=dict)
    default: Policy = "redact"
    categories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    salt: bytes | None = None
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    phone_regions: tuple[str, ...] = ("US",)
    ner_model: str | None = None
    ner_entities: tuple[str, ...] = ("PERSON",)
    cache_size: int = 10_000

    def __post_init__(self) -> None:
        for name, pol in {**self.fields, "(default)": self.default}.items():
            if pol not in _POLICIES:
                raise ShimConfigError(f"redaction policy of {name!r} must be one of {_POLICIES}, got {pol!r}")
        uses_hash = self.default == "hash" or "hash" in self.fields.values()
        if uses_hash and not self.salt:
            raise ShimConfigError("the 'hash' policy needs a secret salt (Redaction(salt=...))")
        if self.salt is not None and len(self.salt) < 16:
            raise ShimConfigError("salt must be at least 16 bytes")
        if self.cache_size < 0:
            raise ShimConfigError("cache_size must be >= 0")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "categories", MappingProxyType({k: frozenset(v) for k, v in self.categories.items()}))
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "phone_regions", tuple(self.phone_regions))

    def __repr__(self) -> str:  # never print the salt
        return (f"Redaction(fields={dict(self.fields)!r}, default={self.default!r}, "
                f"categories={sorted(self.categories)!r}, salt={'<set>' if self.salt else None}, "
                f"entities={self.entities!r}, ner_model={self.ner_model!r})")
