"""testing room: calibrated assertions and strategies, the public gate for anyone's estimator.

Holds hypothesis tests with a fixed false-alarm rate and thresholds from exact variances
(:mod:`.calibrated`), the gate for a user's Monte Carlo Fisher estimator
(:mod:`.estimator_gate`) and Hypothesis strategies for networks and families
(:mod:`.strategies`).

May import: ``expect``, ``fisher``, ``networks``, ``families``, ``symbolic`` and ``errors``.
"""
