"""``fisher-verify analyze`` (also ``analyze-model``): both estimators' variance, bounds and
sample sizes for a user's Eq. 3 network (weights in ``.npz`` or a trusted pickled
``nn.Sequential``) at a user's input, or for any torch module over a data set
(:mod:`.analyze_model`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import jsontext
from ..errors import FisherVerifyError
from ..families.links import link_names
from ..families.losses import LOSS_NAMES, loss_module, resolve_head
from ..networks.activations import get_activation
from ..numpy_files import exact_float64, load_numpy_file
from . import analyze_model
from .common import parse_params
from .progress import StageProgress

#: exit code of a result that was computed but is degenerate (under- or overflow in float64,
#: see ``Analysis.degenerate``): printed in full, with a warning, but no gate should accept it
DEGENERATE_EXIT = analyze_model.DEGENERATE_EXIT


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand and its other name ``analyze-model``."""
    p = subparsers.add_parser(
        "analyze", aliases=["analyze-model"],
        help="variance of both Fisher estimators for your network or model and inputs",
        description="Exact Fisher, both estimators' variance (thm-4, thm-6), bounds (thm-7, "
        "thm-8), p.s.d. probability (thm-10) and samples needed (lemma-12). An Eq. 3 network "
        "(--weights W.npz or --torch-model, with --x) gets the dense analysis; any torch module "
        "(--model MODULE:CALLABLE --weights W.pt, or --torch-model, with --data) the per-layer "
        "one of fisher_verify.analyze. analyze-model is another name of this command. "
        "Exit codes: 0 a result, 2 refused input, "
        f"{DEGENERATE_EXIT} a degenerate result (under- or overflow in the working precision; "
        "printed in full, with a warning line on stderr saying why).",
    )
    src = p.add_argument_group("the network or model (one of --weights W.npz, --model, "
                               "--torch-model)")
    src.add_argument("--weights", metavar="FILE",
                     help="alone: W.npz with arrays W0, W1, ... of an Eq. 3 network (bias last "
                     "column); with --model: the module's state_dict W.pt, loaded with "
                     "torch.load(weights_only=True)")
    src.add_argument("--torch-model", "--pickled-model", dest="torch_model", metavar="MODEL.pt",
                     help=analyze_model.PICKLE_HELP)
    src.add_argument("--trust-pickle", action="store_true", help=analyze_model.TRUST_HELP)
    p.add_argument("--x", metavar="x.npy",
                   help="Eq. 3 network's input (n_0,) or inputs (M, n_0)")
    p.add_argument("--family", default=None,
                   help="output family, e.g. bernoulli, categorical (or give --loss)")
    p.add_argument("--loss", default=None, metavar="LOSS",
                   help="instead of --family, the loss the model is trained with, one of "
                   f"{', '.join(LOSS_NAMES)} (torch.nn's CrossEntropyLoss, NLLLoss after "
                   "log_softmax, BCEWithLogitsLoss, BCELoss on probabilities, PoissonNLLLoss "
                   "with log_input True/False, GaussianNLLLoss on (mean, var) = out.chunk(2, -1) "
                   "or with one variance shared by the means (odd width, gaussian-nll-shared), "
                   "MSELoss and ½ MSE): the family, and the link of a head that does not output "
                   "its natural parameter, follow from it (ext-links)")
    p.add_argument("--link", default=None, metavar="LINK",
                   help="an Eq. 3 network whose outputs f are not the natural parameter: the "
                   f"link h = g(f) of its head, one of {', '.join(link_names())} (ext-links); "
                   "--family (with --param) is then the family of one head unit, default the "
                   "link's own (poisson for softplus-rate, normal_unknown_variance for "
                   "mean-logstd, ...)")
    p.add_argument("--param", action="append", default=[], metavar="k=v",
                   help="family parameter, e.g. --param K=10 (repeatable)")
    p.add_argument("--activation", default=None,
                   help="hidden activation of --weights W.npz (default tanh); a torch model's "
                   "comes from its modules")
    p.add_argument("--samples", "-n", type=int, default=1, help="draws N per input (default 1)")
    p.add_argument("--target", type=float, default=0.1, help="relative accuracy (default 0.1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="Eq. 3 network: seconds the per-input terms may be estimated to take "
                   "(default 300); a larger M is refused at once, naming the estimate")
    analyze_model.add_arguments(p, src)
    p.set_defaults(func=handle)


