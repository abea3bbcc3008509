"""Server-side redaction: events from senders that are not the SDK are redacted before they are stored.

The ingest API (both sinks) and the Kafka collector pass every decoded batch through one
:class:`IngestRedaction` (the SDK's :class:`~serving_shim.Redaction`, same spec, configured on
``driftline serve`` / ``driftline collect``) before its good events are stored or produced, and before
its dead letters are kept:

- good events: feature and slice values, prediction labels and class names, label strings, error types
  (also in metric windows) and deploy annotations, each by its policy. Values the SDK already redacted
  pass unchanged (its tokens are not tokenized again; its ``<TYPE>`` placeholders hold nothing to find).
- dead letters: the payload becomes ``{"sha256": <hex of the payload as received>, "redacted": <the
  payload with every string redacted by the same policies>}`` (a payload that is not JSON is redacted as
  free text, or left out in strict mode), and the reason is redacted as free text. An operator who needs
  the raw bytes opts in with ``raw_dead_letters``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from hashlib import sha256
from pathlib import Path
from typing import Any

import msgspec

from collector.ingest import Decoded
from collector.subjects import SubjectHasher, is_subject_hash
from collector.writer import MAX_DEAD_LETTER_PAYLOAD, DeadLetter
from serving_shim import Redaction
from serving_shim._internal.events import safe_name
from serving_shim._internal.redaction import Redactor
from serving_shim.contract import MAX_STRING_LEN, EventError
from serving_shim.exceptions import ShimConfigError

__all__ = ["IngestRedaction", "load_redaction"]

log = logging.getLogger("driftline.collector")

#: event keys whose strings are identifiers of the contract (redacted as free text in dead letters)
_ID_KEYS = frozenset({"schema_version", "kind", "event_id", "model", "model_version", "ts", "request_id", "status",
                      "window_start", "source"})


def load_redaction(spec: str, salt: str = "") -> Redaction | None:
    """The server's Redaction from ``--redaction``/``DRIFTLINE_REDACTION``: empty for the default (pattern
    recognizers on every string), ``off`` for none, inline JSON, or a JSON or YAML file of the same
    spec as :meth:`Redaction.from_spec`; the salt comes apart (``DRIFTLINE_REDACTION_SALT``)."""
    spec = spec.strip()
    key = salt.encode() if salt else None
    if spec.lower() == "off":
        return None
    if not spec:
        return Redaction(salt=key)
    if spec.startswith("{"):
        try:
            data = json.loads(spec)
        except ValueError as exc:
            raise ShimConfigError(f"redaction: not valid JSON ({exc})") from None
    else:
        path = Path(spec)
        if not path.is_file():
            raise ShimConfigError(f"redaction: no spec file {spec!r}")
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ShimConfigError(f"redaction: {spec} is not valid YAML or JSON ({type(exc).__name__})") from None
    return Redaction.from_spec(data or {}, salt=key)


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")


def _clip(s: str) -> str:
    return s[:MAX_STRING_LEN]


def _update(obj: Any, **changes: Any) -> Any:
    """A copy of a contract model (frozen) or the decoded fast-path object itself with ``changes``."""
    if isinstance(obj, msgspec.Struct):
        for k, v in changes.items():
            setattr(obj, k, v)
        return obj
    return obj.model_copy(update=changes)


class IngestRedaction:
    """Applies one :class:`Redaction` to decoded batches (good events and dead letters)."""

    def __init__(self, redaction: Redaction | None, *, raw_dead_letters: bool = False,
                 subject_salt: bytes | None = None) -> None:
        self.redaction = redaction
        self.raw_dead_letters = raw_dead_letters
        # subjects are hashed whatever the redaction (even 'off'): the salt is the redaction's, or given apart
        self.subjects = SubjectHasher(subject_salt or (redaction.salt if redaction is not None else None))
        self._red = Redactor(redaction) if redaction is not None else None
        self._memo: dict[tuple[str, str], str | None] = {}  # (field, value) -> result: values repeat
        #: fields whose numbers are hashed or dropped too (every other number passes)
        self._num_fields = frozenset(k for k, p in (redaction.fields if redaction else {}).items()
                                     if p in ("hash", "drop"))

    def _field(self, red: Redactor, name: str, value: str) -> str | None:
        key = (name, value)
        try:
            return self._memo[key]
        except KeyError:
            pass
        if len(self._memo) >= 50_000:
            self._memo.clear()
        r = self._memo[key] = red.field(name, value)
        return r

    def apply(self, decoded: Decoded) -> Decoded:
        """Redact ``decoded`` in place (and return it)."""
        self._hash_subjects(decoded)
        red = self._red
        if red is not None:
            preds = decoded.good.get("prediction")
            if preds:  # the batch's free texts through the NER pipeline at once
                red.prefetch_values(m for e in preds for m in (e.features, e.slices))
            for kind, events in decoded.good.items():
                fn = getattr(self, f"_{kind}", None)
                if fn is not None and events:
                    decoded.good[kind] = self._events(decoded, kind, fn, red, events)
        decoded.dead[:] = self.dead_letters(decoded.dead)
        return decoded

    def _events(self, decoded: Decoded, kind: str, fn: Any, red: Redactor, events: list[Any]) -> list[Any]:
        """Each event redacted; one that cannot be is rejected (field ``(redaction)``), never stored as sent."""
        out, kept_idx = [], []
        for e, i in zip(events, decoded.indices[kind], strict=True):
            try:
                out.append(fn(red, e))
                kept_idx.append(i)
            except Exception as exc:  # noqa: BLE001 - the events beside it go on; nothing of it is logged
                err = EventError(i, "(redaction)", f"redaction failed ({type(exc).__name__})", None)
                decoded.errors.append(err)
                decoded.dead.append(DeadLetter.from_error("redaction", kind, err, ""))
        if len(out) != len(events):
            decoded.indices[kind] = kept_idx
            decoded.errors.sort(key=lambda x: x.index)
        return out

    def _hash_subjects(self, decoded: Decoded) -> None:
        """Raw subjects become their salted hashes; without a salt their events are rejected (field ``subject``)
        with nothing of them kept (the SDK's hashes pass as they are)."""
        for kind in ("prediction", "label"):
            events = decoded.good.get(kind)
            if not events or all(e.subject is None or is_subject_hash(e.subject) for e in events):
                continue
            out, kept_idx = [], []
            for e, i in zip(events, decoded.indices[kind], strict=True):
                if e.subject is None or is_subject_hash(e.subject):
                    out.append(e)
                elif self.subjects.can_hash:
                    out.append(_update(e, subject=self.subjects(e.subject)))
                else:
                    err = EventError(i, "subject", "a raw subject needs the server's salt to be hashed "
                                                   "(DRIFTLINE_REDACTION_SALT), or send the SDK's hash", None)
                    decoded.errors.append(err)
                    decoded.dead.append(DeadLetter.from_error("redaction", kind, err, ""))
                    continue
                kept_idx.append(i)
            decoded.good[kind] = out
            if len(out) != len(events):
                decoded.indices[kind] = kept_idx
                decoded.errors.sort(key=lambda x: x.index)

    # -- good events -----------------------------------------------------------------------------
    def _values(self, red: Redactor, d: dict[str, Any]) -> dict[str, Any]:
        out = None
        for k, v in d.items():
            if v.__class__ is str:
                r = self._field(red, k, v)
            elif v is None or k not in self._num_fields:
                continue
            else:
                r = red.field(k, repr(v))
            if r != v:
                if out is None:
                    out = dict(d)
                if r is None:
                    del out[k]
                else:
                    out[k] = _clip(r)
        return d if out is None else out

    def _prediction(self, red: Redactor, e: Any) -> Any:
        ch: dict[str, Any] = {}
        if e.features and (f := self._values(red, e.features)) is not e.features:
            ch["features"] = f
        if e.slices and (s := self._values(red, e.slices)) is not e.slices:
            ch["slices"] = s
        p = e.prediction
        pch: dict[str, Any] = {}
        if p.label and (lab := _clip(self._field(red, "label", p.label) or "")) != p.label:
            pch["label"] = lab
        if p.probabilities:
            probs = {safe_name(red.label(k), "class")[:128]: v for k, v in p.probabilities.items()}
            if list(probs) != list(p.probabilities):
                pch["probabilities"] = probs
        if pch:
            ch["prediction"] = _update(p, **pch)
        if e.error_type and (et := safe_name(red.error_type(e.error_type))) != e.error_type:
            ch["error_type"] = et
        return _update(e, **ch) if ch else e

    def _label(self, red: Redactor, e: Any) -> Any:
        if e.label and (lab := _clip(red.label(e.label))) != e.label:
            return _update(e, label=lab)
        return e

    def _deploy(self, red: Redactor, e: Any) -> Any:
        ann = {k: _clip(v) for k, v in red.annotations(e.annotations).items()}
        return _update(e, annotations=ann) if ann != e.annotations else e

    def _metric_window(self, red: Redactor, e: Any) -> Any:
        errors: dict[str, int] = {}
        for k, c in e.errors.items():
            name = safe_name(red.error_type(k))
            errors[name] = errors.get(name, 0) + c
        return _update(e, errors=errors) if errors != e.errors else e

    # -- dead letters ----------------------------------------------------------------------------
    def dead_letters(self, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
        letters = [self._subject_hashes(d) for d in letters]
        if self.raw_dead_letters:
            return letters
        return [self.dead_letter(d) for d in letters]

    def _subject_hashes(self, d: DeadLetter) -> DeadLetter:
        """The dead letter with the hashes of the subjects in its payload, so a subject's deletion finds it."""
        if d.subject_hashes or b"subject" not in d.payload:
            return d
        try:
            hashes = self.subjects.hashes_in(json.loads(d.payload.decode("utf-8", "replace")))
        except (ValueError, RecursionError):
            return d
        return dataclasses.replace(d, subject_hashes=hashes) if hashes else d

    def dead_letter(self, d: DeadLetter) -> DeadLetter:
        raw = d.payload                             # the bytes as received (writer.dead_letter_payload)
        digest = sha256(raw).hexdigest()
        try:
            return self._dead_letter(d, digest, raw.decode("utf-8", "replace"))
        except Exception as exc:  # noqa: BLE001 - the hash only, never the bytes; nothing of it is logged
            log.warning("dead letter redaction failed (%s): kept its hash only", type(exc).__name__)
            return dataclasses.replace(d, payload=_json({"sha256": digest, "redacted": None}),
                                       reason=d.reason.split(":", 1)[0][:128], event_id="")

    def _dead_letter(self, d: DeadLetter, digest: str, text: str) -> DeadLetter:
        red = self._red
        if red is None:  # no redaction configured: the hash only, never the bytes
            return dataclasses.replace(d, payload=_json({"sha256": digest, "redacted": None}))
        try:
            obj: Any = json.loads(text)
        except ValueError:
            redacted: Any = None if red.cfg.mode == "strict" else red.redact_text(text)
        else:
            redacted = self._walk_batch(red, obj)
        payload = _json({"sha256": digest, "redacted": redacted})
        if len(payload) > MAX_DEAD_LETTER_PAYLOAD:  # a cut JSON text could end inside a value: keep the hash only
            payload = _json({"sha256": digest, "redacted": None, "truncated": True})
        return dataclasses.replace(d, payload=payload, reason=red.redact_text(d.reason),
                                   event_id=red.redact_text(d.event_id) if d.event_id else d.event_id)

    def _walk_batch(self, red: Redactor, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self._walk_event(red, x) for x in obj]
        if isinstance(obj, dict) and isinstance(obj.get("events"), list):
            return {**{k: self._walk_any(red, v) for k, v in obj.items() if k != "events"},
                    "events": [self._walk_event(red, x) for x in obj["events"]]}
        return self._walk_event(red, obj)

    def _walk_event(self, red: Redactor, ev: Any) -> Any:
        if not isinstance(ev, dict):
            return self._walk_any(red, ev)
        out: dict[str, Any] = {}
        for k, v in ev.items():
            if k in ("features", "slices") and isinstance(v, dict):
                out[k] = {fk: (red.field(fk, fv) if isinstance(fv, str) else self._walk_any(red, fv))
                          for fk, fv in v.items() if red.policy(fk) != "drop"}
            elif k == "prediction" and isinstance(v, dict):
                out[k] = {pk: (red.label(pv) if pk == "label" and isinstance(pv, str)
                               else {red.label(str(c)): self._walk_any(red, x) for c, x in pv.items()}
                               if pk == "probabilities" and isinstance(pv, dict) else self._walk_any(red, pv))
                          for pk, pv in v.items()}
            elif k == "label" and isinstance(v, str):
                out[k] = red.label(v)
            elif k == "subject" and isinstance(v, str):
                out[k] = self.subjects(v) if self.subjects.can_hash or is_subject_hash(v) else "<SUBJECT>"
            elif k == "error_type" and isinstance(v, str):
                out[k] = red.error_type(v)
            elif k == "errors" and isinstance(v, dict):
                out[k] = {red.error_type(str(ek)): self._walk_any(red, ev_) for ek, ev_ in v.items()}
            elif k == "annotations" and isinstance(v, dict):
                out[k] = red.annotations({ak: av for ak, av in v.items() if isinstance(av, str)})
            elif k in _ID_KEYS and isinstance(v, str):
                out[k] = red.redact_text(v)
            else:
                out[k] = self._walk_any(red, v)
        return out

    def _walk_any(self, red: Redactor, v: Any) -> Any:
        """A value where the contract expects none: every string redacted (tokenized in strict mode)."""
        if isinstance(v, str):
            return red.hash(v) if red.cfg.mode == "strict" else red.redact_text(v)
        if isinstance(v, list):
            return [self._walk_any(red, x) for x in v]
        if isinstance(v, dict):
            return {(red.hash(str(k)) if red.cfg.mode == "strict" else red.redact_text(str(k))): self._walk_any(red, x)
                    for k, x in v.items()}
        return v
