"""``fisher-verify analyze-model``: any torch model over a data set (issue 9).

The model comes from code the user controls (``--model my_pkg.models:build``, a callable
returning the ``nn.Module``) plus tensors loaded with ``torch.load(weights_only=True)``, which
never runs code from the file. A whole pickled module is accepted only with ``--trust-pickle``.
Writes a per-layer table (text), JSON and a PNG of both estimators' per-layer variances.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import FisherVerifyError
from .common import parse_params, prepare_output_dir

PICKLE_HELP = (
    "a whole module saved with torch.save(model, path). Unpickling executes arbitrary code "
    "stored in the file, so it is refused unless you also pass --trust-pickle; prefer --model "
    "with --weights (a state_dict, loaded with weights_only=True)")


def register(subparsers: Any) -> None:
    """Add the ``analyze-model`` subcommand."""
    p = subparsers.add_parser(
        "analyze-model",
        help="Fisher diagonal and both estimators' variance for any torch model over a data set",
        description="Exact diag I(theta) (eq-6) and Var(I1) (thm-4) of any torch model; Var(I2) "
        "(thm-6) exact where the structure allows, else a labelled estimate, refused for non-C2 "
        "models; ||Cov(I1)||_F and thm-7; samples needed (lemma-12). Per tensor and per layer.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="MODULE:CALLABLE",
                     help="import path of a callable returning the nn.Module, e.g. "
                     "my_pkg.models:build (imported from your own code; the current folder is "
                     "searched too)")
    src.add_argument("--pickled-model", metavar="MODEL.pt", help=PICKLE_HELP)
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --pickled-model: only for files you trust, because unpickling runs "
                   "code from the file")
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V",
                   help="keyword argument for the --model callable (repeatable)")
    p.add_argument("--weights", metavar="W.pt",
                   help="state_dict for the --model module, loaded with torch.load(weights_only=True)")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="inputs: .npy array (M, ...), or .pt holding a tensor, a tuple (inputs, "
                   "targets) or a dict with key 'inputs' (loaded with weights_only=True)")
    p.add_argument("--family", required=True, help="output family, e.g. categorical")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="family parameter, e.g. --param K=10 (repeatable)")
    p.add_argument("--samples", "-n", type=int, default=1, help="draws N per input (default 1)")
    p.add_argument("--target", type=float, default=0.1, help="relative accuracy (default 0.1)")
    p.add_argument("--eval", action="store_true", dest="eval_mode",
                   help="differentiate the model in eval mode (dropout off, running statistics)")
    p.add_argument("--not-smooth", action="store_true",
                   help="declare the model not C2 (Var(I2) is then refused)")
    p.add_argument("--method", default="auto", choices=["auto", "eq3", "hessian", "hutchinson"],
                   help="Var(I2) route (default auto: exact where possible, else an estimate)")
    p.add_argument("--probes", type=int, default=16, help="Hutchinson probes (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hutchinson probes")
    p.add_argument("--memory", type=int, default=1024, metavar="MiB",
                   help="memory budget per batch in MiB (default 1024)")
    p.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the model's)")
    p.add_argument("--out", metavar="DIR", help="write table.txt, report.json, variances.png here")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=handle)


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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FisherVerifyError(
            f"cannot load {what} {path!r} with weights_only=True (tensors only, no code): {first}"
        ) from None


def load_model(args: argparse.Namespace) -> Any:
    """The module from ``--model`` (+ ``--weights``) or, when trusted, ``--pickled-model``."""
    import torch

    if args.pickled_model:
        if not args.trust_pickle:
            raise FisherVerifyError(
                "--pickled-model needs --trust-pickle: unpickling runs code stored in the file; "
                "prefer --model MODULE:CALLABLE with --weights")
        _file(args.pickled_model, "model file")
        try:
            model = torch.load(args.pickled_model, weights_only=False, map_location="cpu")
        except Exception as exc:  # noqa: BLE001
            raise FisherVerifyError(f"cannot load model {args.pickled_model!r}: {exc}") from None
    else:
        mod_name, sep, attr = args.model.partition(":")
        if not sep or not mod_name or not attr:
            raise FisherVerifyError(
                f"--model {args.model!r} must look like MODULE:CALLABLE, e.g. my_pkg.models:build")
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise FisherVerifyError(f"cannot import {mod_name!r} for --model: {exc}") from None
        build = getattr(module, attr, None)
        if not callable(build):
            raise FisherVerifyError(f"{mod_name!r} has no callable {attr!r}")
        kwargs = parse_params(args.model_arg)
        try:
            model = build(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's builder failed
            raise FisherVerifyError(f"{args.model}({kwargs or ''}) failed: {type(exc).__name__}: "
                                    f"{exc}") from None
        if args.weights:
            state = _torch_load(args.weights, "weights")
            if not isinstance(state, dict):
                raise FisherVerifyError(f"--weights {args.weights!r} holds a {type(state).__name__}, "
                                        "not a state_dict (save model.state_dict())")
            if isinstance(model, torch.nn.Module):
                try:
                    model.load_state_dict(state)
                except RuntimeError as exc:
                    first = str(exc).splitlines()[0]
                    raise FisherVerifyError(f"--weights do not fit the model: {first}") from None
    if not isinstance(model, torch.nn.Module):
        raise FisherVerifyError(f"the model is a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_data(path: str) -> Any:
    """Inputs from ``.npy`` (no pickles) or ``.pt`` (``weights_only=True``)."""
    import numpy as np
    import torch

    if path.endswith(".npy"):
        _file(path, "data file")
        try:
            return torch.as_tensor(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise FisherVerifyError(f"cannot read data {path!r} as a .npy array: {exc}") from None
    data = _torch_load(path, "data file")
    if isinstance(data, dict):
        for key in ("inputs", "x", "X"):
            if key in data:
                return data[key]
        raise FisherVerifyError(f"data {path!r} is a dict without an 'inputs' key: {sorted(data)}")
    return data


def handle(args: argparse.Namespace) -> int:
    """Run :func:`fisher_verify.analyze_model`; print the table (or JSON) and write the files."""
    import torch

    import fisher_verify as fv

    if args.samples < 1:
        raise FisherVerifyError(f"--samples must be >= 1, got {args.samples}")
    if args.memory < 1:
        raise FisherVerifyError(f"--memory must be >= 1 MiB, got {args.memory}")
    out_dir = prepare_output_dir(args.out) if args.out else None
    fam = fv.family(args.family, **parse_params(args.param))
    model = load_model(args)
    data = load_data(args.data)
    rep = fv.analyze_model(
        model, data, fam, n=args.samples, target=args.target, eval_mode=args.eval_mode,
        smooth=False if args.not_smooth else None, method=args.method, probes=args.probes,
        seed=args.seed, memory=args.memory << 20,
        dtype=torch.float32 if args.float32 else None, device=args.device,
    )
    text = rep.summary()
    print(rep.to_json(indent=2) if args.json else text)
    if out_dir is not None:
        (out_dir / "table.txt").write_text(text + "\n", encoding="utf-8")
        (out_dir / "report.json").write_text(rep.to_json(indent=2) + "\n", encoding="utf-8")
        rep.plot(str(out_dir / "variances.png"))
    return 0

