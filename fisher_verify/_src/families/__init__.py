"""families room: one symbolic definition per exponential family, and what is computed from it.

Holds the definition record (t(y), base measure, support, F(h), natural domain:
:mod:`.definition`), the catalog of ``table-1`` and beyond (:mod:`.catalog`), the
:class:`~.family.Family` that derives, caches and evaluates kernels, samples and takes exact
expectations, the one-hot route for large categorical K (:mod:`.onehot`), independent
products (:mod:`.product`), quadrature rules and the public ``family(name, **params)``
(:mod:`.registry`). What is specific to a family is a method of ``Family`` with a generic
default from its dense tensors: its moments contracted for the PyTorch engines
(:mod:`.contractions`, O(K) for the categorical family), ``kappa4_diagonal``, the gate's
projected moments (:mod:`.higher_moments`); no code outside this room branches on a family's
class (``tests/test_family_contractions.py``). Heads that do not output the natural
parameter: the link layers ``h = g(f)`` with ``g′``, ``g″`` printed per backend (:mod:`.links`)
and the ``torch.nn`` losses as a family and a link (:mod:`.losses`).

May import: ``symbolic`` and ``errors``. The proofs of a family's identities live above it,
in ``identities``, so that computing with a family never loads them.
"""
