"""The coordinate audit (``ext-sequence``) on the largest causal transformer this machine holds.

Run by hand from the repository root (not part of the tests), one thread:

    OMP_NUM_THREADS=1 python benchmarks/bench_sequence_audit.py            # V = 10⁴, P ≈ 1.1e7
    OMP_NUM_THREADS=1 python benchmarks/bench_sequence_audit.py --small    # a quick rehearsal

The exact diagonal is out of reach here: n_L = T·(V+1) = 320 032 backward passes per input.
The audit needs one forward-mode pass per coordinate and batch instead
(:func:`fisher_verify._src.testing.audit.audit_diagonal`). Claims audited: Sophia's GNB (the mean of n
estimates, passes), the same with the padding positions counted and with the batch size B
missing, and the empirical Fisher (squared per-sequence gradients at the data's labels) claimed
as a deterministic diagonal. Reported: the model size, the time per claim and per coordinate,
and how many coordinates each claim fails.

Measured (2 cores shared by 8 processes, load average 9-12, float64, one torch thread)::

    model: V = 10000, T = 32, D = 384, 2 blocks, untied head: P = 10,060,800 parameters
    data: M = 8 sequences (right padding), 2 coordinates audited per parameter tensor (58)
    claims: GNB n=8 x3 and the empirical Fisher in 33.5 s
    audit which='gnb' (n=8): 138.2 s for 58 coordinates (2.38 s each); passed = True
      GNB: 0/58 fail; median |claim − I_ii| / threshold 0.00467
      GNB, padding counted: 0/58 fail; median |claim − I_ii| / threshold 0.00759
      GNB, B missing (1/8): 0/58 fail; median |claim − I_ii| / threshold 0.014
    audit which='exact' of the empirical Fisher: 50.5 s; 55/58 coordinates fail
    whole run: 3 min 56 s wall (41 s of CPU: the machine was shared), 1.4 GB resident

    --large --n 2 --per-tensor 1:
    model: V = 32000, T = 32, D = 640, 2 blocks, untied head: P = 47,549,440 parameters
    audit which='gnb' (n=2): 439.3 s for 29 coordinates (15.2 s each); passed = True
      GNB, padding counted / B missing (1/8): 0/29 fail (median ratio 0.0056, 0.0073)
    audit which='exact' of the empirical Fisher: 190.6 s; 28/29 coordinates fail
    whole run: 12 min wall, 4.0 GB resident

The Monte Carlo thresholds are distribution-free at a false-alarm rate of 1e-6 for the whole
audit, about 10²σ: a single GNB claim is audited for gross errors only (its padding and
missing-B faults stay below them; the gate, with R replicates, names both). A deterministic
claim is audited at rounding: the empirical Fisher fails at every coordinate whose I_ii is
not 0 (the ones that pass are unused embedding rows and a key bias, where both are 0).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import fisher_verify as fv
from fisher_verify._src.families.sequence import IGNORE
from fisher_verify._src.models.sequence import with_padding_mask
from fisher_verify._src.models.transformer import CausalTransformer
from fisher_verify._src.testing.audit import audit_diagonal

PAD = 0


def _gnb(model, tokens, n, generator, *, pad=False, scale=1.0):
    """The mean of n Sophia GNB estimates B·ĝ⊙ĝ (flat, parameters() order)."""
    out = None
    for _ in range(n):
        logits = model.model(tokens)
        V = logits.shape[-1]
        with torch.no_grad():
            y = torch.multinomial(torch.softmax(logits, -1).reshape(-1, V), 1, generator=generator)
        y = y.reshape(tokens.shape)
        if not pad:
            y = torch.where(model.mask(tokens), y, IGNORE)
        B = tokens.shape[0]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                                 ignore_index=IGNORE, reduction="sum") / B
        grads = torch.autograd.grad(loss, list(model.parameters()))
        est = torch.cat([B * g.reshape(-1) ** 2 for g in grads]).detach()
        out = est if out is None else out + est
    return (scale * out / n).numpy()


def _empirical(model, tokens, targets):
    """(1/M) Σ_m g_m ⊙ g_m with g_m the gradient of sequence m's loss at the data's labels."""
    out = None
    for m in range(tokens.shape[0]):
        logits = model.model(tokens[m : m + 1])
        V = logits.shape[-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets[m].reshape(-1),
                                                 ignore_index=IGNORE, reduction="sum")
        grads = torch.autograd.grad(loss, list(model.parameters()))
        est = torch.cat([g.reshape(-1) ** 2 for g in grads]).detach()
        out = est if out is None else out + est
    return (out / tokens.shape[0]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--large", action="store_true", help="V = 32 000, D = 640: P ≈ 5e7")
    parser.add_argument("--per-tensor", type=int, default=2)
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    V, T, D, blocks, M = ((500, 16, 64, 1, 4) if args.small else
                          (32_000, 32, 640, 2, 8) if args.large else (10_000, 32, 384, 2, 8))
    torch.manual_seed(0)
    net = CausalTransformer(V, T, D=D, heads=4 if args.small else 8 if args.large else 6,
                            blocks=blocks, tied=False).double()
    P = sum(p.numel() for p in net.parameters())
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, V, (M, T), generator=gen)
    for m in range(M):  # right padding: lengths T, T − 3, T − 6, ...
        tokens[m, max(1, T - 3 * m):] = PAD
    targets = torch.roll(tokens, -1, dims=1)
    targets[:, -1] = PAD
    targets[(tokens == PAD) | (targets == PAD)] = IGNORE
    model = with_padding_mask(net, PAD)
    fam = fv.family("sequence", K=V, T=T)
    print(f"model: V = {V}, T = {T}, D = {D}, {blocks} blocks, untied head: P = {P:,} parameters")
    print(f"data: M = {M} sequences (right padding), {args.per_tensor} coordinates audited "
          "per parameter tensor")
    t0 = time.perf_counter()
    claims = {
        "GNB": _gnb(model, tokens, args.n, gen),
        "GNB, padding counted": _gnb(model, tokens, args.n, gen, pad=True),
        f"GNB, B missing (1/{M})": _gnb(model, tokens, args.n, gen, scale=1.0 / M),
    }
    emp = _empirical(model, tokens, targets)
    print(f"claims: GNB n={args.n} x3 and the empirical Fisher in {time.perf_counter() - t0:.1f} s")
    names = [k for k, _ in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(2)
    coords = np.sort(np.concatenate([
        offsets[j] + rng.choice(sizes[j], min(args.per_tensor, sizes[j]), replace=False)
        for j in range(len(names))]))
    t0 = time.perf_counter()
    rep = audit_diagonal(model, tokens, fam, claims["GNB"], which="gnb", n=args.n,
                         coordinates=coords.tolist(), batch_size=M)
    took = time.perf_counter() - t0
    print(f"audit which='gnb' (n={args.n}): {took:.1f} s for {len(coords)} coordinates "
          f"({took / len(coords):.2f} s each); passed = {rep.passed}")
    # the same exact values judge the other claims: only the comparison differs
    for name, claim in claims.items():
        bad = ~(np.abs(claim[coords] - rep.exact) <= rep.threshold)
        print(f"  {name}: {int(bad.sum())}/{len(coords)} fail; median |claim − I_ii| / threshold "
              f"{np.median(np.abs(claim[coords] - rep.exact) / rep.threshold):.3g}")
    t0 = time.perf_counter()
    rep_e = audit_diagonal(model, tokens, fam, emp, which="exact", coordinates=coords.tolist(),
                           batch_size=M)
    print(f"audit which='exact' of the empirical Fisher: {time.perf_counter() - t0:.1f} s; "
          f"{len(rep_e.failed)}/{len(coords)} coordinates fail")
    zero = int(np.sum(rep.exact == 0.0))
    print(f"  coordinates with I_ii exactly 0 (unused embedding rows, ...): {zero}")
    print(f"  I_ii range over the audited coordinates: {rep.exact.min():.3g} .. {rep.exact.max():.3g}")


if __name__ == "__main__":
    main()
