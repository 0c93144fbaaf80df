"""Evidence and prose of the proofs as a person reads them, for the report (HTML and Markdown).

The proofs write check names, summaries and errata in ASCII (``||K - I(x)I||_F``,
``lambda_min(I2)``, ``p**2``) and store evidence as JSON-like values. This module turns that
ASCII pseudo-math into typeset text (``‖K − I⊗I‖<sub>F</sub>``, ``λ<sub>min</sub>(Î₂)``, ``p²``),
numbers into ``8.3×10⁻¹⁶``, LaTeX claims into MathML, and dicts and lists into readable
``key = value`` items and small tables, so no raw LaTeX or JSON reaches the page.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from typing import Any

from .mathml import latex_to_mathml

# a word → its glyph; "gamma" and "delta" are left alone (a family name, a statement id)
_GREEK_WORDS = {
    "lambda": "λ", "sigma": "σ", "theta": "θ", "eta": "η", "rho": "ρ", "kappa": "κ",
    "alpha": "α", "beta": "β", "mu": "μ", "eps": "ε", "epsilon": "ε", "Delta": "Δ",
    "Sigma": "Σ",
}
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+|\^\{|_\{")

# (pattern, replacement) applied in order to HTML-escaped ASCII text
_PROSE_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"&lt;="), "≤"),
    (re.compile(r"&gt;="), "≥"),
    (re.compile(r"!="), "≠"),
    (re.compile(r"-&gt;"), "→"),
    (re.compile(r"\|\|"), "‖"),
    # estimators: I1, I2, I1_hat, I_hat → Î₁, Î₂, Î
    (re.compile(r"\bI([12])(?:_hat)?\b"), lambda m: "Î" + "₁₂"[int(m.group(1)) - 1]),
    (re.compile(r"\bI_hat\b"), "Î"),
    (re.compile(r"(?<![A-Za-z])h_?bar(?![A-Za-z])"), "h\u0304"),
    # derivatives: dh_L/dW_l → ∂h_L/∂W_l, dl/dW → ∂ℓ/∂W
    (re.compile(r"\bdl/d(?=[A-Za-z])"), "∂ℓ/∂"),
    (re.compile(r"\bd([a-z]\w*)/d(?=[A-Za-z])"), r"∂\1/∂"),
    (re.compile(r"\bsqrt\b"), "√"),
    (re.compile(r"\bsum\b"), "∑"),
    (re.compile(r"(?<![A-Za-z])(" + "|".join(_GREEK_WORDS) + r")(?![A-Za-z])"),
     lambda m: _GREEK_WORDS[m.group(1)]),
    # the Kronecker/tensor product written (x): I(x)I, I_{n_L} (x) hbar
    (re.compile(r"(?<=[\w}⊤])\s?\(x\)\s?(?=[\wΛλ])"), "⊗"),
    (re.compile(r" \(x\) "), " ⊗ "),
    # powers: p**2, )**2, ^T, ^-1/2, ^{..}, ^2
    (re.compile(r"\*\*(\d+)"), r"<sup>\1</sup>"),
    (re.compile(r"(?<=\d)\*(?=[A-Za-zλμσ(])"), ""),
    (re.compile(r"\*(?=\()"), ""),
    (re.compile(r"(?<=\S)\*(?=\S)"), "·"),
    (re.compile(r"\^T\b"), "<sup>⊤</sup>"),
    (re.compile(r"\^-(\d+(?:/\d+)?)"), r"<sup>−\1</sup>"),
    (re.compile(r"\^\{([^{}]*)\}"), r"<sup>\1</sup>"),
    (re.compile(r"\^(\w)"), r"<sup>\1</sup>"),
    # subscripts: _F, _L, _aa, _min, then _{...} (after the inner ones)
    (re.compile(r"(?<=[^\s_])_(min|max|a{2,4}|[A-Za-z0-9]{1,2})\b"), r"<sub>\1</sub>"),
    (re.compile(r"_\{([^{}]*)\}"), r"<sub>\1</sub>"),
    # a minus sign, not a hyphen: "K - I", "-λ", "^-1" (ids such as thm-7 keep theirs)
    (re.compile(r" - "), " − "),
    (re.compile(r"(?<![\w\-])-(?=[A-Za-zλρσΔ∑(])"), "−"),
    (re.compile(r"(?<=[A-Za-z])-(?=[α-ω])"), "−"),
    (re.compile(r"(?<=\b[A-Za-z])-(?=\d\b)"), "−"),  # L-1 (thm-7 keeps its hyphen)
    (re.compile(r"<(su[bp])>([^<]*)-"), r"<\1>\2−"),
]


def prose(text: str) -> str:
    """ASCII pseudo-math in a proof's text → HTML (Unicode symbols, ``<sub>``/``<sup>``).

    Plain words are kept; the result is escaped, safe to put in HTML or GitHub Markdown.
    """
    out = html.escape(str(text), quote=False)
    for pattern, repl in _PROSE_RULES:
        out = pattern.sub(repl, out)
    return out


def is_latex(text: str) -> bool:
    """True when ``text`` is LaTeX (a command, or a braced sub/superscript)."""
    return bool(_LATEX_COMMAND.search(text))


def number(x: Any) -> str:
    """A number for people: 4 significant digits, powers of ten as ``×10<sup>…</sup>``."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return prose(str(x))
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0 or 1e-3 <= abs(v) < 1e4:  # where .4g prints no exponent
        text = f"{v:.4g}"
        return text.replace("-", "−")
    mant, exp = f"{v:.3g}".split("e") if "e" in f"{v:.3g}" else (f"{v:.3g}", "0")
    e = int(exp)
    sign = "−" if e < 0 else ""
    power = f"10<sup>{sign}{abs(e)}</sup>"
    mant = mant.replace("-", "−")
    return power if mant in ("1", "1.0") else f"{mant}×{power}"


