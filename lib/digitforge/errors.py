"""Errors that name the file, row and column of bad input."""
from __future__ import annotations


class InputError(ValueError):
    """Bad input data. The message names the file and, where it applies, the row and column."""

    def __init__(self, path, problem: str, row: int | None = None, column: str | None = None):
        self.path, self.problem, self.row, self.column = str(path), problem, row, column
        where = self.path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")
