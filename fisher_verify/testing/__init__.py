"""The public testing entry point of fisher-verify: the pytest plugin (``pytest11``).

A test asks for the ``fisher_estimator_gate`` fixture (:mod:`.pytest_plugin`); the gate itself is
``fisher_verify.check_estimator`` / ``assert_estimator``.
"""
