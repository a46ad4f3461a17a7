"""Names that become folders under a root (experiment names, run ids) must stay inside it.

A name is one path component of letters, digits and `. _ + = -`, not starting with `.` or `-`
(so never `..`, a hidden file or an option), at most 128 characters: `mini-308k_s0`, `7B_tau5`,
`N1.5B-tau20`. Anything else (`../x`, `/abs`, `a/b`, an empty name) is refused where it enters:
configs, experiment specs, importers.
"""

import re

from rlscale.errors import DataError

_SAFE = re.compile(r"[A-Za-z0-9_+=][A-Za-z0-9._+=-]{0,127}")
RULE = ("is not a safe name for a folder (one path component of letters, digits and . _ + = -, "
        "not starting with . or -, at most 128 characters)")


def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and _SAFE.fullmatch(name) is not None


def safe_name(name: object, *, field: str, path=None, row=None, line=None) -> str:
    """`name` as a string if it is a safe folder name, else DataError naming the field."""
    if not is_safe_name(name):
        raise DataError(f"{name!r} {RULE}", path=path, row=row, line=line, field=field)
    return name
