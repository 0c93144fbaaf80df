"""commands room: one module per ``fisher-verify`` subcommand, and the argument checks they share.

Holds ``derive``, ``families``, ``check``, ``report``, ``analyze`` and ``analyze_model``
(each registers its parser and runs it), :mod:`.common` (parameters, points, output paths,
refused with a one-line message) and :mod:`.progress` (what ``check`` and ``report`` show
while statements run).

May import: every room (it is the top but for ``cli``, which only dispatches to it).
"""
