"""networks room: the Eq. 3 network and its derivatives.

Holds the network (weights ⇄ flat θ, forward pass: :mod:`.network`), the activations with σ,
σ', σ'' per backend, the analytic route to Jacobians and output Hessians (``lemma-13`` and
its second order: :mod:`.analytic`), the torch.func route (:mod:`.autodiff`), the mpmath
route for small networks (:mod:`.highprec`) and the import of a torch MLP.

May import: ``families``, ``symbolic`` and ``errors``.
"""