def label(text: str, math: Callable[[str], str]) -> str:
    """A check name or identity key: ``family: <LaTeX claim>`` or ASCII prose.

    ``math`` renders LaTeX (MathML for HTML, ``$…$`` for Markdown).
    """
    if not is_latex(text):
        return prose(text)
    head, sep, tail = text.partition(": ")
    if sep and not is_latex(head):
        return f"{prose(head)}: {math(tail)}"
    return math(text)


def check_text(check: dict[str, Any], math: Callable[[str], str], detail: str = "") -> str:
    """One check as a line: ✓/✗, its name, and what was observed against what (``detail``, the
    identity's method, replaces a yes/no check's own detail)."""
    mark = "✓" if check.get("passed") else "✗"
    kind = check.get("kind", "")
    obs, tol = check.get("observed"), check.get("tolerance")
    if kind == "close":
        what = f"relative error {number(obs)} (tolerance {number(tol)})"
    elif kind == "leq":
        what = f"lhs/rhs = {number(obs)}"
    elif kind == "calibrated":
        what = f"statistic {number(obs)} (threshold {number(tol)})"
    elif kind == "true":
        what = prose(detail or check.get("detail", ""))
    else:
        what = f"observed {number(obs)}, tolerance {number(tol)}"
    name = label(str(check.get("name", "")), math)
    return f"{mark} {name}" + (f" — {what}" if what else "")


def _scalar(v: Any, math: Callable[[str], str] | None = None) -> str:
    if isinstance(v, (int, float)):
        return number(v)
    if v is None:
        return "–"
    if isinstance(v, str):
        return math(v) if math is not None and is_latex(v) else prose(v)
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v):
        return "(" + ", ".join(_scalar(x, math) for x in v) + ")"
    return prose(str(v))


def pairs(d: dict[str, Any], math: Callable[[str], str] | None = None) -> str:
    """A flat dict as ``key = value, …`` (string values that are LaTeX through ``math``)."""
    return ", ".join(f"{_key(k)} = {_scalar(v, math)}" for k, v in d.items())


def _is_records(v: Any) -> bool:
    return (isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)
            and all(not isinstance(y, (dict, list)) or _flat_list(y)
                    for x in v for y in x.values()))


