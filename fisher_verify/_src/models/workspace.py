"""What every rule of the engine works on: the prepared model, its input stream, the process
group and the memory budget (:class:`Workspace`), the per-parameter result (:class:`Diagonals`),
and the batch plan that keeps one batch's Jacobian rows within the budget.

The first-order sums (:mod:`.diagonals`) and the second-order ones (:mod:`.hessian`) both build
on this module; neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..distributed import all_reduce_sums, process_group
from ..errors import ShapeError, UnsupportedError
from ..validation import check_budget, check_flag, check_materialized
from .data import InputStream, Progress
from .device import resolve_device
from .prepared import PreparedModel, prepare_model

__all__ = ["open_workspace"]

#: Default memory budget (bytes) for one batch's Jacobian rows and their contractions.
DEFAULT_MEMORY = 1 << 30
#: Largest batch of inputs processed at once, whatever the budget.
MAX_BATCH = 4096


class Diagonals(dict[str, Any]):
    """``{parameter name: tensor shaped like the parameter}``, with how it was obtained.

    Attributes:
        exact: ``{name: bool}``: False where the values are an unbiased estimate.
        stderr: ``{name: tensor}`` standard errors of the estimated entries (zeros where exact).
        method: how the values were computed (``"jacobian"``, ``"eq3"``, ``"hessian"``,
            ``"hutchinson"`` or a mix, per name in ``methods``).
    """

    def __init__(self, values: dict[str, Any], exact: dict[str, bool] | None = None,
                 stderr: dict[str, Any] | None = None, methods: dict[str, str] | None = None) -> None:
        super().__init__(values)
        self.exact = exact if exact is not None else {k: True for k in values}
        self.stderr = stderr
        self.methods = methods if methods is not None else {k: "jacobian" for k in values}
        #: per estimated tensor, the delete-one-probe values of its sum (S,): the standard
        #: error of any sum over tensors follows from them (:meth:`sum_stderr`)
        self.jackknife: dict[str, Any] = {}
        #: Hutchinson probes used (0 when every entry is exact) and how they were chosen
        self.probes = 0
        self.probe_note = ""

    def scale_(self, c: float) -> Diagonals:
        """Multiply the diagonals (and standard errors) by ``c > 0`` in place (a route's own
        fresh sums: no second copy of every value); an exact entry's standard error is 0 and
        stays so."""
        for v in self.values():
            v.mul_(c)
        if self.stderr is not None:
            for k, v in self.stderr.items():
                if not self.exact.get(k, False):
                    v.mul_(c)
        for v in self.jackknife.values():
            v.mul_(c)
        return self

    def sum_over(self, names: list[str]) -> tuple[float, float, bool]:
        """``(Σ values, its standard error, exact)`` over the tensors ``names``."""
        total = float(sum(float(self[k].sum()) for k in names))
        jack = [self.jackknife[k] for k in names if k in self.jackknife]
        if not jack:
            return total, 0.0, all(self.exact[k] for k in names)
        from ..fisher.ustat import jackknife_stderr

        return total, float(jackknife_stderr(sum(jack))), False

    @property
    def all_exact(self) -> bool:
        """Whether every entry is exact (to rounding)."""
        return all(self.exact.values())


@dataclass
class Workspace:
    """A prepared model, its input stream, the process group and the memory budget."""

    prep: PreparedModel
    stream: InputStream
    rank: int
    world: int
    memory: int
    progress: bool
    names: list[str] = field(default_factory=list)
    taps: Any = None  # LinearTaps: Linear layers through their output derivatives
    #: first derivatives through :mod:`.taps` where it applies (``structured``)
    layers: bool = False
    #: makes the full preparation (a working copy, LinearTaps) of a light workspace
    remake: Callable[[], tuple[Any, Any]] | None = None
    #: the data's first inputs (``InputStream.example``), on the working device and dtype
    example: Any = None
    #: whether ``taps.sites`` went through their self-check (made at the first ``sites``, since
    #: the whole-model mlp rule never asks for them)
    sites_checked: bool = False

    def batches(self, size: int, label: str) -> Iterator[Any]:
        """This process's inputs in batches of ``size``, counted on a progress line on stderr
        (``fisher-verify: <label>``) when the workspace shows progress."""
        bar = Progress(self.stream.local_count(), f"fisher-verify: {label}") if self.progress else None
        try:
            for X in self.stream.batches(size):
                yield X
                if bar:
                    bar.update(int(X.shape[0]))
        finally:
            if bar:
                bar.close()

    def generic(self) -> None:
        """Make the preparation the generic per-input route needs (light workspaces only)."""
        if self.remake is not None:
            self.prep, self.taps = self.remake()
            self.remake = None
            self.sites_checked = False

    @property
    def sites(self) -> list[Any]:
        if self.taps is None:
            return []
        if not self.sites_checked:
            from .taps import verified_linear_sites

            self.taps.sites = verified_linear_sites(self.prep, self.example, self.taps.sites)
            self.sites_checked = True
        return list(self.taps.sites)


def open_workspace(
    model: Any, data: Any, family: Any, *, output: Callable[[Any], Any] | None = None,
    dtype: Any = None, device: Any = None, eval_mode: bool = False, smooth: bool | None = None,
    memory: int | None = None, distributed: bool | None = None, progress: bool = True,
    structured: bool = True, light: bool = False,
) -> Workspace:
    """Check everything the user gave and prepare the working copy (see :func:`prepare_model`).

    ``structured=False`` sends Linear and Conv layers through the generic per-parameter
    Jacobian too (:mod:`.linear`, :mod:`.taps`; for checking). ``light=True`` (first
    derivatives only) prepares for :mod:`.taps` alone: no copy where none is needed
    (``prepare_model(borrow=True)``), the rest made only if the generic route is taken.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ShapeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_materialized(model)  # before the data are moved to its device
    memory = DEFAULT_MEMORY if memory is None else check_budget(memory, "memory")
    # flags are read as given: bool("no") would be True, the opposite of what was meant
    eval_mode = bool(check_flag(eval_mode, "eval_mode"))
    progress = bool(check_flag(progress, "progress"))
    smooth = check_flag(smooth, "smooth", allow_none=True)
    distributed = check_flag(distributed, "distributed", allow_none=True)
    if dtype is not None and dtype not in (torch.float64, torch.float32):
        raise UnsupportedError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
    if device is not None:  # an unusable device is the user's error, not a torch traceback
        resolve_device(str(device))
    rank, world = process_group(distributed)
    dt = torch.float64 if dtype is None else dtype
    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else "cpu")
    stream = InputStream(data, device=dev, dtype=dt, rank=rank, world=world)
    example = stream.example()

    def full() -> tuple[PreparedModel, Any]:
        from .linear import LinearTaps  # (not imported where the mlp rule answers alone)

        prep = prepare_model(model, family, example, output=output, dtype=dtype, device=device,
                             eval_mode=eval_mode, smooth=smooth)
        if not structured:
            return prep, None
        return prep, LinearTaps(prep, example)  # sites checked at first use (Workspace.sites)

    if light and structured:
        prep = prepare_model(model, family, example, output=output, dtype=dtype, device=device,
                             eval_mode=eval_mode, smooth=smooth, borrow=True)
        return Workspace(prep, stream, rank, world, memory, progress, list(prep.params), None,
                         layers=True, remake=full, example=example)
    prep, taps = full()
    return Workspace(prep, stream, rank, world, memory, progress, list(prep.params), taps,
                     layers=structured, example=example)


