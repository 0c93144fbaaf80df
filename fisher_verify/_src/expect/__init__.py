"""expect room: exact expectations over y, the independent route to the paper's quantities.

Holds expectations of single-sample terms from each family's exact-expectation rule
(enumeration, series with a proven tail bound, Gauss quadrature: :mod:`.single_sample`) and
the measured behaviour of ReLU networks (``remark-3.1``: :mod:`.relu`).

May import: ``fisher``, ``networks``, ``families``, ``symbolic`` and ``errors``.
"""
