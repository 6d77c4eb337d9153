"""Data-parallel training: 2 CPU processes over gloo match one process with the same global batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import aekit
from aekit.io import read_safetensors, write_safetensors
from aekit.train import Trainer

CONFIG = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "val_fraction": 0.25, "seed": 3, "checkpoint_every": 1}


def data():
    return torch.rand(90, 12, generator=torch.Generator().manual_seed(0))  # 90: the last batch is uneven


def fresh_model():
    torch.manual_seed(0)
    return aekit.make_model("undercomplete", (12,), 3, hidden=[8])


def _worker(rank: int, world: int, folder: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        model = fresh_model()
        result = Trainer(model, aekit.TrainConfig(**CONFIG), run_dir=f"{folder}/run{rank}", progress=False).fit(data())
        if rank == 0:
            write_safetensors(f"{folder}/rank0.safetensors", model.state_dict(), {"history": result.history})
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_gloo_processes_match_single_process_training(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    state, meta = read_safetensors(tmp_path / "rank0.safetensors")
    single = fresh_model()
    history = Trainer(single, aekit.TrainConfig(**CONFIG), progress=False).fit(data()).history
    for key, value in single.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(history, meta["history"], strict=True):
        assert mine["train"]["loss"] == pytest.approx(theirs["train"]["loss"], rel=1e-4)
        assert mine["val"]["loss"] == pytest.approx(theirs["val"]["loss"], rel=1e-4)
    # only the first process writes checkpoints
    assert (tmp_path / "run0" / "checkpoint.safetensors").exists()
    assert not (tmp_path / "run1").exists()
