"""A small LaTeX → presentation MathML converter for the report's hand-written claims.

Covers what the statements use: ``\\frac``, ``\\tfrac``, ``\\sqrt``, sub/superscripts,
``\\text``/``\\mathrm``/``\\operatorname``/``\\mathbb``, Greek letters, common operators,
``\\lVert``/``\\rVert``, sizing commands (dropped), ``\\left``/``\\right``. Anything it does not
know is shown as its command name, never an error, so the page always renders offline
(Chromium and Firefox render MathML Core natively). SymPy expressions go through
``sympy.printing.mathml(expr, printer="presentation")`` instead (see :func:`sympy_mathml`).
"""

from __future__ import annotations

import html
import re
from typing import Any

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "ϕ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "ell": "ℓ",
}
_OPS = {
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈",
    "to": "→", "rightarrow": "→", "Rightarrow": "⇒", "infty": "∞", "partial": "∂",
    "otimes": "⊗", "times": "×", "cdot": "·", "succeq": "⪰", "preceq": "⪯", "in": "∈",
    "notin": "∉", "sum": "∑", "prod": "∏", "int": "∫", "nabla": "∇", "pm": "±", "mid": "∣",
    "lVert": "‖", "rVert": "‖", "Vert": "‖", "|": "‖", "lvert": "|", "rvert": "|",
    "langle": "⟨", "rangle": "⟩", "top": "⊤", "sim": "∼", "equiv": "≡", "ldots": "…",
    "cdots": "⋯", "dots": "…", "forall": "∀", "exists": "∃", "quad": "\u2003",
    "qquad": "\u2003\u2003", ",": "\u2009", ";": "\u2005", "!": "", " ": "\u00a0",
    "{": "{", "}": "}", "min": "min", "max": "max", "log": "log", "exp": "exp", "lim": "lim",
}
_LARGE_OPS = {"sum", "prod", "int"}
_SIZING = {"big", "Big", "bigg", "Bigg", "left", "right", "bigl", "bigr", "Bigl", "Bigr",
           "displaystyle", "textstyle", "limits", "nolimits"}
_BB = {"R": "ℝ", "E": "𝔼", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ"}
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}^_]|[A-Za-z]|[0-9]+(?:\.[0-9]+)?|\s+|.", re.S)


_TEXT_SPACES = {",": "\u2009", ":": "\u2005", ";": "\u2005", "!": "", " ": " ", "~": "\u00a0",
                "quad": "\u2003", "qquad": "\u2003\u2003", "thinspace": "\u2009",
                "enspace": "\u2002"}


