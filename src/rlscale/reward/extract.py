"""Pull the final answer out of a model's output and compare it cheaply, in process.

Everything here runs in linear time on untrusted text (regexes without nested quantifiers, one
pass of brace matching), so it is safe on megabytes of garbage and never needs a timeout.
"""

import re
from fractions import Fraction

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# One token of brace matching: an escaped character (so `\{` and `\}` never count) or a brace.
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)


def extract_boxed(text: str) -> str | None:
    r"""The content of the LAST `\boxed{...}` or `\fbox{...}` in `text` (also `\boxed 5`).

    Braces are matched, so `\boxed{\frac{1}{2}}` gives `\frac{1}{2}`. None when there is no box,
    when the last box is never closed, or when it is empty.
    """
    last = None
    for match in _BOX_COMMAND.finditer(text):
        last = match
    if last is None:
        return None
    rest = text[last.end():]
    body = rest.lstrip()
    if not body.startswith("{"):
        # `\boxed 5`: TeX boxes the next token; take the run up to whitespace or `$`.
        token = re.match(r"[^\s$]*", body).group()
        return token or None
    depth = 0
    start = len(rest) - len(body) + 1
    for token in _BRACE_TOKEN.finditer(rest, start - 1):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}":
            depth -= 1
            if depth == 0:
                content = rest[start:token.start()].strip()
                return content or None
    return None


# --- normalisation for the fast path -------------------------------------------------------------
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°|\\text\{\s*degrees?\s*\}")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~|\s+")
_FRAC_SHORT = re.compile(r"\\frac\s*(\{[^{}]*\}|\w)\s*(\{[^{}]*\}|\w)")
_DOUBLY_ESCAPED = re.compile(r"\\\\[A-Za-z{}]")


def undo_double_escape(latex: str) -> str:
    r"""`\\frac{1}{2}` -> `\frac{1}{2}`: some data exports escape every backslash twice.

    A `\\` directly before a letter or brace is the tell (a real `\\` row break never is,
    in an answer); then every `\\` in the string is one backslash.
    """
    return latex.replace("\\\\", "\\") if _DOUBLY_ESCAPED.search(latex) else latex


def _braced(arg: str) -> str:
    return arg if arg.startswith("{") else "{" + arg + "}"


def normalize_answer(answer: str) -> str:
    r"""A canonical spelling of a final answer: formatting differences removed, maths untouched.

    Strips `$`, `\left`/`\right`, `\text{}`-style wrappers, degree marks, spacing commands and all
    whitespace, and a trailing period; `\dfrac`/`\tfrac` become `\frac`, and `\frac12` becomes
    `\frac{1}{2}`.
    """
    s = undo_double_escape(answer).replace("$", "")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = _DEGREES.sub("", s)
    for _ in range(4):  # wrappers nest rarely and shallowly; a bound keeps this linear
        s, n = _WRAPPER.subn(r"\1", s)
        if n == 0:
            break
    s = _SPACING.sub("", s)
    s = _FRAC_SHORT.sub(lambda m: r"\frac" + _braced(m[1]) + _braced(m[2]), s)
    return s.rstrip(".")


_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_SLASH = re.compile(r"([-+]?\d+)/(\d+)")
_LATEX_FRAC = re.compile(r"([-+]?)\\frac\{([-+]?\d+)\}\{(\d+)\}")


def parse_number(normalized: str) -> Fraction | None:
    r"""The exact value of a plain number (`3`, `-0.5`, `1/2`, `\frac{1}{2}`), else None.

    Parsing only: no expression is ever evaluated.
    """
    if len(normalized) > 100:  # Fraction of a 100 KB digit string is slow and never a real answer
        return None
    try:
        if _DECIMAL.fullmatch(normalized):
            return Fraction(normalized)
        if m := _SLASH.fullmatch(normalized):
            return Fraction(int(m[1]), int(m[2]))
        if m := _LATEX_FRAC.fullmatch(normalized):
            value = Fraction(int(m[2]), int(m[3]))
            return -value if m[1] == "-" else value
    except ZeroDivisionError:
        return None
    return None


def fast_match(answer: str, gold: str) -> bool | None:
    """Decide cheaply when possible: True/False, or None when only math-verify can tell.

    True when the normalised spellings agree or both are the same plain number. False only when
    both are plain integers that differ (the built-in task): a decimal like 0.333333 may still be
    accepted by math-verify's rounding against 1/3, so such cases are left to it.
    """
    a, g = normalize_answer(answer), normalize_answer(gold)
    if a == g:
        return True
    a_value, g_value = parse_number(a), parse_number(g)
    if a_value is None or g_value is None:
        return None
    if a_value == g_value:
        return True
    if a_value.denominator == 1 and g_value.denominator == 1 and "." not in a + g:
        return False
    return None


# --- the pre-check before math-verify --------------------------------------------------------------
MAX_ANSWER_CHARS = 512  # a boxed answer longer than this is not a final answer, it is a dump
MAX_NESTING = 24  # brackets {([ nested deeper than this
MAX_EXPONENT_NESTING = 2  # exponents inside exponents: 10^{10^{10}} is the last one allowed


def too_complex(answer: str) -> str | None:
    """Why an extracted answer is beyond what math-verify is asked to decide (None if it is not):
    longer than MAX_ANSWER_CHARS, brackets nested deeper than MAX_NESTING, or exponent towers
    deeper than MAX_EXPONENT_NESTING (sympy can spend minutes in C on those). One linear pass."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"longer than {MAX_ANSWER_CHARS} characters"
    depth, exponent_depth, opened_by_caret = 0, 0, []
    previous = ""
    for char in answer:
        if char in "{([":
            depth += 1
            opened_by_caret.append(previous == "^")
            exponent_depth += opened_by_caret[-1]
            if depth > MAX_NESTING:
                return f"brackets nested deeper than {MAX_NESTING}"
            if exponent_depth > MAX_EXPONENT_NESTING:
                return f"exponents nested deeper than {MAX_EXPONENT_NESTING}"
        elif char in "})]" and depth:
            depth -= 1
            exponent_depth -= opened_by_caret.pop()
        if not char.isspace():
            previous = char
    return None
