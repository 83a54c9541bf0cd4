"""User-facing errors: one line naming the cause and the fix, no traceback."""

from __future__ import annotations


class LediflowError(Exception):
    """An error the user can fix; the CLI prints `lediflow: <message>` and exits."""

    exit_code: int = 1


class ConfigError(LediflowError):
    """Bad params: unknown key, wrong type or out-of-range value."""

    exit_code = 2