def _route(args: argparse.Namespace) -> str:
    """``"model"`` (any module, :func:`fisher_verify.analyze`) or ``"eq3"``
    (:func:`fisher_verify.analyze`), after refusing every combination that would leave an
    option unused or ambiguous."""
    if args.model and args.torch_model:
        raise FisherVerifyError("--model and --torch-model both give the model; give one")
    if args.time_budget is not None and (args.model or args.data is not None):
        raise FisherVerifyError("--time-budget applies to an Eq. 3 network with --x; a model "
                                "with --data is sized by --memory")
    if args.weights and args.torch_model:
        raise FisherVerifyError(
            "--weights and --torch-model both give the network; give one (--weights W.pt goes "
            "with --model)")
    if not (args.weights or args.model or args.torch_model):
        raise FisherVerifyError(
            "give the network: --weights W.npz (Eq. 3), --model MODULE:CALLABLE [--weights "
            "W.pt] (any torch module) or --torch-model MODEL.pt --trust-pickle")
    if args.trust_pickle and not args.torch_model:
        raise FisherVerifyError("--trust-pickle applies to --torch-model/--pickled-model only")
    if args.torch_model and not args.trust_pickle:  # refused before the file is opened
        analyze_model.load_pickled_module(args.torch_model, trusted=False)
    if args.torch_model and args.x is None and args.data is None:
        raise FisherVerifyError(
            "give the inputs of --torch-model: --x x.npy (an Eq. 3 nn.Sequential) or --data "
            "DATA (any module)")
    if args.x is not None and args.data is not None:
        raise FisherVerifyError(
            "--x (an Eq. 3 network's inputs) and --data (any model's inputs) both give the "
            "inputs; give one")
    if args.model or (args.torch_model and args.data is not None):
        if args.x is not None:
            raise FisherVerifyError(
                f"--x {args.x!r} is for an Eq. 3 network (--weights W.npz or --torch-model); "
                "give the inputs of --model as --data")
        if args.data is None:
            raise FisherVerifyError("--data is required with --model (inputs: .npy or .pt)")
        if args.activation is not None:
            raise FisherVerifyError(
                f"--activation {args.activation!r} applies to --weights W.npz only; a torch "
                "model's activation comes from its modules")
        return "model"
    if args.data is not None:
        raise FisherVerifyError(
            f"--data {args.data!r} is for --model or --torch-model; an Eq. 3 network from "
            "--weights W.npz takes its inputs as --x")
    extra = [flag for flag in analyze_model.given_model_options(args) if flag != "--memory"]
    if extra:
        raise FisherVerifyError(
            f"{extra[0]} applies to a model given with --model or --torch-model and --data, "
            "not to an Eq. 3 network with --x")
    if args.x is None:
        raise FisherVerifyError("--x x.npy is required (the inputs of the Eq. 3 network)")
    if args.weights and Path(args.weights).suffix in (".pt", ".pth"):
        raise FisherVerifyError(
            f"--weights {args.weights!r} is a torch file: a state_dict needs --model "
            "MODULE:CALLABLE to build its module (and --data for the inputs); an Eq. 3 "
            "network's --weights is an .npz of W0, W1, ...")
    return "eq3"


def _check_output_family(args: argparse.Namespace) -> None:
    """Exactly one of ``--family`` and ``--loss``; ``--loss`` a name of the table, without
    ``--param`` (the loss fixes the family's parameters)."""
    if args.link is not None:
        if args.loss is not None:
            raise FisherVerifyError(f"--link {args.link!r} and --loss {args.loss!r} both give the "
                                    "head's link (the loss fixes its own); give one")
        if args.link not in link_names():
            raise FisherVerifyError(f"--link {args.link!r} is not a link; the links: "
                                    f"{', '.join(link_names())}")
        return
    if args.family is None and args.loss is None:
        raise FisherVerifyError("give the output family: --family NAME (e.g. bernoulli) or "
                                f"--loss NAME (one of {', '.join(LOSS_NAMES)})")
    if args.family is not None and args.loss is not None:
        raise FisherVerifyError(f"--family {args.family!r} and --loss {args.loss!r} both give "
                                "the output family; give one")
    if args.loss is not None:
        if args.loss not in LOSS_NAMES:
            raise FisherVerifyError(f"--loss {args.loss!r} is not a loss of the table; the "
                                    f"losses: {', '.join(LOSS_NAMES)}")
        if args.param:
            raise FisherVerifyError(f"--param {args.param[0]!r} applies to --family; --loss "
                                    f"{args.loss!r} fixes the family's parameters")


def _output_width(args: argparse.Namespace) -> int:
    """n_L of the Eq. 3 network of ``--weights`` or ``--torch-model``, for ``--loss`` to fix the
    family; 1 when it cannot be read, so that the loader itself names what is wrong."""
    try:
        if args.weights:
            data = load_numpy_file(args.weights, f"weights file {args.weights!r}")
            if not isinstance(data, np.lib.npyio.NpzFile):
                return 1
            with data:
                count = 0
                while f"W{count}" in data.files:
                    count += 1
                return int(np.asarray(data[f"W{count - 1}"]).shape[0])
        from ..networks.torch_import import weights_from_sequential

        model = analyze_model.load_pickled_module(args.torch_model, args.trust_pickle)
        return int(weights_from_sequential(model)[0][-1].shape[0])
    except Exception:  # noqa: BLE001 - a probe only: the loader below reports the file's fault
        return 1


