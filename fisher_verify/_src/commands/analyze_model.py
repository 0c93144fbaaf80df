"""``fisher-verify analyze --model``: any torch model over a data set (issue 9).

``analyze-model`` is another name of ``analyze`` (:mod:`.analyze` registers both and sends
``--model``/``--data`` here).

The model comes from code the user controls (``--model my_pkg.models:build``, a callable
returning the ``nn.Module``) plus tensors loaded with ``torch.load(weights_only=True)``, which
never runs code from the file. A whole pickled module is accepted only with ``--trust-pickle``.
Writes a per-layer table (text), JSON and a PNG of both estimators' per-layer variances.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FisherVerifyError
from .common import parse_params, prepare_output_dir

#: exit code of a result that was computed but is degenerate (``degenerate`` of the result)
DEGENERATE_EXIT = 3
#: ``--torch-model`` (alias ``--pickled-model``): why it needs ``--trust-pickle``
PICKLE_HELP = (
    "a whole module saved with torch.save(model, path): with --x an Eq. 3 nn.Sequential (Linear "
    "layers and one activation), with --data any module. Unpickling executes arbitrary code "
    "stored in the file, so it is refused unless you also pass --trust-pickle; prefer --model "
    "with --weights (a state_dict, loaded with weights_only=True)")
TRUST_HELP = ("allow --torch-model/--pickled-model: unpickling a whole module runs code stored in "
              "the file, so pass this only for files you trust")

#: options of the any-model route (``--model``/``--data``), refused on the Eq. 3 route; the
#: values that mean "not given" (the real defaults are applied in :func:`run`)
MODEL_ONLY = {"model_arg": "--model-arg", "eval_mode": "--eval", "not_smooth": "--not-smooth",
              "method": "--method", "probes": "--probes", "seed": "--seed",
              "rel_precision": "--rel-precision",
              "memory": "--memory", "float32": "--float32", "device": "--device", "out": "--out"}
DEFAULT_METHOD, DEFAULT_PROBES, DEFAULT_SEED, DEFAULT_MEMORY_MIB = "auto", 16, 0, 1024


def add_arguments(p: argparse.ArgumentParser, source: Any) -> None:
    """The options of the any-model route (issue 9) on the ``analyze`` parser; ``--model``
    goes to the group ``source`` (where the network is given)."""
    source.add_argument("--model", metavar="MODULE:CALLABLE",
                        help="import path of a callable returning the nn.Module, e.g. "
                        "my_pkg.models:build (imported from your own code; the current folder "
                        "is searched too); its weights come from --weights W.pt")
    g = p.add_argument_group("any torch model over a data set (--model or --torch-model with --data)")
    g.add_argument("--model-arg", action="append", default=None, metavar="K=V",
                   help="keyword argument for the --model callable (repeatable)")
    g.add_argument("--data", metavar="DATA",
                   help="inputs: .npy array (M, ...), or .pt holding a tensor, a tuple (inputs, "
                   "targets) or a dict with key 'inputs' (loaded with weights_only=True)")
    g.add_argument("--eval", action="store_true", dest="eval_mode",
                   help="differentiate the model in eval mode (dropout off, running statistics)")
    g.add_argument("--not-smooth", action="store_true",
                   help="declare the model not C2 (Var(I2) and thm-8 are then refused)")
    g.add_argument("--method", default=None, choices=["auto", "eq3", "hessian", "hutchinson"],
                   help="Var(I2) route (default auto: exact where possible, else an estimate)")
    g.add_argument("--probes", type=_probes, default=None,
                   help="Hutchinson probes: a count (3 to MAX_PROBES = 4096, default 16) or "
                   "'auto' (as many as --rel-precision needs, capped at 4096)")
    g.add_argument("--rel-precision", type=float, default=None, metavar="R",
                   help="with --probes auto: the relative standard error of sum Var(I2) aimed "
                   "at (default 0.1)")
    g.add_argument("--seed", type=int, default=None, help="seed of the Hutchinson probes (default 0)")
    g.add_argument("--memory", type=int, default=None, metavar="MiB",
                   help="memory budget in MiB (default 1024): per batch of a model's inputs, "
                   "or what an Eq. 3 network's analysis may hold at once")
    g.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    g.add_argument("--device", default=None, help="cpu, cuda, ... (default: the model's)")
    g.add_argument("--out", metavar="DIR", help="write table.txt, report.json, variances.png here")


def _probes(text: str) -> int | str:
    """``--probes``: ``auto`` or a whole number (its range is judged with the other checks)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'auto', got {text!r}") from None


