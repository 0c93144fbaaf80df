"""commands room: one module per ``fisher-verify`` subcommand, and the argument checks they share.

Holds ``derive``, ``families``, ``check``, ``report`` and ``analyze`` (each registers its
parser and runs it) and :mod:`.common` (parameters, points, output paths, refused with a
one-line message).

May import: every room (it is the top but for ``cli``, which only dispatches to it).
"""
