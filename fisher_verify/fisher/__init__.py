"""fisher room: the paper's quantities for a network at an input.

Holds the exact Fisher information (``eq-6``: :mod:`.exact`), the two estimators Î₁ and Î₂
(:mod:`.estimators`), their closed-form covariances (``thm-4``, ``thm-6``: :mod:`.covariance`),
the bounds (``thm-7``, ``thm-8``, ``lemma-9``, …: :mod:`.bounds`), p.s.d. results
(:mod:`.psd`), the exact K-FAC factors (``ext-kfac``: :mod:`.kfac`), spectral and tightness
measurements, the back-propagated FIM and the path for large networks that never forms a P×P
array (:mod:`.large`, its streamed norms :mod:`.large_norms`, the U-statistic estimates
:mod:`.ustat`), the diagonal-estimator results beyond the paper (``d24-*``, ``sun26-spectrum``:
:mod:`.diagonal`), and the detection of results that over- or underflowed float64
(:mod:`.degenerate`).

May import: ``networks``, ``families``, ``symbolic``, ``validation``, ``distributed`` and
``errors``.
"""
