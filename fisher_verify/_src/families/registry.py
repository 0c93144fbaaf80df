"""``family(name, **params)``: the public way to get a family (issue 2)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np

from ..errors import ParameterError, UnknownFamilyError
from .catalog import BUILDERS, ENTRIES, EXAMPLES, PARAMETERS, Examples
from .dirichlet import DirichletFamily
from .family import CategoricalFamily, Family
from .normal_covariance import CovarianceFamily

#: The class that computes with a catalog entry (``Entry.family_class``): the categorical
#: family's direct forms override the generic dense ones (``Family.contractions``).
FAMILY_CLASSES: dict[str, type[Family]] = {"family": Family, "categorical": CategoricalFamily,
                                            "dirichlet": DirichletFamily,
                                            "covariance": CovarianceFamily}


def family_names() -> list[str]:
    """Names of the catalog's families (products are written ``product``, see :func:`family`)."""
    return list(BUILDERS)


def family_examples() -> list[tuple[str, Examples]]:
    """Every family of the catalog with where it is exercised (its example parameters, a point
    of its domain, the ranges and edge points of the extreme-parameter checks, its figure
    grid): the one source the tests, strategies, tightness sweep, figures and stability proof
    read, so that a family registered once is picked up by all of them (issue 19)."""
    return [(name, EXAMPLES[name]) for name in BUILDERS]


def _nested_tuple(value: Any) -> Any:
    """Nested lists, an array or their JSON text (the CLI's ``--param cov=[[2,0.6],[0.6,1]]``)
    as nested tuples (hashable, the same numbers); anything else unchanged, for the builder to
    judge."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_nested_tuple(v) for v in value)
    return value


@cache
def _build(name: str, params: tuple[tuple[str, type, Any], ...]) -> Family:
    # the key holds each value's type: 1, 1.0 and True are equal and hash alike, so without it
    # a value refused in a fresh process (n=1.0, n=True) would be accepted after n=1 was built
    definition = BUILDERS[name](**{key: value for key, _, value in params})
    return FAMILY_CLASSES[ENTRIES[name].family_class](definition)


@cache
def _sequence(V: int, T: int) -> Family:  # noqa: N803
    from .sequence import SequenceFamily

    return SequenceFamily(V, T)


def family(name: str, **params: Any) -> Family:
    """A family of the catalog by name, with its fixed parameters.

    Example: ``family("binomial", n=5)``, ``family("categorical", K=10)``. An independent
    product of families is ``family("product", components=[family("bernoulli"), ...])`` or
    :func:`fisher_verify.product`; token-level outputs of a sequence model are
    ``family("sequence", K=V, T=T)`` (categoricals over T positions with a padding mask,
    :mod:`fisher_verify._src.families.sequence`).

    Raises:
        UnknownFamilyError: ``name`` is not in the catalog (the message lists the catalog).
        ParameterError: an unknown parameter, or a value outside its domain.
    """
    if name == "product":
        from .product import product

        components = params.pop("components", None)
        if components is None or params:
            raise ParameterError("family 'product' takes exactly one parameter: components=[...]")
        return product(*components)
    if name == "sequence":
        from .sequence import check_sequence_parameters

        unknown = sorted(set(params) - {"K", "T"})
        if unknown or not {"K", "T"} <= set(params):
            raise ParameterError(
                "family 'sequence' takes exactly the parameters K (the vocabulary size V) and T "
                f"(the positions), e.g. family('sequence', K=100, T=16); got {sorted(params)}")
        return _sequence(*check_sequence_parameters(params["K"], params["T"]))
    if not isinstance(name, str) or name not in BUILDERS:
        raise UnknownFamilyError(
            f"unknown family {name!r}; known families: {', '.join(family_names())}, product, sequence"
        )
    allowed = PARAMETERS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ParameterError(
            f"family {name!r} has no parameter {', '.join(unknown)}; its parameters: {valid}"
        )
    for key, value in sorted(params.items()):
        if isinstance(allowed.get(key), tuple):  # a matrix parameter (multivariate_normal's cov)
            value = params[key] = _nested_tuple(value)
        try:
            hash(value)
        except TypeError:  # a list or an array: never a family parameter, so name it
            raise ParameterError(
                f"family {name!r}: parameter {key}={value!r} is invalid; it must be a single "
                f"number, not a {type(value).__name__}") from None
    return _build(name, tuple((k, type(v), v) for k, v in sorted(params.items())))
