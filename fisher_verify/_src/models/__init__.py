"""models room: the one PyTorch engine: exact Fisher diagonals, both estimators' variances and
the thm-7/thm-8 norms of any network, from an Eq. 3 MLP to any ``nn.Module``.

The room keeps its name from when it held only the any-model route. The paper's thm-4 needs only
the Jacobian ``J = ∂h_L/∂θ`` per input and thm-6 the output Hessians, so the engine looks up,
for the model and each of its modules, the rule that computes them (:mod:`.rules`, the table):

- :mod:`.rules`: the table from model or layer kind to its rule, the registration point for
  a user's own layer kind, and the stated failure where no rule applies;
- the ``mlp`` rule, an Eq. 3 network: :mod:`.mlp` (lemma-13's factors: the diagonals and
  ``Var(Î₂)`` at depth, chunked within a memory budget), :mod:`.mlp_norms` (the thm-7/thm-8
  norms streamed and sharded over pairs of input blocks, their cost model), :mod:`.mlp_bounds`
  (thm-7, thm-8, the Hessian traces), :mod:`.mlp_route` (the rule recognised in a user's
  ``nn.Sequential``), :mod:`.device`;
- :mod:`.linear`: the ``linear`` rule, ``nn.Linear`` through its output derivatives;
- :mod:`.taps`: diag I(θ) and Var(Î₁) through the Linear and Conv layers by plain autograd (one
  forward pass of the batch, ``n_L`` reverse passes, self-checked against per-input autograd;
  no torch.func, no copy of a stock float64 model), the generic per-input route elsewhere;
- :mod:`.prepared`: a float64 working copy of the user's module (the user's object is never
  touched), the per-input function ``θ ↦ h_L(x)`` and the checks on it;
- :mod:`.data`: inputs from a tensor, a dataset or a DataLoader, in batches sized from a
  memory budget;
- :mod:`.workspace`: what every rule works on (prepared model, input stream, process group,
  budget) and the per-parameter result;
- :mod:`.diagonals`: ``diag I(θ)`` (eq-6) and ``Var(Î₁)`` (thm-4), exact, streamed, the
  sums split over ``torch.distributed`` processes (through :mod:`fisher_verify._src.distributed`);
- :mod:`.hessian`: ``Var(Î₂)`` (thm-6), exact where a rule allows, else a labelled unbiased
  estimate;
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
