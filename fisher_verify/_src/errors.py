"""User-facing errors: one line that names the problem and what would be valid."""

from __future__ import annotations


class FisherVerifyError(ValueError):
    """Raised for bad user input; the CLI turns it into exit code 2 without a traceback."""


class UnknownFamilyError(FisherVerifyError):
    """A family name that is not in the catalog."""


class ParameterError(FisherVerifyError):
    """A family parameter outside its domain (n < 1, sigma <= 0, K < 2, ...)."""


class DomainError(FisherVerifyError):
    """A natural parameter h outside the family's natural-parameter domain."""


class ShapeError(FisherVerifyError):
    """Arrays whose shapes do not fit together."""


class UnsupportedError(FisherVerifyError):
    """A request the tool refuses for a stated reason (too large, not C^2, ...)."""
