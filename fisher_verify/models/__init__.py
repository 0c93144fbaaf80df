"""models room: any PyTorch model, its exact Fisher diagonals and both estimators' variances.

The paper's thm-4 needs only the Jacobian ``J = ∂h_L/∂θ`` per input and thm-6 the output
Hessians, so nothing here assumes the Eq. 3 network of :mod:`fisher_verify.networks`:

- :mod:`.prepared`: a float64 working copy of the user's module (the user's object is never
  touched), the per-input function ``θ ↦ h_L(x)`` and the checks on it;
- :mod:`.data`: inputs from a tensor, a dataset or a DataLoader, in batches sized from a
  memory budget;
- the sums split over ``torch.distributed`` processes go through :mod:`fisher_verify.distributed`;
- :mod:`.diagonals`: ``diag I(θ)`` (eq-6) and ``Var(Î₁)`` (thm-4), exact, streamed;
- :mod:`.hessian`: ``Var(Î₂)`` (thm-6), exact where the structure allows, else a labelled
  unbiased estimate;
- :mod:`.report`: :func:`analyze_module` (``fisher_verify.analyze`` of a module), per
  parameter tensor and per layer, into the one :class:`~.result.Analysis`;
- :mod:`.quantities`: the public ``exact_fisher``, ``variance``, ``covariance`` and
  ``covariance_norm`` for a ``Network`` or any module;
- :mod:`.as_network`: the module through the interface the estimator gate reads (dense
  autograd Jacobians and output Hessians), its exact reference for any model;
- :mod:`.sequence`: a sequence model's ``(batch, T, V)`` logits with its padding mask, the
  natural parameter of ``family("sequence")`` (``ext-sequence``); :mod:`.transformer`: a
  small causal transformer for the tests, the statement and the benchmarks.

May import: ``fisher``, ``networks``, ``families``, ``symbolic``, ``validation``,
``distributed`` and ``errors``.
"""
