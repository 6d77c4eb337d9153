"""Data loading: embedded set, idx files with checksums, arrays, CSV, image folders, bad inputs."""

import gzip
import hashlib

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.data import idx, load_dataset

from .conftest import shared_data_dir


def test_embedded_dataset_is_the_fashion_mnist_test_set():
    data = load_dataset("embedded", split="test")
    assert data.x.shape == (10000, 1, 28, 28) and data.x.dtype == np.float32
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert data.x.mean() == pytest.approx(73.15 / 255, abs=1e-3)  # published test-set mean pixel


def test_parse_idx_round_trip_and_damage():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    np.testing.assert_array_equal(idx.parse_idx(raw, "x"), array)
    with pytest.raises(aekit.AekitError, match="truncated"):
        idx.parse_idx(raw[:-1], "x")
    with pytest.raises(aekit.AekitError, match="magic number"):
        idx.parse_idx(b"\x00\x00\x09\x03" + raw[4:], "x")


def make_idx_folder(folder, dataset, part, array, monkeypatch):
    raw = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    spec = idx.DATASETS[dataset][part]
    monkeypatch.setitem(idx.DATASETS[dataset], part, idx.IdxFile(spec.filename, hashlib.sha256(raw).hexdigest()))
    (folder / dataset).mkdir(parents=True, exist_ok=True)
    (folder / dataset / f"{spec.filename}.gz").write_bytes(gzip.compress(raw))
    return raw


def test_idx_files_are_verified_by_checksum_of_the_decompressed_bytes(tmp_path, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    make_idx_folder(tmp_path, "mnist", "test-images", images, monkeypatch)
    make_idx_folder(tmp_path, "mnist", "test-labels", labels, monkeypatch)
    data = load_dataset("mnist", split="test", data_dir=tmp_path, download=False)
    np.testing.assert_allclose(data.x[:, 0], images / 255.0, atol=1e-7)
    # re-compressing does not matter (the check is on decompressed bytes); changing content does
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    damaged = bytearray(gzip.decompress(path.read_bytes()))
    damaged[100] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(damaged), compresslevel=1))
    with pytest.raises(aekit.AekitError, match="fails its checksum"):
        load_dataset("mnist", split="test", data_dir=tmp_path, download=False)


def test_missing_dataset_without_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(aekit.AekitError, match=r"not found.*--data-dir"):
        load_dataset("fashion-mnist", split="train", data_dir=tmp_path, download=False)


def test_offline_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.delenv("AEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(aekit.AekitError, match=r"could not be downloaded.*go online"):
        load_dataset("mnist", split="train", data_dir=tmp_path)


@pytest.mark.skipif(shared_data_dir() is None, reason="needs the folder of real datasets")
def test_real_fashion_mnist_and_mnist_verify():
    root = shared_data_dir()
    train = load_dataset("fashion-mnist", split="train", data_dir=root, download=False)
    assert train.x.shape == (60000, 1, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    test = load_dataset("mnist", split="test", data_dir=root, download=False)
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_npy_npz_csv_and_scaling(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (10, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    assert load_dataset(tmp_path / "a.npy").x.max() <= 1.0
    np.savez(tmp_path / "b.npz", x=array.astype(np.float32) * 3, y=np.arange(10))
    data = load_dataset(tmp_path / "b.npz", scale="minmax")
    assert data.x.min() == 0.0 and data.x.max() == 1.0 and data.labels.tolist() == list(range(10))
    assert load_dataset(tmp_path / "b.npz", scale="none").x.max() == float(array.max()) * 3
    (tmp_path / "c.csv").write_text("f1,f2,label\n0.5,1.5,0\n2.5,3.5,1\n")
    table = load_dataset(tmp_path / "c.csv", label_column="label")
    np.testing.assert_allclose(table.x, [[0.5, 1.5], [2.5, 3.5]])
    assert table.labels.tolist() == [0, 1]


def test_static_and_threshold_binarisation():
    data = load_dataset("embedded", split="test", binarize="static", seed=1)
    assert set(np.unique(data.x[:100]).tolist()) == {0.0, 1.0}
    again = load_dataset("embedded", split="test", binarize="static", seed=1)
    np.testing.assert_array_equal(data.x[:100], again.x[:100])
    thresholded = load_dataset("embedded", split="test", binarize="threshold")
    assert set(np.unique(thresholded.x[:100]).tolist()) == {0.0, 1.0}


def test_image_folders_with_classes_16_bit_and_colour(tmp_path):
    for label in ("cats", "dogs"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((5, 6), 40 * i, np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    data = load_dataset(tmp_path / "imgs")
    assert data.x.shape == (6, 1, 5, 6) and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.class_names == ["cats", "dogs"]
    (tmp_path / "deep").mkdir()
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "deep" / "a.png")
    assert load_dataset(tmp_path / "deep").x.max() == pytest.approx(1.0)
    (tmp_path / "rgb").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb" / "a.jpg")
    assert load_dataset(tmp_path / "rgb").x.shape == (1, 3, 4, 4)


@pytest.mark.parametrize(
    "writer,message",
    [
        (lambda p: p.write_text("a,b\n1,x\n"), "line 2 holds the non-numeric value 'x'"),
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: np.save(p.with_suffix(".npy"), np.array([1.0, np.nan])), "has shape"),
        (lambda p: np.save(p.with_suffix(".npy"), np.array([[1.0, np.nan]])), "NaN or infinite"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((0, 3))), "is empty"),
        (lambda p: np.save(p.with_suffix(".npy"), np.array([["a", "b"]])), "not numeric"),
        (lambda p: p.with_suffix(".png").write_bytes(b"\x89PNG\r\n\x1a\n broken"), "cannot read image"),
        (lambda p: p.with_suffix(".txt").write_text("hello"), "unsupported data file"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, writer, message):
    path = tmp_path / "data.csv"
    writer(path)
    target = next(p for p in tmp_path.iterdir())
    with pytest.raises(aekit.AekitError, match=message) as info:
        load_dataset(target)
    assert "\n" not in str(info.value)


def test_mismatched_image_sizes_and_unknown_names(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(aekit.AekitError, match="same size"):
        load_dataset(tmp_path)
    with pytest.raises(aekit.AekitError, match="not found"):
        load_dataset("cifar-10")
    with pytest.raises(aekit.AekitError, match="only a test split"):
        load_dataset("embedded", split="train")
