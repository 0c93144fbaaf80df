"""``fisher-verify analyze``: both estimators' variance, bounds and sample sizes for a user's
network (weights in ``.npz`` or a saved ``nn.Sequential``) at a user's input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FisherVerifyError
from ..numpy_files import load_numpy_file
from .common import parse_params


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze",
        help="variance of both Fisher estimators for your network and input",
        description="Exact Fisher, both estimators' variance (thm-4, thm-6), bounds (thm-7, "
        "thm-8), p.s.d. probability (thm-10) and samples needed (lemma-12).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="W.npz", help="arrays W0, W1, ... (bias last column)")
    src.add_argument("--torch-model", metavar="MODEL.pt",
                     help="a whole nn.Sequential saved with torch.save(model, path) (Linear "
                     "layers and one activation, ending with Linear; not a state_dict). It is "
                     "loaded with torch.load(weights_only=False), which unpickles arbitrary "
                     "objects: only pass files you trust")
    p.add_argument("--x", required=True, metavar="x.npy", help="input (n_0,) or inputs (M, n_0)")
    p.add_argument("--family", required=True, help="output family, e.g. bernoulli, categorical")
    p.add_argument("--param", action="append", default=[], metavar="k=v",
                   help="family parameter, e.g. --param K=10 (repeatable)")
    p.add_argument("--activation", default=None,
                   help="hidden activation of --weights (default tanh); a torch model's comes "
                   "from its modules")
    p.add_argument("--samples", "-n", type=int, default=1, help="draws N per input (default 1)")
    p.add_argument("--target", type=float, default=0.1, help="relative accuracy (default 0.1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=handle)


def _load_x(path: str) -> np.ndarray:
    """``--x``: one real ``.npy`` array, read without unpickling anything."""
    data = load_numpy_file(path, f"--x {path!r}")
    if data is None:
        raise FisherVerifyError(
            f"--x {path!r} is not a readable NumPy .npy array (empty, damaged, another kind of "
            "file, or Python objects, which are never unpickled); write it with numpy.save"
        )
    if not isinstance(data, np.ndarray):
        data.close()
        raise FisherVerifyError(
            f"--x {path!r} is an .npz archive; --x needs one .npy array (n_0,) or (M, n_0)"
        )
    if data.dtype.kind not in "iuf":
        raise FisherVerifyError(
            f"--x {path!r} holds {data.dtype} values; inputs must be real numbers "
            "(integer or floating dtype)"
        )
    return np.asarray(data, dtype=float)


def _load_torch(path: str, fam: Any) -> Any:
    import fisher_verify as fv

    if not Path(path).is_file():
        raise FisherVerifyError(f"model file {path!r} does not exist")
    try:
        import torch

        # a whole pickled module, not only tensors: weights_only=True would refuse it
        model = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable model is a user error
        raise FisherVerifyError(f"cannot load torch model {path!r}: {exc}") from None
    if not isinstance(model, torch.nn.Sequential):
        raise FisherVerifyError(
            f"{path!r} holds a {type(model).__name__}, not an nn.Sequential; save the module "
            "itself with torch.save(model, path), not its state_dict")
    return fv.Network.from_torch(model, family=fam)


def handle(args: argparse.Namespace) -> int:
    """Run :func:`fisher_verify.analyze` and print text or JSON."""
    import fisher_verify as fv

    fam = fv.family(args.family, **parse_params(args.param))
    if args.weights:
        net = fv.Network.from_npz(args.weights, activation=args.activation or "tanh", family=fam)
    elif args.activation is not None:
        raise FisherVerifyError(
            f"--activation {args.activation!r} applies to --weights only; the activation of "
            "--torch-model comes from the model's modules"
        )
    else:
        net = _load_torch(args.torch_model, fam)
    x = _load_x(args.x)
    try:
        net.inputs(x)
    except FisherVerifyError as exc:  # the shape or values of the file the user named
        raise type(exc)(f"--x {args.x!r}: {exc}") from None
    result = fv.analyze(net, x, n=args.samples, target=args.target)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(result.summary())
    return 0
