"""testing room: calibrated assertions and strategies, the gate for anyone's estimator.

Holds hypothesis tests with a fixed false-alarm rate and thresholds from exact variances
(:mod:`.calibrated`), the gate for a user's Monte Carlo Fisher estimator behind the one entry
``fisher_verify.check_estimator`` / ``assert_estimator`` (:mod:`.front`: an Eq. 3 ``Network`` to
:mod:`.estimator_gate`, any ``nn.Module`` to :mod:`.adapters`), the pytest fixture
(:mod:`.pytest_plugin`), the audit of a claimed diagonal at sampled coordinates where the exact
one is out of reach (:mod:`.audit`, ``ext-sequence``) and Hypothesis strategies for networks
and families (:mod:`.strategies`).

May import: ``models``, ``expect``, ``fisher``, ``networks``, ``families``, ``symbolic``,
``validation`` and ``errors``.
"""
