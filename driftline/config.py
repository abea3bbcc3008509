"""Settings, read from the environment once at start (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from serving_shim.contract import TimeWindow

if TYPE_CHECKING:
    from collector.cost import CostModel
    from collector.ingest import DecodeLimits
    from collector.redaction import IngestRedaction

__all__ = ["Settings", "SCHEDULED_DETECTORS"]

#: Integer limits read from ``DRIFTLINE_<NAME>`` (positive whole numbers; ``_`` separators allowed).
_INT_FIELDS = ("max_header_bytes", "max_key_chars", "key_cache_entries", "max_body_bytes", "max_ingest_bytes",
               "max_upload_bytes", "max_upload_rows", "max_upload_columns", "max_yaml_nodes", "max_report_cells")


#: The scheduled detector runs' settings when ``DRIFTLINE_DETECTOR_CONFIG`` gives none: one test per feature
#: chosen by kind, cardinality and window size, each with a calibrated threshold (detectors.drift, .calibration)
SCHEDULED_DETECTORS: Mapping[str, Any] = {"drift": {"tests": "auto", "threshold": "calibrated"}}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``driftline serve`` needs. ``DRIFTLINE_*`` environment variables override defaults."""

    store_url: str = ".driftline"          # chdb path, chdb:///path or clickhouse://host:9000
    database: str = "driftline"
    host: str = "127.0.0.1"
    port: int = 8000
    kafka_bootstrap: str = ""              # set: scale mode (ingest produces to Kafka)
    topic_prefix: str = "driftline"
    open_localhost: bool = False           # embedded mode: requests from 127.0.0.1/::1 need no API key
    scheduler: bool = True                 # run detectors and SLO alerting inside this process
    scheduler_interval_s: float = 60.0
    detector_window_s: float = 3600.0      # each detector run looks at this much time
    detector_every_s: float = 300.0        # and runs this often (windows end on multiples of it)
    detector_reference: str = ""           # '' = the model's 'baseline' upload if any, else the previous window
    detector_config: str = ""              # the scheduled detector runs' settings: inline JSON or a JSON/YAML file
    slo_files: str = ""                    # comma-separated SLO spec files (version: driftline/v1)
    version_grace_s: float = 600.0         # a version other than the deployed one may serve this long (rollouts)
    version_recent_s: float = 120.0        # "still serving": traffic within this long (metric windows arrive late)
    cost_models: str = ""                  # cost model per model: inline JSON or a JSON/YAML file (collector.cost)
    pagerduty_routing_key: str = ""
    slack_webhook_url: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    notify_allow: str = ""                 # comma-separated internal hosts/networks notifiers may reach
    # Limits, checked before any work (see SECURITY.md). Bytes unless named otherwise.
    max_header_bytes: int = 16 * 1024      # all request headers together (and uvicorn's h11 limit)
    max_key_chars: int = 256               # an API key longer than this is refused before any lookup
    key_cache_entries: int = 4096          # key lookups remembered (a bounded LRU, each for 5 s)
    max_body_bytes: int = 1024 * 1024      # any body, except ingest and reference uploads
    max_ingest_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024  # reference uploads (CSV/Parquet), streamed to a temp file
    max_upload_rows: int = 20_000_000
    max_upload_columns: int = 2_000
    max_yaml_nodes: int = 100_000          # SLO spec YAML: nodes after alias expansion
    max_report_cells: int = 2_000_000      # Evidently report: sample rows x features, per side
    event_max_age_s: float = 7 * 86400.0   # events older than this (by the server's clock) are refused
    event_max_ahead_s: float = 3600.0      # and so are events dated further ahead than this
    # server-side redaction of ingested events (collector.redaction): '' = pattern recognizers on every
    # string, 'off', inline JSON or a JSON/YAML file of Redaction.from_spec; the salt of 'hash'/strict apart
    redaction: str = ""
    redaction_salt: str = field(default="", repr=False)
    raw_dead_letters: bool = False         # keep dead letters' raw bytes (default: redacted copy + sha256)

    @property
    def store_display(self) -> str:
        """The store URL without credentials, for logs."""
        from urllib.parse import urlsplit, urlunsplit

        u = urlsplit(self.store_url)
        if u.password is None and u.username is None:
            return self.store_url
        host = u.hostname or ""
        return urlunsplit((u.scheme, f"{host}:{u.port}" if u.port else host, u.path, u.query, u.fragment))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        s = cls()
        vals: dict[str, Any] = {}  # field -> value of its type (checked by replace() below)
        for f in ("store_url", "database", "host", "kafka_bootstrap", "topic_prefix", "slo_files",
                  "detector_reference", "pagerduty_routing_key", "slack_webhook_url", "webhook_url", "webhook_secret",
                  "notify_allow", "redaction", "redaction_salt", "cost_models", "detector_config"):
            if f"DRIFTLINE_{f.upper()}" in env:
                vals[f] = env[f"DRIFTLINE_{f.upper()}"]
        if "DRIFTLINE_PORT" in env:
            try:
                vals["port"] = int(env["DRIFTLINE_PORT"])
            except ValueError:
                raise ValueError(f"DRIFTLINE_PORT: {env['DRIFTLINE_PORT']!r} is not a port number") from None
        for f in ("detector_window_s", "detector_every_s", "event_max_age_s", "event_max_ahead_s", "version_grace_s",
                  "version_recent_s"):
            if f"DRIFTLINE_{f.upper()}" in env:
                try:
                    vals[f] = float(env[f"DRIFTLINE_{f.upper()}"])
                except ValueError:
                    raise ValueError(f"DRIFTLINE_{f.upper()}: not a number of seconds") from None
        if "DRIFTLINE_SCHEDULER_INTERVAL_S" in env:
            try:
                vals["scheduler_interval_s"] = float(env["DRIFTLINE_SCHEDULER_INTERVAL_S"])
            except ValueError:
                raise ValueError("DRIFTLINE_SCHEDULER_INTERVAL_S: not a number of seconds") from None
        for f in _INT_FIELDS:
            if f"DRIFTLINE_{f.upper()}" in env:
                raw = env[f"DRIFTLINE_{f.upper()}"]
                try:
                    vals[f] = int(raw.replace("_", ""))
                except ValueError:
                    raise ValueError(f"DRIFTLINE_{f.upper()}: {raw!r} is not a whole number") from None
                if vals[f] <= 0:
                    raise ValueError(f"DRIFTLINE_{f.upper()}: must be positive, got {raw!r}")
        if "DRIFTLINE_SCHEDULER" in env:
            vals["scheduler"] = env["DRIFTLINE_SCHEDULER"].lower() in ("1", "true", "yes")
        if "DRIFTLINE_RAW_DEAD_LETTERS" in env:
            vals["raw_dead_letters"] = env["DRIFTLINE_RAW_DEAD_LETTERS"].lower() in ("1", "true", "yes")
        if "DRIFTLINE_OPEN_LOCALHOST" in env:
            vals["open_localhost"] = env["DRIFTLINE_OPEN_LOCALHOST"].lower() in ("1", "true", "yes")
        vals.update({k: v for k, v in overrides.items() if v is not None})
        out = replace(s, **vals)
        out.event_window()  # a negative window is refused at start
        out.cost()          # and so is a cost model that cannot be read
        out.detectors()     # and a detector configuration
        return out

    def ingest_redaction(self) -> IngestRedaction:
        """The server-side redaction of ingested events (``--redaction``, ``DRIFTLINE_REDACTION``)."""
        from collector.redaction import IngestRedaction, load_redaction

        return IngestRedaction(load_redaction(self.redaction, self.redaction_salt),
                               raw_dead_letters=self.raw_dead_letters,
                               subject_salt=self.redaction_salt.encode() or None)

    def decode_limits(self) -> DecodeLimits:
        """What one batch may hold, for the collector (the ingest API reads the same settings through Limits)."""
        from collector.ingest import DecodeLimits

        return DecodeLimits(max_bytes=self.max_ingest_bytes, window=self.event_window())

    def cost(self) -> dict[str, CostModel]:
        """The cost models per model (``DRIFTLINE_COST_MODELS``); models not named use ``"*"`` or replica-hours."""
        from collector.cost import load_cost_models

        return load_cost_models(self.cost_models)

    def detectors(self) -> dict[str, Any]:
        """The scheduled detector runs' configuration (``DRIFTLINE_DETECTOR_CONFIG``; the document
        :meth:`detectors.runner.DetectorConfig.from_dict` reads, e.g. ``{"drift": {"threshold": "calibrated"},
        "detectors": ["drift", "quality", "performance", "multivariate"]}``), checked;
        :data:`SCHEDULED_DETECTORS` when none is given."""
        from collector.settings_doc import load_doc

        doc = load_doc(self.detector_config, "DRIFTLINE_DETECTOR_CONFIG")
        if doc is None:
            return dict(SCHEDULED_DETECTORS)
        if not isinstance(doc, Mapping):
            raise ValueError("DRIFTLINE_DETECTOR_CONFIG: must be a mapping (drift, quality, performance, ...)")
        from detectors.runner import check_config

        try:
            check_config(doc)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"DRIFTLINE_DETECTOR_CONFIG: {str(exc).strip(chr(34) + chr(39))}") from None
        return dict(doc)

    def event_window(self) -> TimeWindow:
        """The event times ingest and collectors accept, around the server's clock."""
        return TimeWindow(max_age_s=self.event_max_age_s, max_ahead_s=self.event_max_ahead_s)
