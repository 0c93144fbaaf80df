"""The implementation of fisher-verify: the rooms of docs/architecture.md (private).

Nothing here is public: names, signatures and results may change between versions. Users import
``fisher_verify`` (the names of docs/api.md), ``fisher_verify.errors``, ``fisher_verify.proofs``
(the ``@statement`` API of proof files), ``fisher_verify.cli`` and the pytest plugin
``fisher_verify.testing.pytest_plugin``.
"""
