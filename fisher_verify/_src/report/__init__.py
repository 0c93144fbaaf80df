"""report room: rendering the results for people.

Holds the derivation report (Markdown with LaTeX math, offline HTML, Table 1, figures, the JSON
certificate: :mod:`.build`) and the LaTeX → MathML converter it uses (:mod:`.mathml`).

May import: ``proofs`` and every room below it (``testing``, ``expect``, ``fisher``,
``networks``, ``identities``, ``families``, ``symbolic``, ``errors``).
"""