def given_model_options(args: argparse.Namespace) -> list[str]:
    """The any-model options the user gave (as flags)."""
    return [flag for dest, flag in MODEL_ONLY.items() if getattr(args, dest) not in (None, False)]


def _file(path: str, what: str) -> Path:
    target = Path(path)
    if not target.is_file():
        raise FisherVerifyError(f"{what} {path!r} does not exist or is not a file")
    return target


def _torch_load(path: str, what: str) -> Any:
    import torch

    _file(path, what)
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "Weights only load failed" in first:  # torch's advice to unpickle is not ours
            reason = ("it holds Python objects besides tensors (a whole pickled module?), "
                      "which are never unpickled here")
        else:
            reason = f"not a torch.save file ({type(exc).__name__}: {first[:120]})"
        raise FisherVerifyError(
            f"cannot load {what} {path!r} with weights_only=True (tensors only, no code): {reason}"
        ) from None


def _first_change(value: Any, cast: Any) -> str:
    """Where ``cast`` (``value`` in another dtype) first differs from ``value``."""
    import torch

    back = cast.to(value.dtype)
    differs = (back != value) | (torch.isnan(value) if value.is_floating_point() else False)
    index = [int(i) for i in torch.nonzero(differs.reshape(value.shape))[0].tolist()] \
        if value.ndim else []
    at = value[tuple(index)] if index else value
    to = cast[tuple(index)] if index else cast
    return f"{at.item()} at {index} would become {to.item()}"


def exact_state(state: dict[str, Any], model: Any, path: str) -> dict[str, Any]:
    """``state`` ready for ``model.load_state_dict`` without changing any value:
    ``load_state_dict`` copies each tensor into the model's dtype, which truncates floats into
    an integer tensor (0.3 -> 0) and rounds float64 into float32 or integers past 2^53.

    Integers into a floating tensor are converted explicitly (exact, checked); a floating
    tensor of more precision than the model's makes the model float64 (its values are then
    kept as saved); anything that cannot be kept exactly is refused, naming the tensor.
    """
    import torch

    target = model.state_dict()
    out = dict(state)
    widen = False
    for key, value in state.items():
        mine = target.get(key)
        if not isinstance(value, torch.Tensor) or not isinstance(mine, torch.Tensor):
            continue  # missing and unexpected keys are load_state_dict's to name
        if mine.is_floating_point() and not (value.is_floating_point() or value.is_complex()):
            wide = value.to(torch.float64)
            if not torch.equal(wide.to(value.dtype), value):
                raise FisherVerifyError(
                    f"--weights {path!r}: integer tensor {key!r} does not fit float64 exactly "
                    f"({_first_change(value, wide)}); save floating-point weights")
            out[key] = wide
            widen = widen or not torch.equal(value.to(mine.dtype).to(value.dtype), value)
        elif mine.is_floating_point() and value.is_floating_point():
            widen = widen or torch.finfo(value.dtype).bits > torch.finfo(mine.dtype).bits
        elif not mine.is_floating_point() and value.dtype != mine.dtype:
            cast = value.to(mine.dtype)
            if value.is_complex() or not torch.equal(cast.to(value.dtype), value):
                raise FisherVerifyError(
                    f"--weights {path!r}: tensor {key!r} holds {value.dtype} values but the "
                    f"model's {key!r} is {mine.dtype}; loading would change them "
                    f"({_first_change(value, cast)}); make the model's tensor "
                    f"{value.dtype} or save {mine.dtype} values")
    if widen:
        # the model's floating tensors are too narrow for the saved values: float64 keeps them
        model.to(torch.float64)
    return out


