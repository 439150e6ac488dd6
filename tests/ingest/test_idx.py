"""The IDX parser on tiny fixtures: what it reads, and the errors that name the file and problem."""
import gzip
import struct

import numpy as np
import pytest

from conftest import write_idx
from digitforge.core.errors import InputError
from digitforge.ingest import idx


def test_reads_gzipped_and_raw_files_alike(make_idx_dataset, tmp_path):
    for gz in (True, False):
        folder = make_idx_dataset(gz=gz)
        images, labels = idx.read_pair(*idx.find_split_files(folder, "train"))
        assert images.shape == (200, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (200,) and labels.max() <= 9
        for f in folder.iterdir():
            f.unlink()


def test_round_trips_exact_pixels(tmp_path):
    images = np.arange(3 * 784, dtype=np.uint32).reshape(3, 28, 28) % 256
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", images, 2051)
    np.testing.assert_array_equal(idx.read_images(path), images.astype(np.uint8))


def test_gzipped_images_are_spilled_to_an_unnamed_file_in_the_spill_dir(tmp_path):
    images = np.arange(40 * 784, dtype=np.uint32).reshape(40, 28, 28) % 251
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", images, 2051)
    spill = tmp_path / "spill"
    got = idx.read_images(path, spill_dir=spill)
    np.testing.assert_array_equal(got, images.astype(np.uint8))
    assert spill.is_dir() and not list(spill.iterdir())  # no file left behind, whatever happens to the job


def test_finds_test_split_by_t10k_prefix(make_idx_dataset):
    folder = make_idx_dataset()
    images_path, labels_path = idx.find_split_files(folder, "test")
    assert images_path.name == "t10k-images-idx3-ubyte.gz" and labels_path.name == "t10k-labels-idx1-ubyte.gz"


@pytest.mark.parametrize("name,content,message", [
    ("empty-idx3-ubyte", b"", "file is empty"),
    ("short-idx3-ubyte", b"\x00\x00\x08", "too short"),
    ("magic-idx3-ubyte", struct.pack(">IIII", 2049, 1, 28, 28) + bytes(784), "wrong IDX magic 2049"),
    ("size-idx3-ubyte", struct.pack(">IIII", 2051, 1, 32, 32) + bytes(1024), "images are 32x32, expected 28x28"),
    ("trunc-idx3-ubyte", struct.pack(">IIII", 2051, 2, 28, 28) + bytes(784), "header promises 1568 values"),
])
def test_bad_image_files_name_file_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        idx.read_images(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        idx.read_images(tmp_path / "nope-idx3-ubyte.gz")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784))
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        idx.read_images(path)


def test_label_out_of_range_names_row(tmp_path):
    path = write_idx(tmp_path / "l-idx1-ubyte", np.array([1, 2, 12, 3]), 2049, gz=False)
    with pytest.raises(InputError, match=r"data row 3: label 12 outside 0-9"):
        idx.read_labels(path)


def test_count_mismatch(tmp_path):
    images = write_idx(tmp_path / "i-idx3-ubyte", np.zeros((3, 28, 28)), 2051)
    labels = write_idx(tmp_path / "l-idx1-ubyte", np.zeros(2), 2049)
    with pytest.raises(InputError, match="3 images but .* holds 2 labels"):
        idx.read_pair(images, labels)


def test_missing_split_names_expected_files(tmp_path):
    with pytest.raises(InputError, match="missing train images file"):
        idx.find_split_files(tmp_path, "train")
