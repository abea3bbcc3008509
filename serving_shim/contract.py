"""The Driftline event contract: every event that crosses a process boundary, defined once.

Schema version 1. Four kinds of event:

- ``prediction``: one sampled model call (features, prediction, slices, latency, status).
- ``label``: delayed ground truth, joined to predictions by ``request_id`` (may arrive first).
- ``metric_window``: pre-aggregated counts for *every* request in an interval (requests, errors by
  type, latency histogram over :data:`LATENCY_BUCKETS_MS`), so SLIs are exact while payloads are sampled.
- ``deploy``: a model version going live, with annotations.

On the wire a batch is an envelope ``{"schema_version": 1, "kind": "prediction", "events": [...]}``
(one Kafka message, or one HTTP body). :func:`json_schema` exports the JSON Schema so servers in
other languages can send events over HTTP.

Validation never raises on bad *events*: :func:`validate_events` returns the good events and one
:class:`EventError` per bad one, naming the field and the reason.

Limits (the same in the models and in the compiled fast path): names 128 characters, strings 8,192,
finite numbers only, at most :data:`MAX_FEATURES` features, :data:`MAX_CLASSES` probabilities,
:data:`MAX_SLICES` slices, :data:`MAX_ANNOTATIONS` annotations, :data:`MAX_ERROR_TYPES` error types,
counts up to :data:`MAX_COUNT`, nesting :data:`MAX_DEPTH` levels per event, :data:`MAX_BATCH_EVENTS`
events per batch (counted while reading), and event times inside a :class:`TimeWindow` around the
reader's clock (7 days back, 1 hour ahead unless the reader passes another).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re as _re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec as _ms
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

from serving_shim._internal.framing import MAX_DEPTH, Split, compression_of, is_ndjson, split_batch, too_deep
from serving_shim.exceptions import BatchTooLarge, ContractError

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
    "BatchTooLarge",
    "TimeWindow",
    "DEFAULT_WINDOW",
    "MAX_DEPTH",
    "MAX_BATCH_EVENTS",
    "Split",
    "read_batch",
    "compression_of",
    "MODEL_FOR_KIND",
    "validate_events",
    "validate_batch_fast",
    "validate_raw_events",
    "encode_batch",
    "decode_batch",
    "json_schema",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
#: Upper bounds (ms, inclusive) of the latency histogram buckets; one overflow bucket follows.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)
KINDS = ("prediction", "label", "metric_window", "deploy")

MAX_FEATURES = 1000
MAX_CLASSES = 1000
MAX_SLICES = 64
MAX_ANNOTATIONS = 64
MAX_ERROR_TYPES = 64
#: requests (and error and bucket counts) of one metric window from one replica: 10 billion is ~2.8M
#: requests a second for an hour; sums over a year of windows stay exact in a double
MAX_COUNT = 10**10
MAX_NAME_LEN = 128
MAX_STRING_LEN = 8192
#: events in one batch (an HTTP body or a Kafka message), unless the reader allows another number
MAX_BATCH_EVENTS = 10_000

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
    errors: dict[Name, Annotated[int, Field(ge=0, le=MAX_COUNT)]] = Field(default_factory=dict, max_length=MAX_ERROR_TYPES)
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
            raise ValueError(f"latency_buckets add up to {sum(self.latency_buckets)}, more than requests={self.requests}")
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


def _outside_window(kind: str, good: list[Any], window: TimeWindow | None) -> list[tuple[int, EventError]]:
    """(position in ``good``, error) for each event whose time is outside ``window``; the same check for
    the models and the fast path's objects (same attributes; a naive time is UTC)."""
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
            out.append((j, EventError(-1, name, f"{t.isoformat()} is outside the accepted window of {window.describe()} "
                                               f"({lo.isoformat(timespec='seconds')} to {hi.isoformat(timespec='seconds')})",
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
    good, indices, errors = _validate_models(kind, items)
    good, _, errors = _apply_window(kind, good, indices, errors, window)
    return good, errors


def _apply_window(kind: str, good: list[Any], indices: list[int], errors: list[EventError],
                  window: TimeWindow | None) -> tuple[list[Any], list[int], list[EventError]]:
    late = _outside_window(kind, good, window)
    if not late:
        return good, indices, errors
    drop = {j for j, _ in late}
    errors = sorted(errors + [EventError(indices[j], e.field, e.reason, e.event_id) for j, e in late],
                    key=lambda e: e.index)
    return ([g for j, g in enumerate(good) if j not in drop], [i for j, i in enumerate(indices) if j not in drop],
            errors)


def _validate_models(kind: str, items: list[Any]) -> tuple[list[Any], list[int], list[EventError]]:
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
            errors.append(EventError(i, "schema_version", "Field required", raw.get("event_id") if isinstance(raw.get("event_id"), str) else None))
            continue
        try:
            good.append(model.model_validate(raw))
            indices.append(i)
        except ValidationError as exc:
            errors.append(_errors_of(i, raw, exc))
    return good, indices, errors


# -- fast path ------------------------------------------------------------------------------------
#
# The collector reads tens of thousands of events a second on one core, so the high-volume kinds have a
# second, compiled reading of the same contract (msgspec). It is strictly narrower than the pydantic
# models above: it accepts only events that the models accept too (names end in ``\Z``, not ``$``;
# no coercion from strings or booleans; finite numbers only), and turns them into objects with the
# same attributes and the same values. Whatever it does not accept goes through the models, which
# give the verdict and the error message. tests/unit/serving_shim/test_contract_fastpath.py checks both
# properties on generated events, valid and broken.

#: model, model_version, error_type: checked after decoding, against a cache (they repeat in every event)
_F_NAME = str
_NAME_RE = _re.compile(rf"[A-Za-z0-9_.:\-/]{{1,{MAX_NAME_LEN}}}")
_names_ok: dict[str, bool] = {}


def _name_ok(s: str) -> bool:
    ok = _names_ok.get(s)
    if ok is None:
        if len(_names_ok) > 10_000:
            _names_ok.clear()
        ok = _names_ok[s] = _NAME_RE.fullmatch(s) is not None
    return ok

_F_KEY = Annotated[str, _ms.Meta(min_length=1, max_length=MAX_NAME_LEN)]
_F_ID = Annotated[str, _ms.Meta(min_length=1, max_length=256)]
_F_SHORT = Annotated[str, _ms.Meta(max_length=MAX_STRING_LEN)]
#: ISO 8601 with at most microseconds (more digits are rounded by one parser and cut by the other)
_F_TS = Annotated[str, _ms.Meta(pattern=r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?\Z")]
_F_FLOAT = Annotated[float, _ms.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]  # finite


class _FastPrediction(_ms.Struct, forbid_unknown_fields=True, gc=False):
    value: _F_FLOAT | None = None
    label: _F_SHORT | None = None
    score: _F_FLOAT | None = None
    probabilities: Annotated[dict[_F_KEY, _F_FLOAT], _ms.Meta(max_length=MAX_CLASSES)] | None = None


class _FastPredictionEvent(_ms.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: Literal[1]
    event_id: _F_ID
    model: _F_NAME
    ts: _F_TS
    model_version: _F_NAME
    request_id: _F_ID
    prediction: _FastPrediction
    features: Annotated[dict[_F_KEY, _F_FLOAT | _F_SHORT | None], _ms.Meta(max_length=MAX_FEATURES)] = {}
    slices: Annotated[dict[_F_KEY, _F_SHORT], _ms.Meta(max_length=MAX_SLICES)] = {}
    latency_ms: Annotated[float, _ms.Meta(ge=0, le=1.7976931348623157e308)] | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: _F_NAME | None = None
    subject: _F_ID | None = None
    kind: Literal["prediction"] = "prediction"


class _FastLabelEvent(_ms.Struct, forbid_unknown_fields=True, gc=False):
    schema_version: Literal[1]
    event_id: _F_ID
    model: _F_NAME
    ts: _F_TS
    request_id: _F_ID
    value: _F_FLOAT | None = None
    label: _F_SHORT | None = None
    subject: _F_ID | None = None
    kind: Literal["label"] = "label"


_fromiso = _dt.datetime.fromisoformat


def _prediction_ok(e: Any) -> bool:
    if not (_name_ok(e.model) and _name_ok(e.model_version)) or (e.error_type is not None and not _name_ok(e.error_type)):
        return False
    p = e.prediction
    if p.value is None and p.label is None and p.score is None and not p.probabilities:
        return False
    if e.status == "ok" and e.error_type is not None:
        return False
    return _parse_ts(e)


def _label_ok(e: Any) -> bool:
    if not _name_ok(e.model):
        return False
    if e.value is None and e.label is None:
        return False
    return _parse_ts(e)


def _parse_ts(e: Any) -> bool:
    """The event's ISO time string becomes a datetime, as the models would make it (the first and the last
    years, where an offset can leave the calendar, are left to the models)."""
    try:
        t = _fromiso(e.ts)
    except ValueError:
        return False
    e.ts = t
    return 1 < t.year < 9999


_FAST: dict[str, tuple[Any, Any]] = {
    "prediction": (_ms.json.Decoder(_FastPredictionEvent), _prediction_ok),
    "label": (_ms.json.Decoder(_FastLabelEvent), _label_ok),
}


class _Envelope(_ms.Struct):
    events: list[_ms.Raw]
    kind: Any = None


#: for each fast kind, decoders of a whole envelope / array of its events in one pass
_WHOLE = {
    kind: (_ms.json.Decoder(_ms.defstruct(f"_Envelope_{kind}", [("events", list[dec.type]), ("kind", Any, None)])),
           _ms.json.Decoder(list[dec.type]))
    for kind, (dec, _) in _FAST.items()
}


def validate_batch_fast(data: bytes, kind: str, *, max_events: int = MAX_BATCH_EVENTS,
                        window: TimeWindow | None = DEFAULT_WINDOW) -> list[Any] | None:
    """All the events of a wire batch of ``kind`` in one pass, if every one of them passes the fast
    path (times inside ``window`` included); ``None`` otherwise (then :func:`read_batch` and
    :func:`validate_raw_events` sort the good from the bad, and count the events while reading)."""
    whole = _WHOLE.get(kind)
    if whole is None or not isinstance(data, (bytes, bytearray)):
        return None
    # every event of a good batch has one "event_id" key: no more of them, no more events than allowed
    if data.count(b'"event_id"') > max_events:
        return None
    stripped = data.lstrip()
    if not stripped or is_ndjson(stripped):
        return None
    env_dec, arr_dec = whole
    try:
        if stripped[:1] == b"{":
            env = env_dec.decode(stripped)
            if env.kind not in (None, kind):
                return None
            events = env.events
        else:
            events = arr_dec.decode(stripped)
    except (_ms.DecodeError, _ms.ValidationError, UnicodeDecodeError, RecursionError):  # bad UTF-8: the last but one
        return None
    ok = _FAST[kind][1]
    for e in events:
        if not ok(e):
            return None
    if _outside_window(kind, events, window):
        return None
    return events


def read_batch(data: bytes, kind: str | None = None, *, max_events: int = MAX_BATCH_EVENTS) -> tuple[str, Split]:
    """The kind and the events of a wire batch (envelope, array, one object or NDJSON), each event as its
    own bytes, counted while reading. Raises :class:`BatchTooLarge` past ``max_events`` and
    :class:`ContractError` for a batch that cannot be read at all (empty, not JSON, a wrong kind)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    split = split_batch(bytes(data), max_events=max_events)
    env_kind = split.kind
    if env_kind is not None and not isinstance(env_kind, str):
        raise ContractError(f"kind: must be a string, got {type(env_kind).__name__}")
    if kind is not None and env_kind not in (None, kind):
        raise ContractError(f"kind: envelope says {env_kind!r}, endpoint is {kind!r}")
    kind = env_kind or kind
    if kind is None:
        raise ContractError("kind: missing (name it in the envelope or the endpoint)")
    if kind not in MODEL_FOR_KIND:
        raise ContractError(f"kind: unknown event kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind, split


def _load_one(raw: Any) -> Any:
    """One event's JSON as Python objects, or the EventError that says why it cannot be read."""
    b = bytes(raw)
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError as exc:
        return EventError(-1, "(event)", f"not valid UTF-8 (byte 0x{b[exc.start]:02x} at position {exc.start})")
    if too_deep(b):
        return EventError(-1, "(event)", f"nested deeper than {MAX_DEPTH} levels")
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        return EventError(-1, "(event)", f"not valid JSON ({exc.msg}: column {exc.colno})")
    except RecursionError:
        return EventError(-1, "(event)", f"nested deeper than {MAX_DEPTH} levels")


def validate_raw_events(kind: str, raws: list[Any], *, window: TimeWindow | None = DEFAULT_WINDOW,
                        lines: list[int] | None = None) -> tuple[list[Any], list[int], list[EventError]]:
    """Validate a batch of raw events (JSON bytes or ``msgspec.Raw`` each) of one kind.

    Returns ``(good, indices, errors)``: the good events (fast-path objects or contract models, with
    the same attributes), their positions in the batch, and one :class:`EventError` per rejected event
    (with its NDJSON line when ``lines`` gives them). Each event is read on its own: one that is not
    UTF-8, not JSON or nested too deep is rejected alone.
    """
    fast = _FAST.get(kind)
    good: list[Any] = []
    indices: list[int] = []
    errors: list[EventError] = []
    slow: list[tuple[int, Any]] = []
    if fast is not None:
        decoder, ok = fast
        for i, raw in enumerate(raws):
            try:
                ev = decoder.decode(raw)
            except (_ms.ValidationError, _ms.DecodeError, UnicodeDecodeError, RecursionError):
                slow.append((i, raw))
                continue
            if ok(ev):
                good.append(ev)
                indices.append(i)
            else:
                slow.append((i, raw))
    else:
        slow = list(enumerate(raws))
    if slow:
        items, positions = [], []
        for i, raw in slow:
            item = _load_one(raw)
            if isinstance(item, EventError):
                errors.append(EventError(i, item.field, item.reason))
            else:
                items.append(item)
                positions.append(i)
        g, gi, errs = _validate_models(kind, items)
        good.extend(g)
        indices.extend(positions[j] for j in gi)
        errors.extend(EventError(positions[e.index], e.field, e.reason, e.event_id) for e in errs)
        if good and indices != sorted(indices):
            order = sorted(range(len(indices)), key=indices.__getitem__)
            good = [good[j] for j in order]
            indices = [indices[j] for j in order]
        errors.sort(key=lambda e: e.index)
    good, indices, errors = _apply_window(kind, good, indices, errors, window)
    if lines is not None and errors:
        errors = [EventError(e.index, e.field, e.reason, e.event_id, lines[e.index]) for e in errors]
    return good, indices, errors


def _default(o: Any) -> Any:
    if isinstance(o, _dt.datetime):
        return as_utc(o).isoformat()
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json", exclude_none=True)
    if isinstance(o, _ms.Struct):
        return {k: v for k, v in _ms.to_builtins(o).items() if v is not None}
    raise TypeError(f"cannot encode {type(o).__name__}")


def encode_batch(kind: str, events: list[Any]) -> bytes:
    """One wire batch (Kafka message value or HTTP body): events may be models or plain dicts."""
    if kind not in MODEL_FOR_KIND:
        raise ContractError(f"kind: unknown event kind {kind!r}")
    payload = {"schema_version": SCHEMA_VERSION, "kind": kind, "events": events}
    return json.dumps(payload, default=_default, separators=(",", ":")).encode()


try:  # orjson parses about 3x faster than json; both give the same objects
    import orjson as _orjson

    def _loads(text: str) -> Any:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            return json.loads(text)  # for json's error message (line and column)
except ImportError:  # pragma: no cover - orjson is a dependency
    _loads = json.loads


def decode_batch(data: bytes, kind: str | None = None, *, max_events: int = MAX_BATCH_EVENTS) -> tuple[str, list[Any]]:
    """Read a wire batch: an envelope, a bare JSON array (``kind`` required), one event, or NDJSON lines.

    Returns ``(kind, raw_events)`` as Python objects; events are validated separately with
    :func:`validate_events`. Raises :class:`ContractError` when the batch, or any event in it, cannot
    be read (:func:`read_batch` and :func:`validate_raw_events` reject such events one by one instead).
    """
    kind, split = read_batch(data, kind, max_events=max_events)
    out = []
    for i, raw in enumerate(split.raws):
        item = _load_one(raw)
        if isinstance(item, EventError):
            where = f"line {split.lines[i]}" if split.lines is not None else f"event {i}"
            raise ContractError(f"body: {where}: {item.reason}")
        out.append(item)
    return kind, out


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
