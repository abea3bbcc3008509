"""SLO specs in YAML (``version: driftline/v1``) → validated, normalised :class:`~slo_engine.model.Slo`.

Close to Sloth and OpenSLO::

    version: driftline/v1
    defaults:                      # optional, merged into every SLO's ``alerting``
      alerting: {resolve_after: 10m}
    slos:
      - name: fraud-availability
        model: fraud
        objective: 99.9            # percent
        window: 30d                # 28d or 30d
        sli:
          availability: {}         # or latency: {threshold_ms: 250}, freshness: {max_age: 5m},
                                   #    drift: {detector: drift}, accuracy: {slice: {region: eu}}
        alerting:
          tiers:                   # unless given: the period's table (alert_windows/google-28d|30d.yaml)
            - {name: page-fast, severity: page, burn_rate: 14.4, long: 1h, short: 5m}

Every problem is reported at once, each with its file, line and path (:class:`SpecError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from serving_shim.contract import LATENCY_BUCKETS_MS
from slo_engine.exceptions import SpecError, SpecProblem
from slo_engine.model import SLI_KINDS, Alerting, BurnTier, Sli, Slo

__all__ = ["SPEC_VERSION", "MAX_NODES", "load_specs", "parse_specs", "parse_duration"]

SPEC_VERSION = "driftline/v1"
_WINDOWS_DAYS = (28, 30)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_DUR = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v: Any) -> int:
    """``90s``, ``5m``, ``1h``, ``3d`` or an int of seconds → seconds (> 0)."""
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a duration")
    if isinstance(v, int) and v > 0:
        return v
    m = _DUR.match(str(v).strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{v!r} is not a duration (like 30s, 5m, 1h, 3d)")
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass
class _Node:
    """A YAML value with the line it starts on (1-based)."""

    value: Any
    line: int


#: Nodes a spec may have after its aliases are expanded (a few KB of YAML can otherwise name billions).
MAX_NODES = 100_000


class _TooLarge(Exception):
    pass


def _plain(node: yaml.Node, budget: list[int], scalars: yaml.SafeLoader) -> _Node:
    """The node as plain values, counting every node visited (each alias use counts again) against ``budget``."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, tuple[_Node, int]] = {}
        for k, v in node.value:
            key = str(k.value) if isinstance(k, yaml.ScalarNode) else "<a key that is not a scalar>"
            out[key] = (_plain(v, budget, scalars), k.start_mark.line + 1)
        return _Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_plain(v, budget, scalars) for v in node.value], line)
    return _Node(scalars.construct_object(node), line)  # scalars: int, float, bool, str


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[SpecProblem] = []

    def err(self, line: int, path: str, msg: str) -> None:
        self.problems.append(SpecProblem(self.file, line, path, msg))

    def mapping(self, n: _Node, path: str, allowed: tuple[str, ...]) -> dict[str, tuple[_Node, int]] | None:
        if not isinstance(n.value, dict):
            self.err(n.line, path, f"must be a mapping, got {type(n.value).__name__}")
            return None
        for k, (_, kline) in n.value.items():
            if k not in allowed:
                self.err(kline, f"{path}.{k}", f"unknown field (allowed: {', '.join(allowed)})")
        return n.value

    def get(self, m: dict[str, tuple[_Node, int]], key: str, path: str, line: int, kind: Any, *,
            required: bool = False, default: Any = None) -> Any:
        if key not in m:
            if required:
                self.err(line, f"{path}.{key}", "is required")
            return default
        n = m[key][0]
        v = n.value
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if kind == "duration":
            try:
                return parse_duration(v)
            except ValueError as exc:
                self.err(n.line, f"{path}.{key}", str(exc))
                return default
        if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
            self.err(n.line, f"{path}.{key}", f"must be {getattr(kind, '__name__', kind)}, got {v!r}")
            return default
        return v