def moments(prep: PreparedModel, h: Any) -> Any:
    """``uᵀ I(h) v`` and ``C[u⁴]`` contractions for one batch: the family's own
    (``Family.contractions``; eq-6, thm-4, O(K) for the categorical family)."""
    return prep.family.contractions(h)


def plan(ws: Workspace, factor: int, names: list[str] | None = None,
         extra: int = 0) -> tuple[list[list[str]], int]:
    """Groups of the parameters ``names`` (default all) and the batch size that keep
    ``B · (n_L · P_group · factor + extra)`` numbers in budget (``extra`` per input).

    Raises:
        UnsupportedError: one parameter tensor alone does not fit the budget for one input.
    """
    prep = ws.prep
    itemsize = 8 if prep.dtype == __import__("torch").float64 else 4
    budget = max(1, ws.memory // itemsize - extra)
    per_param = prep.n_L * factor  # numbers per parameter per input
    cap = max(1, budget // per_param)
    groups: list[list[str]] = []
    size = 0
    for name in prep.params if names is None else names:
        p = prep.params[name]
        k = int(p.numel())
        if k > cap:
            raise UnsupportedError(
                f"parameter {name} ({k} entries) needs {k * per_param * itemsize / 2**20:.0f} MiB "
                f"for one input's Jacobian rows (n_L = {prep.n_L}), above the memory budget of "
                f"{ws.memory / 2**20:.0f} MiB; raise memory=")
        if groups and size + k <= cap:
            groups[-1].append(name)
            size += k
        else:
            groups.append([name])
            size = k
    largest = max((sum(int(prep.params[n].numel()) for n in g) for g in groups), default=0)
    batch = int(max(1, min(MAX_BATCH, (ws.memory // itemsize) // (per_param * largest + extra + 1))))
    return groups, batch


def total_inputs(ws: Workspace, local: int) -> int:
    """M over all processes."""
    import torch

    M = int(local)
    if ws.world > 1:  # (one process: nothing to add, no tensor made)
        c = torch.tensor([float(local)], dtype=torch.float64, device=ws.prep.device)
        all_reduce_sums([c], ws.world)
        M = int(c.item())
    if M < 1:
        raise ShapeError("the data holds no input")
    return M


def shaped(ws: Workspace, flat: dict[str, Any], scale: float) -> dict[str, Any]:
    """The routes' flat per-parameter sums times ``scale``, shaped like the parameters. Scaled in
    place: every route returns sums of its own (no copy of P values)."""
    return {k: v.mul_(scale).reshape(ws.prep.params[k].shape) for k, v in flat.items()}


