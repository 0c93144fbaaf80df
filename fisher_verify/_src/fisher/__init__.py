"""fisher room: the paper's quantities for a network at an input, dense, on NumPy.

Holds the exact Fisher information (``eq-6``: :mod:`.exact`), the two estimators Î₁ and Î₂
(:mod:`.estimators`), their closed-form covariances (``thm-4``, ``thm-6``: :mod:`.covariance`),
the bounds (``thm-7``, ``thm-8``, ``lemma-9``, …: :mod:`.bounds`), p.s.d. results
(:mod:`.psd`), the exact K-FAC factors (``ext-kfac``: :mod:`.kfac`), spectral and tightness
measurements, the back-propagated FIM, the per-input sums of ``fv.analyze``'s dense route
streamed over chunks of inputs (:mod:`.streamed`), the U-statistic estimates (:mod:`.ustat`),
the diagonal-estimator results beyond the paper (``d24-*``, ``sun26-spectrum``:
:mod:`.diagonal`), and the detection of results that over- or underflowed float64
(:mod:`.degenerate`).

This room is the dense reference: small P, every ``P×P`` array formed, so that the proofs can
check the engine (:mod:`fisher_verify._src.models`, PyTorch, any P) against it. Three functions
here touch torch, none of them the engine: the independent autodiff routes of the reference
itself (``estimators`` ``method="generic"`` and ``backprop``'s autograd Î₂: the definition
differentiated by another tool than lemma-13) and :mod:`.psd`'s batched symmetric eigenvalues
(a LAPACK call, 20–30× faster than NumPy's per-matrix loop). Nothing here imports the engine.

May import: ``networks``, ``families``, ``symbolic``, ``validation`` and ``errors``.
"""