def parse_specs(text: str, file: str = "<spec>", *, max_nodes: int = MAX_NODES) -> list[Slo]:
    """Validate and normalise a spec document. Raises :class:`SpecError` listing every problem, or naming
    the limit when the document has more than ``max_nodes`` nodes with its aliases expanded."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        plain = _plain(root, [max_nodes], yaml.SafeLoader("")) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError([SpecProblem(file, (mark.line + 1) if mark else 1, "", f"not valid YAML: {exc}")]) from None
    except _TooLarge:
        raise SpecError([SpecProblem(file, 1, "", f"more than {max_nodes} YAML nodes with aliases expanded "
                                                  "(the limit of a spec)")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, "", "YAML nested too deeply")]) from None
    r = _Reader(file)
    if plain is None:
        raise SpecError([SpecProblem(file, 1, "", "empty spec")])
    top = r.mapping(plain, "", ("version", "defaults", "slos"))
    if top is None:
        raise SpecError(r.problems)
    version = r.get(top, "version", "", 1, str, required=True)
    if version is not None and version != SPEC_VERSION:
        r.err(top["version"][0].line, ".version",
              f"unsupported version {version!r} (this engine reads {SPEC_VERSION!r})")
    defaults: dict[str, tuple[_Node, int]] = {}
    if "defaults" in top:
        d = r.mapping(top["defaults"][0], ".defaults", ("alerting",))
        if d and "alerting" in d:
            defaults = r.mapping(d["alerting"][0], ".defaults.alerting", _ALERTING_FIELDS) or {}
    out: list[Slo] = []
    slos = top.get("slos")
    if slos is None:
        r.err(1, ".slos", "is required")
    elif not isinstance(slos[0].value, list) or not slos[0].value:
        r.err(slos[0].line, ".slos", "must be a non-empty list")
    else:
        seen: dict[str, int] = {}
        for i, n in enumerate(slos[0].value):
            slo = _slo(r, n, f".slos[{i}]", defaults)
            if slo is None:
                continue
            if slo.name in seen:
                r.err(n.line, f".slos[{i}].name", f"duplicate SLO name {slo.name!r} (first on line {seen[slo.name]})")
            seen[slo.name] = n.line
            out.append(slo)
    if r.problems:
        raise SpecError(r.problems)
    return out


def load_specs(path: str, *, max_nodes: int = MAX_NODES) -> list[Slo]:
    with open(path, encoding="utf-8") as fh:
        return parse_specs(fh.read(), path, max_nodes=max_nodes)


_SLO_FIELDS = ("name", "model", "model_version", "per_version", "description", "objective", "window", "sli",
               "alerting", "labels", "dashboard_url")
_ALERTING_FIELDS = ("tiers", "low_objective", "max_burn_fraction", "pending_for", "resolve_after", "repeat_interval")


def _slo(r: _Reader, n: _Node, path: str, defaults: dict[str, tuple[_Node, int]]) -> Slo | None:
    m = r.mapping(n, path, _SLO_FIELDS)
    if m is None:
        return None
    before = len(r.problems)
    name = r.get(m, "name", path, n.line, str, required=True)
    if name is not None and not _NAME.match(name):
        r.err(m["name"][0].line, f"{path}.name", "letters, digits, '.', '_' and '-' only (at most 128)")
    model = r.get(m, "model", path, n.line, str, required=True)
    objective = r.get(m, "objective", path, n.line, float, required=True)
    if objective is not None and not 0 < objective < 100:
        r.err(m["objective"][0].line, f"{path}.objective",
              f"{objective} is not a percentage strictly between 0 and 100")
    window = r.get(m, "window", path, n.line, "duration", required=True)
    if window is not None and window not in tuple(d * 86400 for d in _WINDOWS_DAYS):
        r.err(m["window"][0].line, f"{path}.window", f"must be {' or '.join(f'{d}d' for d in _WINDOWS_DAYS)}")
    sli = _sli(r, m["sli"][0], f"{path}.sli") if "sli" in m else None
    if "sli" not in m:
        r.err(n.line, f"{path}.sli", "is required")
    merged = dict(defaults)
    if "alerting" in m:
        merged.update(r.mapping(m["alerting"][0], f"{path}.alerting", _ALERTING_FIELDS) or {})
    alerting = _alerting(r, merged, f"{path}.alerting", n.line, window)
    labels = r.get(m, "labels", path, n.line, dict, default={})
    if sli is not None and sli.kind == "freshness" and "per_version" in m and m["per_version"][0].value is True:
        r.err(m["per_version"][0].line, f"{path}.per_version", "freshness is measured per model, not per version")
    if len(r.problems) > before or sli is None or alerting is None:
        return None
    return Slo(
        name=name, model=model, objective=round(objective / 100.0, 12), window_s=window, sli=sli,
        model_version=r.get(m, "model_version", path, n.line, str),
        per_version=r.get(m, "per_version", path, n.line, bool, default=False),
        description=r.get(m, "description", path, n.line, str, default=""), alerting=alerting,
        labels=tuple(sorted((str(k), str(v[0].value)) for k, v in labels.items())),
        dashboard_url=r.get(m, "dashboard_url", path, n.line, str, default=""), source=f"{r.file}:{n.line}",
    )


_SLI_FIELDS = {
    "availability": ("error_types",),
    "latency": ("threshold_ms", "interpolate"),
    "freshness": ("max_age",),
    "drift": ("detector", "subject"),
    "accuracy": ("slice", "tolerance", "estimate_below_coverage"),
}


def _sli(r: _Reader, n: _Node, path: str) -> Sli | None:
    m = r.mapping(n, path, SLI_KINDS)
    if m is None:
        return None
    if len(m) != 1:
        r.err(n.line, path, f"give exactly one SLI kind of {', '.join(SLI_KINDS)}")
        return None
    kind, (body, _) = next(iter(m.items()))
    if kind not in SLI_KINDS:
        return None
    p = f"{path}.{kind}"
    if body.value is None:
        body = _Node({}, body.line)
    b = r.mapping(body, p, _SLI_FIELDS[kind])
    if b is None:
        return None
    if kind == "availability":
        types = r.get(b, "error_types", p, body.line, list, default=[])
        return Sli(kind="availability", error_types=tuple(str(t.value) for t in types))
    if kind == "latency":
        thr = r.get(b, "threshold_ms", p, body.line, float, required=True)
        interp = r.get(b, "interpolate", p, body.line, bool, default=False)
        if thr is None:
            return None
        if thr <= 0 or thr > LATENCY_BUCKETS_MS[-1]:
            r.err(b["threshold_ms"][0].line, f"{p}.threshold_ms", f"must be in (0, {LATENCY_BUCKETS_MS[-1]:g}] ms")
            return None
        if thr not in LATENCY_BUCKETS_MS and not interp:
            lo = max((x for x in LATENCY_BUCKETS_MS if x < thr), default=0)
            hi = min(x for x in LATENCY_BUCKETS_MS if x > thr)
            r.err(b["threshold_ms"][0].line, f"{p}.threshold_ms",
                  f"{thr:g} ms is not a histogram bucket bound (nearest {lo:g} and {hi:g}); use a bound, "
                  "or set interpolate: true (linear within the bucket)")
            return None
        return Sli(kind="latency", threshold_ms=thr, interpolate=interp and thr not in LATENCY_BUCKETS_MS)
    if kind == "freshness":
        return Sli(kind="freshness", max_age_s=r.get(b, "max_age", p, body.line, "duration", required=True))
    if kind == "drift":
        det = r.get(b, "detector", p, body.line, str, default="drift")
        if det not in ("drift", "quality", "performance"):
            r.err(b["detector"][0].line, f"{p}.detector", "must be drift, quality or performance")
        return Sli(kind="drift", detector=det, subject=r.get(b, "subject", p, body.line, str))
    sl = r.get(b, "slice", p, body.line, dict, default={})
    if len(sl) > 1:
        r.err(b["slice"][0].line, f"{p}.slice", "one key=value slice at most")
    tol = r.get(b, "tolerance", p, body.line, float)
    if tol is not None and tol < 0:
        r.err(b["tolerance"][0].line, f"{p}.tolerance", "must be >= 0")
    est = r.get(b, "estimate_below_coverage", p, body.line, float)
    if est is not None and not 0 < est <= 1:
        r.err(b["estimate_below_coverage"][0].line, f"{p}.estimate_below_coverage", "must be in (0, 1]")
    elif est is not None and tol is not None:
        r.err(b["estimate_below_coverage"][0].line, f"{p}.estimate_below_coverage",
              "estimates exist for classifiers only (no tolerance)")
    return Sli(kind="accuracy", slice=tuple((str(k), str(v[0].value)) for k, v in sl.items()), tolerance=tol,
               estimate_below_coverage=est)


def _alerting(r: _Reader, m: dict[str, tuple[_Node, int]], path: str, line: int, window: int | None) -> Alerting | None:
    kw: dict[str, Any] = {}
    for key, field in (("pending_for", "pending_for_s"), ("resolve_after", "resolve_after_s"),
                       ("repeat_interval", "repeat_interval_s")):
        if key in m:
            if m[key][0].value in (0, "0", "0s", "0m"):
                kw[field] = 0
            else:
                kw[field] = r.get(m, key, path, line, "duration")
    lo = r.get(m, "low_objective", path, line, str)
    if lo is not None:
        if lo not in ("scale", "keep"):
            r.err(m["low_objective"][0].line, f"{path}.low_objective", "must be scale or keep")
        kw["low_objective"] = lo
    frac = r.get(m, "max_burn_fraction", path, line, float)
    if frac is not None:
        if not 0 < frac <= 1:
            r.err(m["max_burn_fraction"][0].line, f"{path}.max_burn_fraction", "must be in (0, 1]")
        kw["max_burn_fraction"] = frac
    if "tiers" in m:
        tn = m["tiers"][0]
        if not isinstance(tn.value, list) or not tn.value:
            r.err(tn.line, f"{path}.tiers", "must be a non-empty list")
            return None
        tiers = []
        for i, t in enumerate(tn.value):
            tiers.append(_tier(r, t, f"{path}.tiers[{i}]", window))
        names = [t.name for t in tiers if t is not None]
        if len(set(names)) != len(names):
            r.err(tn.line, f"{path}.tiers", f"tier names must be unique, got {names}")
        if any(t is None for t in tiers):
            return None
        kw["tiers"] = tuple(tiers)
    if any(v is None for v in kw.values()):
        return None
    return Alerting(**kw)


def _tier(r: _Reader, n: _Node, path: str, window: int | None) -> BurnTier | None:
    m = r.mapping(n, path, ("name", "severity", "burn_rate", "long", "short"))
    if m is None:
        return None
    before = len(r.problems)
    name = r.get(m, "name", path, n.line, str, required=True)
    sev = r.get(m, "severity", path, n.line, str, required=True)
    if sev is not None and sev not in ("page", "ticket"):
        r.err(m["severity"][0].line, f"{path}.severity", "must be page or ticket")
    burn = r.get(m, "burn_rate", path, n.line, float, required=True)
    if burn is not None and burn <= 0:
        r.err(m["burn_rate"][0].line, f"{path}.burn_rate", "must be > 0")
    long = r.get(m, "long", path, n.line, "duration", required=True)
    short = r.get(m, "short", path, n.line, "duration", required=True)
    if long and short and short >= long:
        r.err(m["short"][0].line, f"{path}.short", "must be shorter than the long window")
    if long and window and long > window:
        r.err(m["long"][0].line, f"{path}.long", "must not be longer than the SLO window")
    if len(r.problems) > before:
        return None
    return BurnTier(name=name, severity=sev, burn_rate=burn, long_window_s=long, short_window_s=short)
