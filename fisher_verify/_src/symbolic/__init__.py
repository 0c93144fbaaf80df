"""symbolic room: the SymPy machinery that the families share.

Holds the stable functions with their own derivatives and textbook forms (:mod:`.safe`; the
Bessel-type radial log-partitions of the directional families in :mod:`.radial`),
symmetric derivative tensors and the derivation of η, I, κ₃, κ₄, K from a log-partition
(:mod:`.derive`, ``lemma-2``, ``lemma-5``), code generation of NumPy, PyTorch and mpmath
kernels (:mod:`.codegen`), the on-disk cache (:mod:`.cache`) and a time limit for SymPy
attempts (:mod:`.timelimit`). It knows nothing of any particular family.

May import: ``errors`` and the package version only. Everything else is above it.
"""
