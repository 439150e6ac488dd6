"""Errors that name the file, row and column of bad input."""
from __future__ import annotations

import re


class InputError(ValueError):
    """Bad input data. The message names the file and, where it applies, where in it:

    line: 1-based line of a text file (a CSV's header is line 1);
    row: 1-based data row (the n-th record: an IDX item, a CSV row not counting its header);
    column: a column name (CSV) or field.
    """

    def __init__(self, path, problem: str, row: int | None = None, column: str | None = None,
                 line: int | None = None):
        self.path, self.problem, self.row, self.column, self.line = str(path), problem, row, column, line
        where = self.path
        if line is not None:
            where += f", line {line}" + (f" (data row {row})" if row is not None else "")
        elif row is not None:
            where += f", data row {row}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")


def input_error_in(failure: BaseException) -> str | None:
    """The message of an InputError raised inside a Spark task (Spark reports it as its own exception,
    with the worker's traceback as text), or None when the failure is something else."""
    qualified = re.escape(f"{InputError.__module__}.{InputError.__qualname__}")
    m = re.search(qualified + r": (.+)", str(failure))
    return m.group(1).strip() if m else None