def _text_token(tok: str) -> str:
    """One token inside ``\\text{…}``: spacing commands become spaces (``\\,`` is a thin space,
    not a comma), escaped characters (``\\{``, ``\\%``, …) themselves, known symbols their
    glyph, anything else its name."""
    if not tok.startswith("\\"):
        return tok
    name = tok[1:]
    if name in _TEXT_SPACES:
        return _TEXT_SPACES[name]
    if len(name) == 1 and not name.isalpha():
        return name
    return _OPS.get(name, _GREEK.get(name, name))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _TOKEN.findall(text)
        self.pos = 0

    def peek(self, raw: bool = False) -> str | None:
        while not raw and self.pos < len(self.tokens) and self.tokens[self.pos].isspace():
            self.pos += 1
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, raw: bool = False) -> str:
        self.peek(raw)
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def group(self) -> str:
        """One argument: a braced group or a single atom."""
        if self.peek() == "{":
            self.take()
            body = self.sequence(stop="}")
            if self.peek() == "}":
                self.take()
            return f"<mrow>{body}</mrow>"
        tok = self.peek()
        if tok is not None and tok[0].isdigit() and len(tok) > 1:
            # as in TeX, an unbraced argument is one character: \tfrac12 is 1/2, x^23 is x²3
            self.tokens[self.pos] = tok[1:]
            return f"<mn>{tok[0]}</mn>"
        return self.atom() or "<mrow></mrow>"

    def raw_group(self) -> str:
        """The raw text of a braced group (for \\text)."""
        if self.peek() != "{":
            return self.take() if self.peek() else ""
        self.take()
        depth, prev = 1, ""
        out: list[str] = []
        while self.peek(raw=True) is not None:
            tok = self.take(raw=True)
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
                if depth == 0:
                    break
            if tok.isspace() and out and prev[1:].isalpha() and prev.startswith("\\"):
                continue  # as in TeX, a control word swallows the spaces after it
            out.append(_text_token(tok))
            prev = tok
        return "".join(out)

    def sequence(self, stop: str | None = None) -> str:
        out: list[str] = []
        while self.peek() is not None and self.peek() != stop:
            item = self.atom()
            if item is None:
                continue
            out.append(self.scripts(item))
        return "".join(out)

    def scripts(self, base: str) -> str:
        sub = sup = None
        while self.peek() in ("_", "^"):
            kind = self.take()
            arg = self.group()
            if kind == "_":
                sub = arg
            else:
                sup = arg
        if sub is not None and sup is not None:
            return f"<msubsup>{base}{sub}{sup}</msubsup>"
        if sub is not None:
            return f"<msub>{base}{sub}</msub>"
        if sup is not None:
            return f"<msup>{base}{sup}</msup>"
        return base

    def atom(self) -> str | None:
        tok = self.take()
        if tok == "{":
            body = self.sequence(stop="}")
            if self.peek() == "}":
                self.take()
            return f"<mrow>{body}</mrow>"
        if tok == "}":
            return None
        if tok.startswith("\\"):
            return self.command(tok[1:])
        if tok.isalpha():
            return f"<mi>{html.escape(tok)}</mi>"
        if tok[0].isdigit():
            return f"<mn>{tok}</mn>"
        if tok == "'":
            return "<mo>′</mo>"
        if tok == "-":
            return "<mo>−</mo>"  # the minus sign, not a hyphen
        return f"<mo>{html.escape(tok)}</mo>"

    def command(self, name: str) -> str | None:
        if name in ("frac", "tfrac", "dfrac"):
            num, den = self.group(), self.group()
            return f"<mfrac>{num}{den}</mfrac>"
        if name == "sqrt":
            return f"<msqrt>{self.group()}</msqrt>"
        if name in ("text", "mathrm", "textrm", "operatorname", "mbox"):
            text = self.raw_group()
            # MathML trims the whitespace at the ends of a token: keep it as no-break spaces
            # (\text{ at } must not glue to its neighbours)
            stripped = text.strip(" ")
            if stripped:
                lead, trail = len(text) - len(text.lstrip(" ")), len(text) - len(text.rstrip(" "))
                text = "\u00a0" * min(lead, 1) + stripped + "\u00a0" * min(trail, 1)
            tag = "mtext" if name in ("text", "mbox", "textrm") else "mi"
            attr = "" if tag == "mtext" else ' mathvariant="normal"'
            return f"<{tag}{attr}>{html.escape(text)}</{tag}>"
        if name == "mathbb":
            text = self.raw_group()
            return f"<mi>{''.join(_BB.get(c, c) for c in text)}</mi>"
        if name in ("mathbf", "boldsymbol"):
            return f'<mstyle mathvariant="bold">{self.group()}</mstyle>'
        if name in ("hat", "widehat", "bar", "overline", "tilde", "widetilde"):
            accent = {"hat": "^", "widehat": "^", "bar": "¯", "overline": "¯",
                      "tilde": "~", "widetilde": "~"}[name]
            return f'<mover accent="true">{self.group()}<mo>{accent}</mo></mover>'
        if name in ("overset", "stackrel"):
            over, base = self.group(), self.group()
            return f"<mover>{base}{over}</mover>"
        if name in _SIZING:
            return None
        if name in _GREEK:
            return f"<mi>{_GREEK[name]}</mi>"
        if name in _LARGE_OPS:
            return f'<mo largeop="true">{_OPS[name]}</mo>'
        if name in ("min", "max", "log", "exp", "lim", "det", "tr"):
            return f'<mi mathvariant="normal">{name}</mi>'
        if name in _OPS:
            return f"<mo>{html.escape(_OPS[name])}</mo>"
        return f'<mi mathvariant="normal">{html.escape(name)}</mi>'


def latex_to_mathml(latex: str, display: bool = False) -> str:
    """Convert LaTeX math (without ``$``) to a ``<math>`` element."""
    try:
        body = _Parser(latex).sequence()
    except Exception:  # noqa: BLE001 - never fail a report on notation
        body = f"<mtext>{html.escape(latex)}</mtext>"
    mode = ' display="block"' if display else ""
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"{mode}><mrow>{body}</mrow></math>'


def sympy_mathml(expr: Any, display: bool = False) -> str:
    """A SymPy expression as presentation MathML (SymPy's own printer)."""
    import sympy as sp

    try:
        body = sp.mathml(expr, printer="presentation")
    except Exception:  # noqa: BLE001
        return latex_to_mathml(sp.latex(expr), display)
    # a minus sign, not a hyphen; e (not the double-struck ⅇ) as the paper writes it; brackets
    # of a matrix drawn by CSS (class "matrix"): without a math font they do not stretch
    body = body.replace("<mo>-</mo>", "<mo>−</mo>").replace(
        "<mi>&ExponentialE;</mi>", '<mi mathvariant="normal">e</mi>')
    body = re.sub(r"<mo>\[</mo><mtable>(.*?)</mtable><mo>\]</mo>",
                  r'<mtable class="matrix">\1</mtable>', body, flags=re.S)
    mode = ' display="block"' if display else ""
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"{mode}>{body}</math>'
