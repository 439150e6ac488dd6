"""Read Kaggle digit-recognizer CSV files, plain or gzipped, with checks that name the file, line and column.

    train.csv: label,pixel0,...,pixel783   (labelled)
    test.csv:  pixel0,...,pixel783         (unlabelled: goes to raw_predict)

One vectorised parse (pyarrow, single-threaded so that it counts rows, straight to int16 columns), then
numpy range checks; only when the typed parse fails is the file read again as text to find the bad value. Errors give the line (1-based, the header is line 1), the data row (1-based, not counting
the header or blank lines; a row's id is its data row - 1) and the column.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import COLS, NUM_CLASSES, PIXELS, ROWS
from digitforge.ingest.idx import read_bytes

PIXEL_COLUMNS = [f"pixel{i}" for i in range(PIXELS)]
LABELLED_COLUMNS = ["label", *PIXEL_COLUMNS]


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 28, 28) uint8 images and (N,) uint8 labels, or None for labels when the file has no label column."""
    path = Path(path)
    raw = read_bytes(path)  # missing, empty, corrupt gzip
    columns = check_header(path, raw)
    table = _parse(path, raw, columns)
    if table.num_rows == 0:
        raise InputError(path, "header only: the file holds no data rows")
    values = np.column_stack([col.to_numpy() for col in table.columns])
    labelled = columns[0] == "label"
    if labelled:
        _check_range(path, raw, values[:, :1], 0, NUM_CLASSES - 1, ["label"], "label")
    _check_range(path, raw, values[:, int(labelled):], 0, 255, PIXEL_COLUMNS, "pixel")
    images = values[:, int(labelled):].astype(np.uint8).reshape(-1, ROWS, COLS)
    return images, (values[:, 0].astype(np.uint8) if labelled else None)


def check_header(path: Path, raw: bytes) -> list[str]:
    """The column names: Kaggle's labelled or unlabelled header, exactly."""
    first = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    names = [n.strip().strip('"') for n in first.split(",")]
    if names in (LABELLED_COLUMNS, PIXEL_COLUMNS):
        return names
    if len(names) not in (len(LABELLED_COLUMNS), len(PIXEL_COLUMNS)):
        raise InputError(path, f"header has {len(names)} columns; expected label,pixel0,...,{PIXEL_COLUMNS[-1]} "
                         f"({len(LABELLED_COLUMNS)}) or, unlabelled, pixel0,...,{PIXEL_COLUMNS[-1]} ({len(PIXEL_COLUMNS)}). "
                         f"It starts {first[:40]!r}", line=1)
    expected = LABELLED_COLUMNS if len(names) == len(LABELLED_COLUMNS) else PIXEL_COLUMNS
    j = next(i for i, (got, want) in enumerate(zip(names, expected)) if got != want)
    raise InputError(path, f"header column {j + 1} is {names[j]!r}, expected {expected[j]!r}", line=1)


def _read_options():
    from pyarrow import csv

    # Single-threaded: pyarrow then counts rows in file order (each bad row's number is known).
    return csv.ReadOptions(use_threads=False, block_size=1 << 24)


def _parse(path: Path, raw: bytes, columns: list[str]):
    """The data rows as int16 columns; wrong column counts and values that are not small integers are
    InputErrors naming the line, data row and column."""
    import pyarrow as pa
    from pyarrow import csv

    bad_rows = {"count": 0}  # rows with the wrong number of columns: the first, and how many

    def on_invalid_row(row):
        if not bad_rows["count"]:
            bad_rows.update(number=row.number, columns=row.actual_columns)
        bad_rows["count"] += 1
        return "skip"

    try:
        table = csv.read_csv(
            pa.BufferReader(raw), read_options=_read_options(),
            parse_options=csv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=csv.ConvertOptions(column_types={c: pa.int16() for c in columns}, null_values=[],
                                               quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        if bad_rows["count"]:
            _raise_wrong_columns(path, raw, bad_rows, len(columns))
        _raise_bad_value(path, raw, columns, e)
    if bad_rows["count"]:
        _raise_wrong_columns(path, raw, bad_rows, len(columns))
    return table


def _raise_wrong_columns(path: Path, raw: bytes, bad_rows: dict, expected: int):
    number, more = bad_rows["number"], bad_rows["count"] - 1
    also = f" ({more} more such rows)" if more else ""
    raise InputError(path, f"row has {bad_rows['columns']} columns, expected {expected}{also}",
                     line=physical_line(raw, number) if number else None, row=number - 1 if number else None)


def _raise_bad_value(path: Path, raw: bytes, columns: list[str], error: Exception):
    """The typed parse failed: read the file again as text and find the first value that is not an int16
    with our own check (pyarrow's error message is not parsed: its wording is not an interface). Names
    its line and column, and says whether it is an integer far outside the range or no integer at all."""
    found = first_bad_value(raw, columns)
    if found is None:
        raise InputError(path, f"cannot parse as CSV ({error})") from None
    k, name, value, is_integer = found
    if is_integer:
        problem = f"{'label' if name == 'label' else 'pixel'} {value.strip()} outside " + ("0-9" if name == "label" else "0-255")
    else:
        problem = f"non-integer value {value!r}"
    raise InputError(path, problem, line=physical_line(raw, k + 2), row=k + 1, column=name) from None


def first_bad_value(raw: bytes, columns: list[str]) -> tuple[int, str, str, bool] | None:
    """(row index, column name, the text, whether it is an integer at all) of the first value (by row,
    then column) that is not an integer within int16, or None. Vectorised with pyarrow.compute."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    table = csv.read_csv(pa.BufferReader(raw), read_options=_read_options(),
                         parse_options=csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
                         convert_options=csv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                            null_values=[], quoted_strings_can_be_null=False))
    first = None
    for j, name in enumerate(columns):
        text = pc.utf8_trim_whitespace(table.column(j))
        is_integer = pc.match_substring_regex(text, r"^[+-]?\d+$")
        short = pc.match_substring_regex(text, r"^[+-]?\d{1,5}$")  # at most 5 digits: fits an int32 cast
        number = pc.cast(pc.if_else(short, text, "0"), pa.int32())
        fits = pc.and_(short, pc.and_(pc.greater_equal(number, -32768), pc.less_equal(number, 32767)))
        k = pc.index(fits, False).as_py()
        if k >= 0 and (first is None or k < first[0]):
            first = (k, name, table.column(j)[k].as_py(), bool(is_integer[k].as_py()))
    return first


def _check_range(path: Path, raw: bytes, values: np.ndarray, low: int, high: int, names: list[str], what: str):
    bad = (values < low) | (values > high)
    bad_rows = bad.any(axis=1)
    if bad_rows.any():
        k = int(np.argmax(bad_rows))
        j = int(np.argmax(bad[k]))
        count = int(bad_rows.sum())
        also = f" ({count - 1} more rows with such values)" if count > 1 else ""
        raise InputError(path, f"{what} {values[k, j]} outside {low}-{high}{also}",
                         line=physical_line(raw, k + 2), row=k + 1, column=names[j])


def physical_line(raw: bytes, nonblank_number: int) -> int:
    """The 1-based line number of the n-th non-blank line (pyarrow skips blank lines when counting)."""
    if b"\n\n" not in raw and b"\n\r\n" not in raw and not raw.startswith((b"\n", b"\r\n")):
        return nonblank_number
    seen = 0
    for i, line in enumerate(raw.split(b"\n"), start=1):
        if line.rstrip(b"\r"):
            seen += 1
            if seen == nonblank_number:
                return i
    return nonblank_number
