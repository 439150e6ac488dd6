"""Finding a dataset's IDX files, and the message when they are nowhere and cannot be downloaded."""
import pytest

from digitforge.core.errors import InputError
from digitforge.ingest import data_files


def test_data_dir_setting_wins(make_idx_dataset, monkeypatch):
    folder = make_idx_dataset()
    monkeypatch.setenv("DIGITFORGE_DATA_DIR", str(folder.parent))
    assert data_files.dataset_folder("mnist", folder.name) == folder


def test_missing_files_under_the_setting_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITFORGE_DATA_DIR", str(tmp_path))
    with pytest.raises(InputError, match="missing train images file"):
        data_files.dataset_folder("mnist", "mnist")


def test_failed_download_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("DIGITFORGE_DATA_DIR", raising=False)
    monkeypatch.setattr(data_files, "PROJECT_ROOT", tmp_path / "checkout")
    monkeypatch.setitem(data_files.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # nothing listens there
    with pytest.raises(InputError) as e:
        data_files.dataset_folder("mnist", "mnist")
    assert "could not be downloaded" in str(e.value) and "Set DIGITFORGE_DATA_DIR" in str(e.value)
