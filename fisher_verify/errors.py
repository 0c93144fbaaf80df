"""The exceptions fisher-verify raises (public): every refusal is a :class:`FisherVerifyError`,
with one subclass per kind of problem."""

from ._src.errors import (
    DomainError,
    FisherVerifyError,
    ParameterError,
    ShapeError,
    UnknownFamilyError,
    UnsupportedError,
)

__all__ = ["FisherVerifyError", "UnknownFamilyError", "ParameterError", "DomainError", "ShapeError", "UnsupportedError"]
