"""networks room: the Eq. 3 network and its derivatives.

Holds the network (weights ⇄ flat θ, forward pass: :mod:`.network`), the activations with σ,
σ', σ'' per backend, the analytic route to Jacobians and output Hessians (``lemma-13`` and
its second order: :mod:`.analytic`), the torch.func route (:mod:`.autodiff`), the mpmath
route for small networks (:mod:`.highprec`), the import of a torch MLP, and an Eq. 3 network
followed by a link layer ``h = g(f)`` (:mod:`.linked`, ``ext-links``).

May import: ``families``, ``symbolic`` and ``errors``.
"""
