"""Linear layers anywhere in a model, through their output derivatives (lemma-13's factorisation).

For an ``nn.Linear`` applied once per input to a vector ``x`` (``a = W x + b``),
``∂h^α/∂W[r, c] = g^α[r] · x[c]`` with ``g = ∂h_L/∂a`` (``n_L × out``), exactly as lemma-13 for
Eq. 3. So with ``u = g_r x_c``: ``uᵀIu = (g_rᵀ I g_r) x_c²`` (eq-6) and ``C[u⁴] = C[g_r⁴] x_c⁴``
(thm-4): per input only ``n_L × out`` numbers are differentiated instead of ``n_L × out × in``,
and the sum over inputs is one matrix product (``quadᵀ x²``), as BackPACK does.

``g`` comes from a zero perturbation ``ε`` added to the layer's output by a forward hook on the
*working copy* (never on the user's module): ``∂h/∂ε = ∂h/∂a``. Layers called more than once
per forward pass, on inputs with more than one axis (sequences), or with tied weights go
through the generic per-parameter Jacobian instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__: list[str] = []  # nothing for other rooms


@dataclass(frozen=True)
class LinearSite:
    """One eligible ``nn.Linear``: module name, parameter names, output width."""

    module: str
    weight: str
    bias: str | None
    out_features: int

    @property
    def names(self) -> list[str]:
        return [self.weight] + ([self.bias] if self.bias else [])


class LinearTaps:
    """Hooks on the working copy's Linear modules: record inputs, add the perturbation ε."""

    def __init__(self, prep: Any, example: Any) -> None:
        from .rules import rule_for

        self.prep = prep
        self.eps: dict[str, Any] | None = None
        self.record: dict[str, list[Any]] | None = None
        candidates = {}
        #: ids of the hooks placed here (not the user's: models.mlp_route tells them apart)
        self.hook_ids: set[int] = set()
        for name, mod in prep.module.named_modules():
            rule = rule_for(mod)  # the table's "linear" rule: nn.Linear itself
            if rule is not None and rule.taps and f"{name}.weight" in prep.params:
                bias = f"{name}.bias" if mod.bias is not None else None
                if bias is not None and bias not in prep.params:
                    continue
                candidates[name] = LinearSite(name, f"{name}.weight", bias, mod.out_features)
                self.hook_ids.add(mod.register_forward_hook(self._hook(name)).id)
        self.sites: list[LinearSite] = []
        if candidates:
            seen = self._inputs_lists(example)
            self.sites = [s for n, s in candidates.items()
                          if len(seen.get(n, [])) == 1 and seen[n][0].ndim == 2]

    def _hook(self, name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> Any:
            if self.record is not None:
                self.record.setdefault(name, []).append(inputs[0].detach())
            if self.eps is not None and name in self.eps:
                return output + self.eps[name]
            return output

        return hook

    def _inputs_lists(self, X: Any) -> dict[str, list[Any]]:
        self.record = {}
        try:
            self.prep.forward(X)
            return self.record
        finally:
            self.record = None

    def inputs(self, X: Any) -> dict[str, Any]:
        """The input ``x`` (B, in) of every eligible Linear layer for the batch X."""
        seen = self._inputs_lists(X)
        return {s.module: seen[s.module][0] for s in self.sites}

    def jacobian(self, X: Any, names: list[str], sites: list[LinearSite]) -> tuple[dict[str, Any],
                                                                                   dict[str, Any]]:
        """``J`` rows for ``names`` ``{name: (B, n_L, *shape)}`` and ``g = ∂h/∂a`` for ``sites``
        ``{module: (B, n_L, out)}``, in one batched reverse pass."""
        import torch
        from torch.func import jacrev, vmap

        prep = self.prep
        group = {k: prep.params[k] for k in names}
        rest = {k: v for k, v in prep.params.items() if k not in group}
        eps0 = {s.module: torch.zeros(1, s.out_features, dtype=prep.dtype, device=prep.device)
                for s in sites}

        def one(g: dict[str, Any], eps: dict[str, Any], x: Any) -> Any:
            self.eps = eps
            try:
                return prep._h({**rest, **g}, x)
            finally:
                self.eps = None

        J, G = vmap(jacrev(one, argnums=(0, 1)), in_dims=(None, None, 0))(group, eps0, X)
        B = X.shape[0]
        return J, {k: v.reshape(B, prep.n_L, -1) for k, v in G.items()}