def _head_link(args: argparse.Namespace) -> Any:
    """``--link NAME`` for the network's ``n_L`` outputs, onto ``--family`` (one unit's) or the
    link's own family; every refusal names ``--link``."""
    from ..families.links import link
    from ..families.registry import family

    unit = None if args.family is None else family(args.family, **parse_params(args.param))
    if unit is None and args.param:
        raise FisherVerifyError(f"--param {args.param[0]!r} applies to --family; give --family "
                                f"with --link {args.link!r} to set the unit family's parameters")
    try:
        k = link(args.link, family=unit).n  # outputs one unit reads
        width = _output_width(args)
        if width % k:
            raise FisherVerifyError(f"the network has n_L = {width} outputs, not a multiple of "
                                    f"{k} (the outputs one unit of the link reads)")
        return link(args.link, width // k, family=unit)
    except FisherVerifyError as exc:
        raise type(exc)(f"--link {args.link!r}: {exc}") from None


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
    return exact_float64(data, f"--x {path!r}")


def _load_torch(path: str, fam: Any, trusted: bool) -> Any:
    import torch

    from ..networks.network import Network

    # a whole pickled module, not only tensors: unpickled only on the user's --trust-pickle
    model = analyze_model.load_pickled_module(path, trusted)
    if not isinstance(model, torch.nn.Sequential):
        raise FisherVerifyError(
            f"{path!r} holds a {type(model).__name__}, not an nn.Sequential; save the module "
            "itself with torch.save(model, path), not its state_dict")
    return Network.from_torch(model, family=fam)


def handle(args: argparse.Namespace) -> int:
    """Run :func:`fisher_verify.analyze` for an Eq. 3 network or (:mod:`.analyze_model`) any
    module and print text or JSON."""
    from ..analysis import analyze
    from ..families.registry import family
    from ..networks.network import Network

    _check_output_family(args)
    if _route(args) == "model":
        if args.link is not None:
            raise FisherVerifyError(
                f"--link {args.link!r} applies to an Eq. 3 network (--weights W.npz or "
                "--torch-model with --x); a torch module takes its head's link from --loss, or "
                "append fisher_verify.link(...).module() to it")
        return analyze_model.run(args)
    loss = link = None
    if args.loss is not None:
        loss = loss_module(args.loss)
        try:
            fam, link = resolve_head(loss, _output_width(args))
        except FisherVerifyError as exc:
            raise type(exc)(f"--loss {args.loss!r}: {exc}") from None
    elif args.link is not None:
        link = _head_link(args)
        fam = link.family
    else:
        fam = family(args.family, **parse_params(args.param))
    if args.weights:
        try:
            get_activation(args.activation or "tanh")
        except FisherVerifyError as exc:  # the option's value, not the weights file
            raise FisherVerifyError(f"--activation: {exc}") from None
        net = Network.from_npz(args.weights, activation=args.activation or "tanh", family=fam)
    elif args.activation is not None:
        raise FisherVerifyError(
            f"--activation {args.activation!r} applies to --weights only; the activation of "
            "--torch-model comes from the model's modules"
        )
    else:
        net = _load_torch(args.torch_model, fam, args.trust_pickle)
    x = _load_x(args.x)
    try:
        net.inputs(x)
    except FisherVerifyError as exc:  # the shape or values of the file the user named
        raise type(exc)(f"--x {args.x!r}: {exc}") from None
    memory = analyze_model.DEFAULT_MEMORY_MIB if args.memory is None else args.memory
    if memory < 1:
        raise FisherVerifyError(f"--memory must be >= 1 MiB, got {memory}")
    if args.time_budget is not None and not args.time_budget > 0:  # NaN too
        raise FisherVerifyError(f"--time-budget must be a number of seconds > 0, got "
                                f"{args.time_budget}")
    if link is not None:  # a head through a link (--link, or the loss's): h = g(f) (ext-links)
        from ..networks.linked import LinkedNetwork

        model: Any = LinkedNetwork(net, link)
    else:
        model = net
    progress = StageProgress(sys.stderr, "fisher-verify analyze")
    try:
        result = analyze(model, x, n=args.samples, target=args.target,
                            memory=memory << 20, time_budget=args.time_budget,
                            progress=progress)
    finally:
        progress.close()
    if args.json:
        print(jsontext.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(result.summary())
    for why in result.degenerate:
        print(f"fisher-verify analyze: warning: degenerate result: {why}", file=sys.stderr)
    return DEGENERATE_EXIT if result.degenerate else 0
