"""The benchmarks' own pieces (no timings asserted): the scale bench's synthetic set is deterministic,
MNIST-shaped and readable by ingest's IDX reader; the process-tree RSS sampler sees a child; the timed
runner keeps every stderr line in order."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import measure  # noqa: E402
import scale  # noqa: E402

from digitforge.ingest import idx  # noqa: E402


def _real(n=50):
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 8:20, 10:18] = rng.integers(100, 256, (n, 12, 8), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def test_synthetic_rows_are_seeded_shifted_copies_with_their_labels(tmp_path, monkeypatch):
    images, labels = _real()
    monkeypatch.setattr(scale, "CHUNK", 32)  # several chunks
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    scale.write_idx(tmp_path / "a", "train", images, labels, 120, seed=3)
    scale.write_idx(tmp_path / "b", "train", images, labels, 120, seed=3)
    scale.write_idx(tmp_path / "c", "train", images, labels, 120, seed=4)
    a = (tmp_path / "a" / "train-images-idx3-ubyte").read_bytes()
    assert a == (tmp_path / "b" / "train-images-idx3-ubyte").read_bytes()
    assert a != (tmp_path / "c" / "train-images-idx3-ubyte").read_bytes()
    px, lb = idx.read_pair(*idx.find_split_files(tmp_path / "a", "train"))
    assert px.shape == (120, 28, 28) and px.dtype == np.uint8
    assert lb.tolist() == [int(labels[j % 50]) for j in range(120)]
    assert not np.array_equal(px[:50], images)  # transformed, not copied
    assert px.reshape(120, -1).sum(1).min() > 0  # the digit stays in the frame


def test_sizes_split_like_mnist():
    assert scale.split_sizes(70_000) == (60_000, 10_000)
    assert sum(scale.split_sizes(700_001)) == 700_001


def test_linearity_is_rate_at_the_largest_size_over_the_smallest():
    small = {st: {"rows_per_s": 100} for st in scale.STAGES}
    large = {st: {"rows_per_s": 90} for st in scale.STAGES}
    assert scale.linearity([small, large], "rows_per_s") == {st: 0.9 for st in scale.STAGES}
    assert scale.linearity([small], "rows_per_s") == {st: None for st in scale.STAGES}


def test_timed_run_keeps_lines_and_samples_the_process_tree():
    code = ("import sys, subprocess, time; sys.stderr.write('one\\n'); sys.stderr.flush(); "
            "subprocess.run([sys.executable, '-c', 'b = bytearray(40 * 2**20); import time; time.sleep(0.8)']); "
            "sys.stderr.write('two\\n')")
    run = measure.run_timed([sys.executable, "-c", code], rss=True)
    assert run.rc == 0 and [line for _, line in run.lines] == ["one", "two"]
    assert run.first("one") <= run.first("two") <= run.wall_s
    assert run.peak_rss_mb["processes"] >= 2 and run.peak_rss_mb["other"] >= 40