def load_pickled_module(path: str, trusted: bool) -> Any:
    """A whole pickled module, only when the user opted in with ``--trust-pickle`` (refused
    before the file is opened otherwise)."""
    import torch

    if not trusted:
        raise FisherVerifyError(
            f"--torch-model/--pickled-model {path!r} needs --trust-pickle: unpickling a whole "
            "module runs code stored in the file; the safe alternative is --model "
            "pkg.mod:build --weights state_dict.pt (loaded with weights_only=True)")
    _file(path, "model file")
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable model is a user error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FisherVerifyError(f"cannot load torch model {path!r}: {first}") from None


class _ExitCalled(BaseException):
    """Raised in place of ``os._exit`` while user code runs (it would end the process with no
    verdict and no message)."""


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


@contextlib.contextmanager
def _guarded(what: str) -> Iterator[None]:
    """Run user code (importing the ``--model`` module, calling its builder) so that nothing it
    raises or exits with ends the command without a verdict: ``sys.exit``, ``os._exit``,
    ``KeyboardInterrupt`` or any other exception becomes exit 2 naming ``what`` and what
    happened."""
    real_exit = os._exit

    def refuse_exit(code: int) -> None:
        raise _ExitCalled(code)

    os._exit = refuse_exit  # type: ignore[assignment]
    try:
        yield
    except FisherVerifyError:
        raise
    except _ExitCalled as exc:
        raise FisherVerifyError(f"{what} called os._exit({exc.args[0]}): it must return a "
                                "model, not end the process") from None
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
        raise FisherVerifyError(f"{what} called sys.exit({code!r}) (SystemExit): it must return "
                                "a model, not end the process") from None
    except BaseException as exc:  # noqa: BLE001 - whatever the user's code raised is named
        text = " ".join(str(exc).split())
        raise FisherVerifyError(f"{what} failed: {type(exc).__name__}"
                                + (f": {text}" if text else "")) from None
    finally:
        os._exit = real_exit


