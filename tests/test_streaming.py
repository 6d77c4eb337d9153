"""Streaming data bigger than memory: chunked reads, every row once per epoch, same training API."""

import numpy as np
import pytest
import torch

import aekit
from aekit.batches import Streamed
from aekit.cli import main
from aekit.data.streaming import ArrayFile
from aekit.train import Trainer


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (n, 1, 4, 3), dtype=np.uint8) for n in (37, 50, 13)]
    (tmp_path / "shards").mkdir()
    for i, array in enumerate(arrays):
        np.save(tmp_path / "shards" / f"part{i}.npy", array)
    np.save(tmp_path / "all.npy", np.concatenate(arrays))
    return tmp_path, np.concatenate(arrays)


def test_array_file_reads_rows_across_shards(shards):
    folder, full = shards
    for source in (
        ArrayFile(folder / "shards"),
        ArrayFile(folder / "all.npy"),
        ArrayFile(np.load(folder / "all.npy", mmap_mode="r")),
    ):
        assert source.shape == full.shape
        np.testing.assert_array_equal(source.read(30, 95), full[30:95] / np.float32(255))
        rows = np.array([99, 0, 40])
        np.testing.assert_array_equal(source.take(rows), full[np.sort(rows)] / np.float32(255))


def test_a_slice_of_a_memory_map_streams_its_own_rows(shards, tmp_path):
    folder, full = shards
    mapped = np.load(folder / "all.npy", mmap_mode="r")
    for rows in (slice(0, 10), slice(17, 83), slice(90, None)):
        source = ArrayFile(mapped[rows])
        assert source.shape == full[rows].shape
        np.testing.assert_array_equal(source.read(0, len(source)), full[rows] / np.float32(255))
    np.testing.assert_array_equal(ArrayFile(mapped[20:][5:9]).read(0, 4), full[25:29] / np.float32(255))
    raw = np.memmap(tmp_path / "raw.dat", np.float32, "w+", shape=(6, 2), offset=12)  # no .npy header
    raw[:] = np.arange(12).reshape(6, 2)
    raw.flush()
    np.testing.assert_array_equal(ArrayFile(raw[2:5]).read(0, 3), np.arange(4, 10).reshape(3, 2))
    with pytest.raises(aekit.AekitError, match="not contiguous"):
        ArrayFile(mapped[::2])
    config = aekit.TrainConfig(epochs=1, batch_size=8, seed=0, val_fraction=0.0, checkpoint_every=0)
    model = aekit.make_model("undercomplete", (1, 4, 3), 2, hidden=[8])
    assert Trainer(model, config, progress=False).fit(mapped[:24]).steps == 3  # 24 rows, not the file's 100


def test_an_epoch_visits_every_training_row_once(shards):
    folder, full = shards
    held_out = np.array([3, 60, 90])
    batches = Streamed(ArrayFile(folder / "shards"), torch.device("cpu"), held_out, chunk_rows=16)
    seen = torch.cat(list(batches.epoch(7, seed=1)))
    assert len(seen) == len(batches) == len(full) - 3
    expected = np.delete(full, held_out, axis=0) / np.float32(255)
    as_rows = sorted(map(bytes, seen.numpy().reshape(len(seen), -1)))
    assert as_rows == sorted(map(bytes, expected.reshape(len(expected), -1)))
    again = torch.cat(list(batches.epoch(7, seed=1)))
    assert torch.equal(seen, again)  # seeded


def test_training_on_a_stream_is_seeded_and_learns(shards):
    folder, _ = shards
    config = aekit.TrainConfig(epochs=4, batch_size=8, lr=3e-3, seed=2)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = aekit.make_model("undercomplete", (1, 4, 3), 2, hidden=[8])
        result = Trainer(model, config, progress=False, chunk_rows=32).fit(ArrayFile(folder / "shards"))
        results.append((result, model.state_dict()))
    (first, state_a), (_, state_b) = results
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert first.history[-1]["val"]["loss"] < first.history[0]["val"]["loss"]


def test_stream_from_the_command_line(shards, capsys):
    folder, _ = shards
    code = main(
        [
            "train",
            "--stream",
            "--data",
            str(folder / "all.npy"),
            "--code-size",
            "2",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--out",
            str(folder / "run"),
            "--no-progress",
        ]
    )
    assert code == 0 and (folder / "run" / "model.safetensors").exists()
    assert "streamed" in capsys.readouterr().out


def test_streaming_refuses_what_it_cannot_read(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(aekit.AekitError, match="streaming needs"):
        ArrayFile(tmp_path / "flat.npy")
    with pytest.raises(aekit.AekitError, match="cannot stream"):
        ArrayFile(tmp_path / "x.csv")
    np.save(tmp_path / "nan.npy", np.full((4, 2), np.nan, np.float32))
    with pytest.raises(aekit.AekitError, match="NaN"):
        ArrayFile(tmp_path / "nan.npy").read(0, 4)


def test_channels_last_gives_the_same_training():
    x = torch.rand(32, 2, 9, 7, generator=torch.Generator().manual_seed(0))
    states = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = aekit.make_model("undercomplete", (2, 9, 7), 3, network="conv", channels=[4, 8])
        config = aekit.TrainConfig(epochs=2, batch_size=8, channels_last=channels_last)
        Trainer(model, config, progress=False).fit(x)
        states.append(model.state_dict())
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key].contiguous(), rtol=1e-4, atol=1e-5)
