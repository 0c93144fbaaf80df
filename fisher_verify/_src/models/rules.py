"""The engine's table: which rule differentiates which kind of model or layer.

As BackPACK's extensions map module types to derivative rules, the engine looks up, for the
model and for each of its modules, the rule that computes ``J = ∂h_L/∂θ`` and the output
Hessian diagonals ``∂²h_L/∂θ_i²`` (eq-6, thm-4, thm-6):

1. **The model as a whole** (:data:`MODEL_RULES`, tried first): ``"mlp"``, an Eq. 3 network
   (a :class:`~fisher_verify.Network`, or an ``nn.Sequential`` of ``Linear`` layers and one
   smooth elementwise activation that :mod:`fisher_verify._src.networks.torch_import` accepts):
   the analytic factors of lemma-13 (:mod:`.mlp`: the diagonals, ``Var(Î₂)`` through the
   pre-activation Hessian diagonals without a factor ``n_L`` at depth, memory-budget
   chunking; :mod:`.mlp_norms`: thm-7/thm-8 norms streamed and sharded over pairs of input
   blocks, ``norm_cost``; :mod:`.mlp_bounds`: the bounds), recognised in a prepared model by
   :mod:`.mlp_route`, which also gives ``diag I(θ)`` and ``Var(Î₁)`` of a user's chain of stock
   ``Linear`` layers and element-wise activations from its own tensors (no reverse pass). A
   model with a hook, or with a module whose kind has a registered rule, is not taken by it.
2. **Each module by its kind** (:data:`LAYER_RULES`, keyed by the module's class, the first
   class of its MRO with a rule): ``nn.Linear`` applied once per input to a vector goes
   through its output derivatives (:mod:`.linear`, ``∂h/∂W[r,c] = g[r] x[c]``); a kind the
   user registered with :func:`register_layer` runs its registered functional forward in the
   engine's working copy (never in the user's module); a model holding such a module, stock
   kinds included, is always copied (``prepared._borrowable`` asks :func:`rule_for`).
3. **Everything else**: the generic rule, ``torch.func`` (``jacrev``, ``jvp``, ``vmap``) on
   the functional form of the module: any module made of differentiable torch functions.

Where no rule applies, because ``torch.func`` cannot transform a module's forward (a custom
``torch.autograd.Function`` without vmap support, ``.item()`` or ``.numpy()`` on a tensor that
depends on θ, Python control flow on such a tensor), :func:`probe_generic` refuses the model
at once with an :class:`~fisher_verify.errors.UnsupportedError` naming the innermost module
that failed and how to register a rule for its kind.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedError
from ..validation import check_callable

__all__ = ["register_layer", "unregister_layer"]

#: Whole-model rules, tried in this order before any layer rule: name -> what it accepts.
MODEL_RULES: dict[str, str] = {
    "mlp": "an Eq. 3 network: a fisher_verify Network, or an nn.Sequential of Linear layers and "
           "one smooth elementwise activation (networks.torch_import)",
}


@dataclass(frozen=True)
class LayerRule:
    """How the engine differentiates one kind of module.

    Attributes:
        name: shown in results and messages (``"linear"``, or the kind's class name).
        forward: ``forward(module, *args, **kwargs) -> output`` written with differentiable
            torch functions only, used instead of the module's own ``forward`` in the working
            copy; it reads the module's parameters as attributes (``module.weight``), so the
            engine's substituted θ flows through it. ``None``: the module's own forward.
        taps: the module is an affine map ``a = W x + b`` whose parameters' Jacobian rows
            factor as ``g[r] x[c]`` (lemma-13; :mod:`.linear`).
    """

    name: str
    forward: Callable[..., Any] | None = None
    taps: bool = False


def _builtin() -> dict[type, LayerRule]:
    import torch

    return {torch.nn.Linear: LayerRule("linear", taps=True)}


#: Module class -> its rule. Built in: ``nn.Linear`` (filled on the first lookup, so that
#: importing this module does not import torch); :func:`register_layer` adds more.
LAYER_RULES: dict[type, LayerRule] = {}


def _table() -> dict[type, LayerRule]:
    if not LAYER_RULES:
        LAYER_RULES.update(_builtin())
    return LAYER_RULES


def register_layer(kind: type, forward: Callable[..., Any]) -> LayerRule:
    """Give the engine a rule for the user's own module class ``kind`` (and its subclasses).

    ``forward(module, *args, **kwargs)`` must compute what ``kind.forward`` computes, with
    differentiable torch functions only (no custom ``autograd.Function`` without vmap
    support, no ``.item()``/``.numpy()``/Python branches on values that depend on θ). The
    engine then differentiates it like any other module (exact diag I(θ), Var(Î₁), Var(Î₂),
    the gate's reference); the user's module and its class are never changed.

    Raises:
        FisherVerifyError: ``kind`` not a subclass of ``torch.nn.Module``; ``forward`` not
            callable.
    """
    import torch

    from ..errors import ShapeError

    if not (isinstance(kind, type) and issubclass(kind, torch.nn.Module)):
        raise ShapeError(f"kind must be a subclass of torch.nn.Module, got {kind!r}")
    check_callable(forward, "forward", "forward(module, *inputs) -> output")
    rule = LayerRule(kind.__name__, forward=forward)
    _table()[kind] = rule
    return rule


def unregister_layer(kind: type) -> None:
    """Remove the rule :func:`register_layer` gave ``kind`` (built-in rules stay)."""
    table = _table()
    if kind in table and kind not in _builtin():
        del table[kind]


def rule_for(module: Any) -> LayerRule | None:
    """The rule of the first class in ``type(module)``'s MRO that has one, else ``None`` (the
    generic rule)."""
    table = _table()
    for cls in type(module).__mro__:
        if cls in table:
            rule = table[cls]
            # the Linear factorisation holds for nn.Linear itself, not for a subclass that
            # may compute something else in its own forward
            if rule.taps and cls is not type(module):
                return None
            return rule
    return None


def apply_layer_rules(work: Any) -> list[str]:
    """Install the registered forwards on the working copy ``work`` (a deep copy: the user's
    module is not touched); returns ``"name (Kind)"`` of every module so changed."""
    changed = []
    for name, mod in work.named_modules():
        rule = rule_for(mod)
        if rule is not None and rule.forward is not None:
            fn = rule.forward

            def forward(self: Any, *args: Any, _fn: Any = fn, **kwargs: Any) -> Any:
                return _fn(self, *args, **kwargs)

            mod.forward = types.MethodType(forward, mod)
            changed.append(f"{name or '<root>'} ({type(mod).__name__})")
    return changed


def probe_generic(prep: Any, x: Any) -> None:
    """Run the generic rule once (one reverse pass under ``vmap``, for one input of ``x``) and
    refuse the model, naming the module where ``torch.func`` fails, when it cannot.

    Raises:
        UnsupportedError: ``torch.func`` cannot differentiate the forward of some module.
    """
    from torch.func import grad, vmap

    stack: list[str] = []
    handles = []
    for name, mod in prep.module.named_modules():
        label = f"{name or '<root>'} ({type(mod).__name__})"

        def pre(_m: Any, _a: Any, _label: str = label) -> None:
            stack.append(_label)

        def post(_m: Any, _a: Any, _o: Any) -> None:
            if stack:
                stack.pop()

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))

    def one(t: dict[str, Any], xi: Any) -> Any:
        return prep._h(t, xi).sum()

    try:
        vmap(grad(one), in_dims=(None, 0))(prep.params, x[:1])
    except Exception as exc:  # noqa: BLE001 - every failure of the transform is named below
        where = stack[-1] if stack else "<root>"
        raise UnsupportedError(
            f"no rule of the engine can differentiate module {where}: torch.func fails in its "
            f"forward ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Register a rule for its kind with fisher_verify.register_layer(Kind, "
            "forward), a forward written with differentiable torch functions (docs/models.md, "
            "'Your own layer')"
        ) from None
    finally:
        for h in handles:
            h.remove()