def load_model(args: argparse.Namespace) -> Any:
    """The module from ``--model`` (+ ``--weights``) or, when trusted, ``--torch-model``."""
    import torch

    if args.torch_model:
        model = load_pickled_module(args.torch_model, args.trust_pickle)
    else:
        mod_name, sep, attr = args.model.partition(":")
        if not sep or not mod_name or not attr:
            raise FisherVerifyError(
                f"--model {args.model!r} must look like MODULE:CALLABLE, e.g. my_pkg.models:build")
        if not all(part.isidentifier() for part in mod_name.split(".")):
            raise FisherVerifyError(
                f"--model {args.model!r}: {mod_name!r} is not a module import path (dotted "
                "Python names such as my_pkg.models, not a file path); run from the folder "
                "that holds the module, or put that folder on PYTHONPATH")
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        kwargs = parse_params(args.model_arg, "--model-arg")
        with _guarded(f"importing {mod_name!r} for --model {args.model!r}"):
            try:
                module = importlib.import_module(mod_name)
            except ImportError as exc:
                raise FisherVerifyError(f"cannot import {mod_name!r} for --model: {exc}") from None
            except SyntaxError as exc:  # the file and line, not the guard's generic words
                raise FisherVerifyError(
                    f"cannot import {mod_name!r} for --model: syntax error in {exc.filename} "
                    f"line {exc.lineno}: {exc.msg}") from None
        build = getattr(module, attr, None)
        if not callable(build):
            raise FisherVerifyError(f"{mod_name!r} has no callable {attr!r}")
        with _guarded(f"the --model builder {args.model}({_kwargs_text(kwargs)})"):
            model = build(**kwargs)
        if args.weights:
            state = _torch_load(args.weights, "weights")
            if not isinstance(state, dict):
                raise FisherVerifyError(f"--weights {args.weights!r} holds a {type(state).__name__}, "
                                        "not a state_dict (save model.state_dict())")
            if isinstance(model, torch.nn.Module):
                state = exact_state(state, model, args.weights)
                try:
                    model.load_state_dict(state)
                except RuntimeError as exc:
                    # torch's first line only names the module; the next ones name the tensors
                    parts = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
                    detail = "; ".join(parts)[:300] or str(exc)[:300]
                    raise FisherVerifyError(f"--weights {args.weights!r} do not fit the model: "
                                            f"{detail}") from None
    if not isinstance(model, torch.nn.Module):
        raise FisherVerifyError(f"the model is a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_data(path: str) -> Any:
    """Inputs from ``.npy`` (no pickles) or ``.pt`` (``weights_only=True``)."""
    import numpy as np
    import torch

    if path.endswith(".npy"):
        from ..numpy_files import load_numpy_file

        _file(path, "data file")
        # the one reader of user arrays: a header claiming more than the file holds (or than
        # its size limit) is refused before anything is read
        arr = load_numpy_file(path, f"data {path!r}")
        if not isinstance(arr, np.ndarray):
            if arr is not None:
                arr.close()
            raise FisherVerifyError(f"cannot read data {path!r} as a .npy array (damaged, "
                                    "another kind of file, or Python objects, never unpickled)")
        return torch.as_tensor(arr)
    data = _torch_load(path, "data file")
    if isinstance(data, dict):
        for key in ("inputs", "x", "X"):
            if key in data:
                return data[key]
        raise FisherVerifyError(f"data {path!r} is a dict without an 'inputs' key: {sorted(data)}")
    return data


def run(args: argparse.Namespace) -> int:
    """Run :func:`fisher_verify.analyze` (eq-6, thm-4, thm-6, thm-7, thm-8, lemma-12);
    print the table (or JSON) and write the files."""
    import torch

    from ..analysis import analyze
    from ..families.registry import family

    if args.samples < 1:
        raise FisherVerifyError(f"--samples must be >= 1, got {args.samples}")
    memory = DEFAULT_MEMORY_MIB if args.memory is None else args.memory
    if memory < 1:
        raise FisherVerifyError(f"--memory must be >= 1 MiB, got {memory}")
    from ..models.decision import MAX_PROBES, check_rel_precision

    probes = DEFAULT_PROBES if args.probes is None else args.probes
    # checked even when Var(I2) is refused or exact: a value given is judged
    if probes != "auto" and probes < 3:
        raise FisherVerifyError(f"--probes must be >= 3 (for a standard error), got {probes}")
    if probes != "auto" and probes > MAX_PROBES:
        raise FisherVerifyError(
            f"--probes {probes} is above the limit MAX_PROBES = {MAX_PROBES} (time and memory "
            "grow linearly in the probes); give fewer, or --probes auto --rel-precision R")
    if args.rel_precision is not None and probes != "auto":
        raise FisherVerifyError("--rel-precision applies to --probes auto only")
    rel = 0.1 if args.rel_precision is None else args.rel_precision
    try:
        check_rel_precision(rel)
    except FisherVerifyError:
        raise FisherVerifyError(
            f"--rel-precision must lie strictly between 0 and 1, got {rel}") from None
    out_dir = prepare_output_dir(args.out) if args.out else None
    if getattr(args, "loss", None) is not None:  # the loss module: family and link follow
        from ..families.losses import loss_module

        fam = loss_module(args.loss)
    else:
        fam = family(args.family, **parse_params(args.param))
    model = load_model(args)
    data = load_data(args.data)
    rep = analyze(
        model, data, fam, n=args.samples, target=args.target, eval_mode=args.eval_mode,
        smooth=False if args.not_smooth else None, method=args.method or DEFAULT_METHOD,
        probes=probes, seed=DEFAULT_SEED if args.seed is None else args.seed, rel_precision=rel,
        memory=memory << 20, dtype=torch.float32 if args.float32 else None, device=args.device,
    )
    text = rep.summary()
    print(rep.to_json(indent=2) if args.json else text)
    if out_dir is not None:
        (out_dir / "table.txt").write_text(text + "\n", encoding="utf-8")
        (out_dir / "report.json").write_text(rep.to_json(indent=2) + "\n", encoding="utf-8")
        rep.plot(str(out_dir / "variances.png"))
    for why in rep.degenerate:
        print(f"fisher-verify analyze: warning: degenerate result: {why}", file=sys.stderr)
    return DEGENERATE_EXIT if rep.degenerate else 0