def _flat_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v)


def _key(key: Any) -> str:
    """An evidence key: ``draws_per_network`` reads as words, pseudo-math as math."""
    text = str(key)
    if re.fullmatch(r"[a-z]+(?:_[a-z]+)+", text):
        text = text.replace("_", " ")
    return prose(text)


def _flat_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(
        not isinstance(v, (dict, list)) or _flat_list(v) for v in value.values())


def _identities(value: dict[str, Any], math: Callable[[str], str],
                shown: frozenset[str]) -> list[str]:
    """``claim — method`` for each identity not already listed as a check (``shown``)."""
    return [f"{label(str(claim), math)} — {prose(str(method))}"
            for claim, method in value.items() if claim not in shown]


def evidence_html(evidence: dict[str, Any], math: Callable[[str], str],
                  shown: frozenset[str] = frozenset()) -> list[str]:
    """``<li>`` items for a statement's evidence (identities, numbers, dicts, tables); an
    identity whose claim is in ``shown`` (already listed as a check) is not repeated."""
    items = []
    for key, value in evidence.items():
        name = _key(key)
        if key == "identities" and isinstance(value, dict):
            items += [f"<li>{line}</li>" for line in _identities(value, math, shown)]
        elif _is_records(value):
            cols = list(dict.fromkeys(k for row in value for k in row))
            head = "".join(f"<th>{prose(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{_scalar(row.get(c), math)}</td>" for c in cols)
                           + "</tr>" for row in value)
            items.append(f"<li>{name}:<div class='scroll'><table class='ev'><tr>{head}</tr>"
                         f"{body}</table></div></li>")
        elif _flat_dict(value):
            items.append(f"<li>{name}: {pairs(value, math)}</li>")
        elif isinstance(value, dict):
            sub = "".join(f"<li>{_key(k)}: {_nested(v, math)}</li>" for k, v in value.items())
            items.append(f"<li>{name}:<ul>{sub}</ul></li>")
        else:
            items.append(f"<li>{name}: {_nested(value, math)}</li>")
    return items


def _nested(v: Any, math: Callable[[str], str] | None = None) -> str:
    if isinstance(v, dict):
        if all(not isinstance(x, (dict, list)) for x in v.values()):
            return pairs(v, math)
        return "; ".join(f"{_key(k)}: {_nested(x, math)}" for k, x in v.items())
    if isinstance(v, list) and not _flat_list(v):
        return "; ".join(_nested(x, math) for x in v)
    return _scalar(v, math)


def evidence_markdown(evidence: dict[str, Any], math: Callable[[str], str],
                      shown: frozenset[str] = frozenset()) -> list[str]:
    """Markdown bullet lines (``- …``, sub-bullets indented) for a statement's evidence, as
    :func:`evidence_html`."""
    lines = []
    for key, value in evidence.items():
        name = _key(key)
        if key == "identities" and isinstance(value, dict):
            lines += [f"- {line}" for line in _identities(value, math, shown)]
        elif _is_records(value):
            lines.append(f"- {name}:")
            lines += [f"  - {_nested(row, math)}" for row in value]
        elif _flat_dict(value):
            lines.append(f"- {name}: {pairs(value, math)}")
        elif isinstance(value, dict):
            lines.append(f"- {name}:")
            lines += [f"  - {_key(k)}: {_nested(v, math)}" for k, v in value.items()]
        else:
            lines.append(f"- {name}: {_nested(value, math)}")
    return lines


def mixed(text: str, math: Callable[[str], str]) -> str:
    """Text with ``$…$`` LaTeX segments: the segments through ``math``, the rest as prose."""
    parts = re.split(r"\$([^$]+)\$", text)
    return "".join(math(p) if i % 2 else prose(p) for i, p in enumerate(parts))


def html_math(latex: str) -> str:
    """Inline MathML (the HTML page's ``math``)."""
    return latex_to_mathml(latex)


def md_math(latex: str) -> str:
    """Inline ``$…$`` (the Markdown page's ``math``)."""
    return f"${latex.strip()}$"
