"""Errors a user sees. Each names the file, row, field or key at fault."""


class RlscaleError(Exception):
    """Base class: anything rlscale raises on purpose for bad input."""


class DataError(RlscaleError, ValueError):
    """A data file or record is missing something or malformed."""

    def __init__(self, message: str, *, path=None, row=None, field=None, line=None):
        where = []
        if path is not None:
            where.append(f"{path}")
        if line is not None:  # a text file's 1-based line (a CSV's header is line 1)
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message)
        self.path, self.row, self.field = path, row, field


class RunLogError(RlscaleError):
    """A run directory or one of its logs is corrupt."""


class ConfigError(RlscaleError, ValueError):
    """A config key is unknown or its value impossible."""


class LawError(RlscaleError, ValueError):
    """The data cannot support the requested fit (too few sizes or points, bad values...)."""
