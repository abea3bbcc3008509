"""The Driftline event contract: every event that crosses a process boundary, defined once.

Schema version 1. Four kinds of event:

- ``prediction``: one sampled model call (features, prediction, slices, latency, status).
- ``label``: delayed ground truth, joined to predictions by ``request_id`` (may arrive first).
- ``metric_window``: pre-aggregated counts for *every* request in an interval (requests, errors by
  type, latency histogram over :data:`LATENCY_BUCKETS_MS`), so SLIs are exact while payloads are sampled.
- ``deploy``: a model version going live, with annotations.

On the wire a batch is an envelope ``{"schema_version": 1, "kind": "prediction", "events": [...]}``
(one Kafka message, or one HTTP body; the codec is :mod:`serving_shim.codec`). :func:`json_schema`
exports the JSON Schema so servers in other languages can send events over HTTP.

Validation never raises on bad *events*: :func:`validate_events` returns the good events and one
:class:`EventError` per bad one, naming the field and the reason.

Limits (the same in the models and in the collector's compiled reader): names 128 characters, strings 8,192,
finite numbers only, at most :data:`MAX_FEATURES` features, :data:`MAX_CLASSES` probabilities,
:data:`MAX_SLICES` slices, :data:`MAX_ANNOTATIONS` annotations, :data:`MAX_ERROR_TYPES` error types,
counts up to :data:`MAX_COUNT`, nesting ``serving_shim.codec.MAX_DEPTH`` levels per event, :data:`MAX_BATCH_EVENTS`
events per batch (counted while reading), and event times inside a :class:`TimeWindow` around the
reader's clock (7 days back, 1 hour ahead unless the reader passes another).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from serving_shim._internal.limits import (
    KINDS,
    LATENCY_BUCKETS_MS,
    MAX_ANNOTATIONS,
    MAX_BATCH_EVENTS,
    MAX_CLASSES,
    MAX_COUNT,
    MAX_ERROR_TYPES,
    MAX_FEATURES,
    MAX_NAME_LEN,
    MAX_SLICES,
    MAX_STRING_LEN,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
)
from serving_shim.exceptions import ContractError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "KINDS",
    "LATENCY_BUCKETS_MS",
    "PredictionEvent",
    "Prediction",
    "LabelEvent",
    "MetricWindowEvent",
    "DeployEvent",
    "Event",
    "EventError",
    "ContractError",
    "TimeWindow",
    "DEFAULT_WINDOW",
    "MAX_BATCH_EVENTS",
    "MODEL_FOR_KIND",
    "as_utc",
    "validate_events",
    "validate_indexed",
    "apply_window",
    "outside_window",
    "json_schema",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LEN, pattern=r"^[A-Za-z0-9_.:\-/]+$")]
#: Feature, slice and class names: any non-empty string up to 128 characters (no regex on the hot path).
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LEN)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ShortStr = Annotated[str, StringConstraints(max_length=MAX_STRING_LEN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: The person an event is about (a user or customer id), for deletion and access requests. Stored only as its
#: salted hash (``h:`` and 32 hex digits, made by the SDK or, from other senders, by the server).
Subject = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SUBJECT_FIELD = Field(default=None, description="Optional id of the person the event is about (stored only as its "
                                                "salted hash; `driftline subjects delete|export`).")
#: A feature value: a finite number (booleans become 0/1), a string, or null (missing).
FeatureValue = FiniteFloat | ShortStr | None


def as_utc(v: _dt.datetime) -> _dt.datetime:
    """``v`` in UTC: a naive time is read as UTC, an aware one converted (ValueError where UTC cannot hold it)."""
    if v.tzinfo is None:
        return v.replace(tzinfo=_dt.UTC)
    try:
        return v.astimezone(_dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC time; a rejection, not a crash
        raise ValueError(f"{v.isoformat()} is out of range in UTC") from None


#: A time normalised to UTC (naive means UTC). The prediction's ``ts`` skips this on its hot path; the
#: writer reads a naive prediction time as UTC.
UtcDatetime = Annotated[_dt.datetime, AfterValidator(as_utc)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(description="Contract version; this build reads version 1.")
    event_id: Id = Field(description="Idempotency key: the same event sent twice is stored once.")
    model: Name

    @field_validator("schema_version", mode="before")
    @classmethod
    def _known_version(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer, got {type(v).__name__}")
        if v not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported schema_version {v} (this collector reads {list(SUPPORTED_SCHEMA_VERSIONS)})")
        return v

    @staticmethod
    def _finite(name: str, v: float | None) -> None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v}")


class Prediction(BaseModel):
    """What the model returned: a number (regression), a class label with an optional score,
    and/or class probabilities. At least one must be present."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: FiniteFloat | None = None
    label: ShortStr | None = None
    score: FiniteFloat | None = None
    probabilities: Annotated[dict[Key, FiniteFloat], Field(max_length=MAX_CLASSES)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Prediction:
        if self.value is None and self.label is None and self.score is None and not self.probabilities:
            raise ValueError("needs at least one of value, label, score, probabilities")
        return self


class PredictionEvent(_Event):
    """One sampled model call."""

    kind: Literal["prediction"] = "prediction"
    ts: _dt.datetime = Field(description="Time of the call (ISO 8601 or epoch seconds; naive means UTC).")
    # (no Python validator on this hot path: a naive ts is read as UTC when stored, see collector.writer)
    model_version: Name
    request_id: Id = Field(description="Joins labels to this prediction; also the sampling key.")
    features: dict[Key, FeatureValue] = Field(default_factory=dict, max_length=MAX_FEATURES)
    prediction: Prediction
    slices: dict[Key, ShortStr] = Field(default_factory=dict, max_length=MAX_SLICES)
    latency_ms: FiniteFloat | None = Field(default=None, ge=0)
    status: Literal["ok", "error"] = "ok"
    error_type: Name | None = None
    subject: Subject | None = SUBJECT_FIELD

    @model_validator(mode="after")
    def _status(self) -> PredictionEvent:
        if self.status == "ok" and self.error_type is not None:
            raise ValueError("error_type is only allowed when status is 'error'")
        return self


class LabelEvent(_Event):
    """Ground truth for an earlier (or later) prediction with the same ``request_id``."""

    kind: Literal["label"] = "label"
    ts: UtcDatetime
    request_id: Id
    value: float | None = None
    label: ShortStr | None = None
    subject: Subject | None = SUBJECT_FIELD

    @model_validator(mode="after")
    def _one(self) -> LabelEvent:
        if self.value is None and self.label is None:
            raise ValueError("needs value (regression) or label (classification)")
        self._finite("value", self.value)
        return self


class MetricWindowEvent(_Event):
    """Counts for every request of one model version in one interval, from one replica (``source``)."""

    kind: Literal["metric_window"] = "metric_window"
    model_version: Name
    window_start: UtcDatetime
    window_s: int = Field(ge=1, le=3600)
    source: Id = Field(description="Replica that counted; windows from several replicas add up.")
    requests: int = Field(ge=0, le=MAX_COUNT)
    errors: dict[Name, Annotated[int, Field(ge=0, le=MAX_COUNT)]] = Field(default_factory=dict,
                                                                          max_length=MAX_ERROR_TYPES)
    latency_buckets: list[Annotated[int, Field(ge=0, le=MAX_COUNT)]] = Field(
        description=f"Counts per latency bucket, upper bounds {list(LATENCY_BUCKETS_MS)} ms plus one overflow bucket.",
        max_length=len(LATENCY_BUCKETS_MS) + 1,
    )
    latency_sum_ms: FiniteFloat = Field(ge=0)

    @model_validator(mode="after")
    def _sums(self) -> MetricWindowEvent:
        if len(self.latency_buckets) != len(LATENCY_BUCKETS_MS) + 1:
            raise ValueError(
                f"latency_buckets must have {len(LATENCY_BUCKETS_MS) + 1} counts, got {len(self.latency_buckets)}"
            )
        if sum(self.errors.values()) > self.requests:
            raise ValueError(f"errors add up to {sum(self.errors.values())}, more than requests={self.requests}")
        if sum(self.latency_buckets) > self.requests:
            raise ValueError(f"latency_buckets add up to {sum(self.latency_buckets)}, "
                             f"more than requests={self.requests}")
        return self


class DeployEvent(_Event):
    """A model version going live (a deploy marker, and the version expected to serve)."""

    kind: Literal["deploy"] = "deploy"
    ts: UtcDatetime
    model_version: Name
    annotations: dict[Name, ShortStr] = Field(default_factory=dict, max_length=MAX_ANNOTATIONS)


Event = PredictionEvent | LabelEvent | MetricWindowEvent | DeployEvent
MODEL_FOR_KIND: dict[str, type[_Event]] = {
    "prediction": PredictionEvent,
    "label": LabelEvent,
    "metric_window": MetricWindowEvent,
    "deploy": DeployEvent,
}
_LIST_ADAPTERS = {k: TypeAdapter(list[m]) for k, m in MODEL_FOR_KIND.items()}  # type: ignore[valid-type]


@dataclass(frozen=True)
class EventError:
    """Why one event was rejected: its position in the batch, the field (dotted path) and the reason;
    for NDJSON, also the event's line in the body (1-based)."""

    index: int
    field: str
    reason: str
    event_id: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"index": self.index, "field": self.field, "reason": self.reason, "event_id": self.event_id}
        if self.line is not None:
            d["line"] = self.line
        return d


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _span(seconds: float) -> str:
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= n and seconds % n == 0:
            k = int(seconds // n)
            return f"{k} {unit}{'s' if k != 1 else ''}"
    return f"{seconds:g} seconds"


@dataclass(frozen=True, kw_only=True)
class TimeWindow:
    """Event times a reader accepts: from ``max_age_s`` before its clock (late events) to ``max_ahead_s``
    after it (clock skew). A deploy dated 9998 or a metric window dated 2300 is refused, naming the field
    and this window. ``clock`` is injectable for tests."""

    max_age_s: float = 7 * 86400.0
    max_ahead_s: float = 3600.0
    clock: Callable[[], _dt.datetime] = field(default=_utcnow, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_age_s", "max_ahead_s"):
            v = getattr(self, name)
            if not 0 <= v <= 1000 * 366 * 86400:  # NaN fails too; beyond, the bounds leave the calendar
                raise ValueError(f"{name}: must be between 0 and 1,000 years of seconds, got {v}")

    def bounds(self) -> tuple[_dt.datetime, _dt.datetime]:
        now = self.clock()
        return now - _dt.timedelta(seconds=self.max_age_s), now + _dt.timedelta(seconds=self.max_ahead_s)

    def describe(self) -> str:
        return f"{_span(self.max_age_s)} before to {_span(self.max_ahead_s)} after the server's clock"


#: The window readers apply unless they are given another (``None``: no window).
DEFAULT_WINDOW = TimeWindow()

_TIME_FIELD = {"prediction": "ts", "label": "ts", "deploy": "ts", "metric_window": "window_start"}


def outside_window(kind: str, good: list[Any], window: TimeWindow | None) -> list[tuple[int, EventError]]:
    """(position in ``good``, error) for each event whose time is outside ``window``; the same check for
    the models and the collector's fast-path objects (same attributes; a naive time is UTC)."""
    if window is None or not good:
        return []
    lo, hi = window.bounds()
    name = _TIME_FIELD[kind]
    out = []
    for j, e in enumerate(good):
        t = getattr(e, name)
        try:
            t = as_utc(t)
        except ValueError:  # year 1 or 9999 with an offset: outside any window, said as it came
            pass
        if not lo <= t <= hi:
            out.append((j, EventError(-1, name, f"{t.isoformat()} is outside the accepted window of "
                                               f"{window.describe()} ({lo.isoformat(timespec='seconds')} to "
                                               f"{hi.isoformat(timespec='seconds')})",
                                      e.event_id)))
    return out


def _collapse_feature_unions(errors: list[Any]) -> list[Any]:
    """A bad feature value fails every member of its union; report it once, in plain words (the reason
    of the member it was meant for: a string too long, a number not finite)."""
    out: list[Any] = []
    seen: set[tuple[Any, ...]] = set()
    for e in errors:
        loc = tuple(e["loc"])
        if len(loc) >= 3 and loc[0] == "features" and loc[2] != "[key]":
            key = loc[:2]
            if key in seen:
                continue
            seen.add(key)
            group = {x["type"]: x["msg"] for x in errors
                     if tuple(x["loc"])[:2] == key and len(x["loc"]) >= 3 and x["loc"][2] != "[key]"}
            if "string_too_long" in group:
                msg = group["string_too_long"]
            elif "finite_number" in group:
                msg = group["finite_number"]
            else:
                msg = "Value error, must be a finite number, a string or null"
            out.append({**e, "loc": key, "msg": msg})
        else:
            out.append(e)
    return out


def _errors_of(index: int, raw: Any, exc: ValidationError) -> EventError:
    first = exc.errors(include_url=False, include_input=False)
    fields, reasons = [], []
    first = _collapse_feature_unions(first)
    for e in first[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(event)"
        fields.append(loc)
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        reasons.append(f"{loc}: {msg}" if len(first) > 1 else msg)
    eid = raw.get("event_id") if isinstance(raw, dict) and isinstance(raw.get("event_id"), str) else None
    return EventError(index=index, field=fields[0], reason="; ".join(reasons), event_id=eid)


def validate_events(kind: str, items: list[Any], *,
                    window: TimeWindow | None = DEFAULT_WINDOW) -> tuple[list[Any], list[EventError]]:
    """Validate a batch of raw events (dicts) of one kind.

    Returns ``(good, errors)``: the good events as contract models, in order, and one
    :class:`EventError` per rejected event (times outside ``window`` included). Never raises for bad
    events; raises :class:`ContractError` only for an unknown ``kind``.
    """
    good, indices, errors = validate_indexed(kind, items)
    good, _, errors = apply_window(kind, good, indices, errors, window)
    return good, errors


def apply_window(kind: str, good: list[Any], indices: list[int], errors: list[EventError],
                 window: TimeWindow | None) -> tuple[list[Any], list[int], list[EventError]]:
    """Moves the good events whose time is outside ``window`` to the errors (``indices``: their positions
    in the batch); returns the new ``(good, indices, errors)``, errors in batch order."""
    late = outside_window(kind, good, window)
    if not late:
        return good, indices, errors
    drop = {j for j, _ in late}
    errors = sorted(errors + [EventError(indices[j], e.field, e.reason, e.event_id) for j, e in late],
                    key=lambda e: e.index)
    return ([g for j, g in enumerate(good) if j not in drop], [i for j, i in enumerate(indices) if j not in drop],
            errors)


def validate_indexed(kind: str, items: list[Any]) -> tuple[list[Any], list[int], list[EventError]]:
    """:func:`validate_events` by the models alone, without the time window: (good, their indices, errors)."""
    if kind not in MODEL_FOR_KIND:
        raise ContractError(f"kind: unknown event kind {kind!r} (expected one of {', '.join(KINDS)})")
    try:  # fast path: the whole batch is good
        return _LIST_ADAPTERS[kind].validate_python(items), list(range(len(items))), []
    except ValidationError:
        pass
    model = MODEL_FOR_KIND[kind]
    good: list[Any] = []
    indices: list[int] = []
    errors: list[EventError] = []
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            errors.append(EventError(i, "(event)", f"must be a JSON object, got {type(raw).__name__}"))
            continue
        if raw.get("kind", kind) != kind:
            errors.append(EventError(i, "kind", f"event of kind {raw.get('kind')!r} in a {kind!r} batch"))
            continue
        if "schema_version" not in raw:
            errors.append(EventError(i, "schema_version", "Field required",
                                     raw.get("event_id") if isinstance(raw.get("event_id"), str) else None))
            continue
        try:
            good.append(model.model_validate(raw))
            indices.append(i)
        except ValidationError as exc:
            errors.append(_errors_of(i, raw, exc))
    return good, indices, errors


def json_schema(kind: str | None = None) -> dict[str, Any]:
    """JSON Schema of one event kind, or of the batch envelope for all kinds."""
    if kind is not None:
        return MODEL_FOR_KIND[kind].model_json_schema()
    defs: dict[str, Any] = {}
    refs = []
    for m in MODEL_FOR_KIND.values():
        s = m.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(s.pop("$defs", {}))
        defs[m.__name__] = s
        refs.append({"$ref": f"#/$defs/{m.__name__}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Driftline event batch",
        "description": f"Driftline event contract, schema_version {SCHEMA_VERSION}.",
        "type": "object",
        "required": ["schema_version", "kind", "events"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "kind": {"enum": list(KINDS)},
            "events": {"type": "array", "items": {"oneOf": refs}},
        },
        "$defs": defs,
    }
