"""The Kaggle CSV reader on tiny files: what it reads, and one error per kind of bad input, each naming
the file and, where it applies, the line, data row and column."""
import gzip

import numpy as np
import pytest

from conftest import write_csv
from digitforge.core.errors import InputError
from digitforge.ingest import kaggle_csv

HEADER = ",".join(kaggle_csv.LABELLED_COLUMNS)


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)


def line(label, pixels=None):
    pixels = [0] * 784 if pixels is None else pixels
    return ",".join(map(str, ([] if label is None else [label]) + list(pixels)))


def with_pixel(value, at=5):
    return [0] * at + [value] + [0] * (783 - at)


def test_reads_labelled_csv_exactly(tmp_path):
    imgs, labels = images(20), np.arange(20) % 10
    got_images, got_labels = kaggle_csv.read_csv(write_csv(tmp_path / "train.csv", imgs, labels))
    np.testing.assert_array_equal(got_images, imgs)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8


def test_unlabelled_csv_has_no_labels(tmp_path):
    got_images, got_labels = kaggle_csv.read_csv(write_csv(tmp_path / "test.csv", images(3)))
    assert got_labels is None and got_images.shape == (3, 28, 28)


def test_reads_gzipped_csv_crlf_and_blank_lines(tmp_path):
    text = "\r\n".join([HEADER, line(3), "", line(4, with_pixel(200))]) + "\r\n"
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    got_images, got_labels = kaggle_csv.read_csv(path)
    assert got_labels.tolist() == [3, 4] and got_images[1].reshape(-1)[5] == 200


def bad(tmp_path, text: str, name="train.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as e:
        kaggle_csv.read_csv(path)
    assert str(e.value).startswith(str(path))
    return str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"train.csv: file not found"):
        kaggle_csv.read_csv(tmp_path / "train.csv")


def test_empty_file(tmp_path):
    assert bad(tmp_path, "").endswith(": file is empty")


def test_truncated_gzip(tmp_path):
    data = gzip.compress((HEADER + "\n" + line(1) + "\n").encode())
    path = tmp_path / "train.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"train.csv.gz: corrupt or truncated gzip"):
        kaggle_csv.read_csv(path)


def test_header_only(tmp_path):
    assert bad(tmp_path, HEADER + "\n").endswith(": header only: the file holds no data rows")


def test_header_with_a_wrong_column_name(tmp_path):
    msg = bad(tmp_path, HEADER.replace("pixel7,", "pixle7,") + "\n" + line(1) + "\n")
    assert "line 1: header column 9 is 'pixle7', expected 'pixel7'" in msg


def test_header_with_a_wrong_column_count(tmp_path):
    assert "line 1: header has 3 columns" in bad(tmp_path, "label,pixel0,pixel1\n1,2,3\n")


def test_row_with_wrong_column_count_names_line_and_row(tmp_path):
    # line 3 is blank: the bad row is on line 5 but is data row 3
    text = "\n".join([HEADER, line(1), "", line(2), line(3)[:-2], line(4)[:-2]]) + "\n"
    msg = bad(tmp_path, text)
    assert "line 5 (data row 3): row has 784 columns, expected 785 (1 more such rows)" in msg


@pytest.mark.parametrize("value", ["x", "1.5", "", "1e3", "12a"])
def test_non_integer_value_names_line_row_and_column(tmp_path, value):
    msg = bad(tmp_path, "\n".join([HEADER, line(1), line(2, with_pixel(value, at=17))]) + "\n")
    assert f"line 3 (data row 2), column pixel17: non-integer value {value!r}" in msg


@pytest.mark.parametrize("value", [256, -1, 40000])
def test_pixel_outside_0_255(tmp_path, value):
    msg = bad(tmp_path, "\n".join([HEADER, line(1), line(2), line(3, with_pixel(value, at=783))]) + "\n")
    assert f"line 4 (data row 3), column pixel783: pixel {value} outside 0-255" in msg


def test_label_outside_0_9(tmp_path):
    msg = bad(tmp_path, "\n".join([HEADER, line(1), line(10), line(-2)]) + "\n")
    assert "line 3 (data row 2), column label: label 10 outside 0-9 (1 more rows with such values)" in msg


def test_unlabelled_file_checks_pixels_too(tmp_path):
    header = ",".join(kaggle_csv.PIXEL_COLUMNS)
    msg = bad(tmp_path, "\n".join([header, line(None, with_pixel(999, at=0))]) + "\n", name="test.csv")
    assert "line 2 (data row 1), column pixel0: pixel 999 outside 0-255" in msg
