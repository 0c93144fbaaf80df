"""One adapter per curvature library: ``fisher(model, data, ...) -> estimate`` for the gate.

Each function takes the model and ``data = (x, y)`` as :func:`fisher_verify.check_estimator`
hands them over and returns what the library returns, read in its own format (a per-parameter
dict, a per-module dict, a matrix or a linear operator). ``loss`` is ``"ce"`` (cross-entropy on
logits) or ``"mse"``; ``what`` is ``"mc"`` (Monte Carlo Fisher with ``n`` samples), ``"exact"``
(exact Fisher = GGN) or ``"empirical"``; ``shape`` is ``"full"`` or ``"diag"``. The same code
is in docs/interop.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _loss_module(loss: str) -> nn.Module:
    return nn.CrossEntropyLoss() if loss == "ce" else nn.MSELoss()


# --- BackPACK ---------------------------------------------------------------------------------


def backpack_fisher(model: nn.Module, data: Any, *, what: str, shape: str, loss: str, n: int = 1) -> Any:
    """BackPACK 1.7: DiagGGNMC / SqrtGGNMC, DiagGGNExact / SqrtGGNExact, BatchGrad (EF)."""
    from backpack import backpack, extend
    from backpack.extensions import (
        BatchGrad,
        DiagGGNExact,
        DiagGGNMC,
        SqrtGGNExact,
        SqrtGGNMC,
        SumGradSquared,
    )

    x, y = data
    extend(model)
    lossfunc = extend(_loss_module(loss))
    ext: Any
    if what == "mc":
        ext, attr = (DiagGGNMC(n), "diag_ggn_mc") if shape == "diag" else (SqrtGGNMC(n), "sqrt_ggn_mc")
    elif what == "exact":
        ext, attr = (DiagGGNExact(), "diag_ggn_exact") if shape == "diag" else (SqrtGGNExact(), "sqrt_ggn_exact")
    else:
        ext, attr = (SumGradSquared(), "sum_grad_squared") if shape == "diag" else (BatchGrad(), "grad_batch")
    with backpack(ext):
        lossfunc(model(x), y).backward()
    params = list(model.parameters())
    if attr == "sum_grad_squared":
        # the loss is a mean over the M inputs: per-sample gradients carry 1/M
        return {name: x.shape[0] * p.sum_grad_squared for name, p in model.named_parameters()}
    if attr == "grad_batch":
        g = torch.cat([p.grad_batch.reshape(x.shape[0], -1) for p in params], dim=1)
        return x.shape[0] * g.T @ g
    if shape == "diag":
        return {name: getattr(p, attr) for name, p in model.named_parameters()}
    # sqrt factors (C, M, *shape): the GGN is V Vᵀ
    V = torch.cat([getattr(p, attr).flatten(start_dim=2) for p in params], dim=2)
    V = V.reshape(-1, V.shape[-1])
    return V.T @ V


# --- curvlinops -------------------------------------------------------------------------------


def curvlinops_fisher(
    model: nn.Module, data: Any, *, what: str, loss: str, shape: str = "full", n: int = 1, seed: int = 0
) -> Any:
    """curvlinops 3.0: FisherMCLinearOperator, GGNLinearOperator, EFLinearOperator (linear operators).

    curvlinops has no diagonal Monte Carlo Fisher of its own: ``shape="diag"`` reads the
    diagonal of the operator (one matrix-matrix product with the identity).
    """
    from curvlinops import EFLinearOperator, FisherMCLinearOperator, GGNLinearOperator

    params = [p for p in model.parameters() if p.requires_grad]
    batches = [data]
    lossfunc = _loss_module(loss)
    # check_deterministic re-runs the model and products on every construction: twice the cost,
    # and the gate itself sees any nondeterminism as spread
    fast = {"check_deterministic": False}
    if what == "mc":
        op = FisherMCLinearOperator(model, lossfunc, params, batches, mc_samples=n, seed=seed, **fast)
    elif what == "exact":
        op = GGNLinearOperator(model, lossfunc, params, batches, **fast)
    else:
        op = EFLinearOperator(model, lossfunc, params, batches, **fast)
    if shape == "diag":
        P = sum(p.numel() for p in params)
        return torch.diagonal(op @ torch.eye(P, dtype=params[0].dtype))
    return op


# --- nngeometry -------------------------------------------------------------------------------


def nngeometry_fisher(model: nn.Module, data: Any, *, what: str, shape: str, loss: str, n: int = 1) -> Any:
    """nngeometry 0.4: FIM_MonteCarlo (classification only) and FIM, dense or diagonal.

    nngeometry has no empirical Fisher helper: ``what="empirical"`` builds it from its Jacobian
    backend with the per-example log-likelihood of the data's labels as the function.
    """
    from nngeometry.backend import TorchHooksJacobianBackend
    from nngeometry.layercollection import LayerCollection
    from nngeometry.metrics import FIM, FIM_MonteCarlo
    from nngeometry.object import PMatDense, PMatDiag

    x, y = data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=x.shape[0])
    rep = PMatDiag if shape == "diag" else PMatDense
    variant = "classif_logits" if loss == "ce" else "regression"
    if what == "mc":
        F = FIM_MonteCarlo(model, loader, rep, variant=variant, trials=n)
    elif what == "exact":
        F = FIM(model, loader, rep, variant=variant)
    else:

        def log_likelihood(*batch: Any) -> Any:
            return -nn.functional.cross_entropy(model(batch[0]), batch[1], reduction="none")[:, None]

        backend = TorchHooksJacobianBackend(
            layer_collection=LayerCollection.from_model(model), model=model, function=log_likelihood
        )
        F = rep(generator=backend, examples=loader)
    return F.get_diag() if shape == "diag" else F.to_torch()


# --- ASDL -------------------------------------------------------------------------------------


def asdl_fisher(model: nn.Module, data: Any, *, what: str, shape: str, loss: str, n: int = 1) -> Any:
    """ASDL (asdfghjkl 0.1a5): ``fisher_mc`` / ``fisher_exact`` / ``fisher_emp`` via FisherMaker."""
    from asdl import FisherConfig, get_fisher_maker

    x, y = data
    fisher_type = {"mc": "fisher_mc", "exact": "fisher_exact", "empirical": "fisher_emp"}[what]
    config = FisherConfig(
        fisher_type=fisher_type, fisher_shapes=[shape], loss_type="cross_entropy" if loss == "ce" else "mse",
        n_mc_samples=n, data_size=x.shape[0],
    )
    maker = get_fisher_maker(model, config)
    dummy_logits = maker.setup_model_call(model, x)
    # ASDL sums the loss and divides by data_size itself
    loss_fn = nn.CrossEntropyLoss(reduction="sum") if loss == "ce" else nn.MSELoss(reduction="sum")
    maker.setup_loss_call(loss_fn, dummy_logits, y)
    maker.forward_and_backward()
    if shape == "full":
        return model.fisher.data  # (P, P) in parameters() order
    # per module: {module name: Diag with .weight and .bias}
    return {name: m.fisher.diag for name, m in model.named_modules() if getattr(m, "fisher", None) is not None}


# --- laplace-torch ----------------------------------------------------------------------------


def laplace_hessian(model: nn.Module, data: Any, *, backend: str, what: str, structure: str,
                    loss: str) -> Any:
    """laplace-torch 0.3: ``la.H`` after ``la.fit`` on one batch holding all the data.

    ``backend`` names a curvature backend of laplace-torch (``"BackPack"``, ``"Curvlinops"``,
    ``"Asdl"``, or ``"own"`` for its torch.func ``GGNInterface``/``EFInterface``); ``what`` is
    ``"exact"`` (GGN), ``"mc"`` (``stochastic=True``: the Monte Carlo Fisher, one label per input)
    or ``"empirical"`` (EF); ``structure`` is ``"full"``, ``"diag"`` or ``"kron"`` (returned as
    the dense matrix of its Kronecker factors). ``la.H`` is a *sum* over the inputs (the log
    likelihood of the whole data set), in laplace's parameter order (``parameters()`` order).
    For regression laplace's likelihood is ``N(y; f, σ²)`` with ``σ = 1``: ``½(y − f)²``.
    """
    from laplace import Laplace
    from laplace import curvature as cv

    x, y = data
    kinds = {"exact": "GGN", "mc": "GGN", "empirical": "EF"}
    if backend == "own":
        cls = cv.curvature.GGNInterface if kinds[what] == "GGN" else cv.curvature.EFInterface
    else:
        cls = getattr(cv, f"{backend}{kinds[what]}")
    kwargs: dict[str, Any] = {}
    if what != "empirical":
        kwargs["stochastic"] = what == "mc"  # one label draw per input (no sample-count option)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=len(x))
    likelihood = "classification" if loss == "ce" else "regression"
    la = Laplace(model, likelihood, subset_of_weights="all", hessian_structure=structure,
                 backend=cls, backend_kwargs=kwargs)
    la.fit(loader, progress_bar=False)
    H = la.H
    return H.to_matrix() if structure == "kron" else H
