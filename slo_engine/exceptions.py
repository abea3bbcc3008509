"""Exceptions of the SLO engine.

    SloEngineError
    ├── SpecError               an SLO spec is invalid (all problems, each with file, line and path)
    ├── SilenceError            a silence request is invalid (no matcher, ends before it starts, unknown id)
    └── NotifierError           a notifier is misconfigured or its target refused
        ├── UrlNotAllowed       a webhook URL resolves to an address outside the allow-list
        └── DeliveryFailed      every attempt to deliver a notification failed
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SloEngineError", "SpecError", "SpecProblem", "SilenceError", "NotifierError", "UrlNotAllowed",
           "DeliveryFailed"]


class SloEngineError(Exception):
    """Base of all SLO engine errors."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec: where (file, 1-based line, dotted path) and what."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class SpecError(SloEngineError):
    """The spec is invalid; ``problems`` lists every problem found, in line order."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class SilenceError(SloEngineError):
    """A silence cannot be created or expired as asked."""


class NotifierError(SloEngineError):
    """A notifier is misconfigured, or its target cannot be used."""


class UrlNotAllowed(NotifierError):
    """The URL's host resolves to a private, loopback, link-local or reserved address not allow-listed."""


class DeliveryFailed(NotifierError):
    """Every attempt failed; the last status or error is in the message."""
