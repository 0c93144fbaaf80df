"""testing room: calibrated assertions and strategies, the public gate for anyone's estimator.

Holds hypothesis tests with a fixed false-alarm rate and thresholds from exact variances
(:mod:`.calibrated`), the gate for a user's Monte Carlo Fisher estimator
(:mod:`.estimator_gate`), the audit of a claimed diagonal at sampled coordinates where the
exact one is out of reach (:mod:`.audit`, ``ext-sequence``) and Hypothesis strategies for
networks and families (:mod:`.strategies`).

May import: ``models``, ``expect``, ``fisher``, ``networks``, ``families``, ``symbolic`` and
``errors``.
"""
