"""What every gallery example shares: data, seeded training, the figure style and the files it writes.

Each example is a plain script with ``# %%`` cells and a ``main(size, out_dir, data_dir)`` entry:
``size="full"`` trains on real data for the documentation (minutes on a laptop CPU), ``size="tiny"``
runs the same code in seconds so that the test suite can check the example's claim. ``main`` writes
``<name>.png`` and ``<name>.json`` (the measured numbers, their labels, the claims and the answer)
into ``out_dir`` (default ``docs/gallery``) and returns the same record as a dict.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

import aekit
from aekit.plots import STYLE

ROOT = Path(__file__).resolve().parents[1]
GALLERY_DIR = ROOT / "docs" / "gallery"
SIZES = ("full", "tiny")


def check_size(size: str) -> bool:
    """True for the tiny size; an unknown size is an error."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: the sizes are {', '.join(SIZES)}")
    return size == "tiny"


# ------------------------------------------------------------------------------------------------ #
# data


@functools.cache
def _embedded() -> aekit.Dataset:
    return aekit.load_dataset("embedded", split="test")


def fashion_mnist(
    n_train: int, n_test: int, data_dir: str | Path | None = None, tiny: bool = False, seed: int = 0, pool: int = 1
) -> tuple[aekit.Dataset, aekit.Dataset, str]:
    """Seeded subsets of at most ``n_train`` training and ``n_test`` test images (N, 1, 28, 28) in [0, 1].

    Fashion-MNIST's own train/test split when ``data_dir`` (or ``$AEKIT_DATA_DIR``) holds it; else
    (and always at the tiny size) the 10 000 test images shipped inside aekit, split 80/20 with a
    fixed seed. ``pool`` > 1 averages pool x pool blocks of pixels (14 x 14 images for 2), which
    keeps the tiny runs to seconds. Returns (train, test, a sentence saying which).
    """
    train = test = None
    if not tiny:
        try:
            train = aekit.load_dataset("fashion-mnist", "train", data_dir=data_dir, download=False)
            test = aekit.load_dataset("fashion-mnist", "test", data_dir=data_dir, download=False)
            source = "Fashion-MNIST"
        except aekit.AekitError:
            train = None
    if train is None or test is None:
        train, test = _embedded().split(0.2, seed=0)
        source = "the Fashion-MNIST test set shipped with aekit, split 80/20"
    rng = np.random.default_rng(seed)
    train = train.subset(np.sort(rng.permutation(len(train))[: min(n_train, len(train))]))
    test = test.subset(np.sort(rng.permutation(len(test))[: min(n_test, len(test))]))
    if pool > 1:
        for part in (train, test):
            n, c, h, w = part.x.shape
            part.x = part.x.reshape(n, c, h // pool, pool, w // pool, pool).mean((3, 5))
    side = 28 // pool
    return train, test, f"{source}: {len(train)} training and {len(test)} test images of {side} x {side} pixels"


# ------------------------------------------------------------------------------------------------ #
# models and training


def build(family: str, data_shape, code_size: int, seed: int = 0, **options: Any) -> aekit.Autoencoder:
    """A family's model with weights initialised from ``seed``."""
    torch.manual_seed(seed)
    return aekit.make_model(family, data_shape, code_size, **options)


def build_config(config: aekit.ModelConfig, seed: int = 0) -> aekit.Autoencoder:
    """A model from an edited :class:`aekit.ModelConfig`, weights initialised from ``seed``."""
    torch.manual_seed(seed)
    return aekit.Autoencoder.from_config(config)


def fit(model: aekit.Autoencoder, x: Any, epochs: int, seed: int = 0, **options: Any) -> aekit.Autoencoder:
    """Train ``model`` on all of ``x`` (no validation split) with a cosine schedule; returns it in eval mode."""
    settings = {"lr": 1e-3, "batch_size": 128, "lr_schedule": "cosine", "val_fraction": 0.0, "device": "cpu"}
    config = aekit.TrainConfig(epochs=epochs, seed=seed, **{**settings, **options})
    aekit.Trainer(model, config, progress=False).fit(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    return model.eval()


@torch.no_grad()
def reconstruct(model: aekit.Autoencoder, x: Any) -> np.ndarray:
    """The model's reconstruction (the likelihood's mean) of x, as an array shaped like x."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return model.eval().reconstruct(x).numpy()


@torch.no_grad()
def encode(model: aekit.Autoencoder, x: Any) -> np.ndarray:
    """Deterministic codes (N, K)."""
    return model.eval().encode(torch.as_tensor(np.asarray(x), dtype=torch.float32)).numpy()


def squared_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over examples of the squared error summed over data dimensions."""
    return float(((np.asarray(a) - np.asarray(b)) ** 2).reshape(len(a), -1).sum(1).mean())


# ------------------------------------------------------------------------------------------------ #
# figures and results


def style():
    """The aekit figure style (``aekit.plots.STYLE``) as a context: build figures inside it."""
    return matplotlib.rc_context(STYLE)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure in the aekit style (call inside :func:`style`)."""
    return Figure(figsize=(width, height), layout="constrained")


class Run:
    """Times an example and writes what it measured: ``<name>.png`` and ``<name>.json``.

    ``numbers`` maps a short key to a measured value, ``labels`` the key to what it is (with its
    unit); ``claims(numbers)`` maps a sentence to whether the numbers bear it out, and
    ``answer(numbers)`` is the paragraph the documentation shows. Both are functions of the numbers
    alone, so a corrected sentence is re-rendered from the recorded run (:func:`rewrite`).
    """

    def __init__(self, name: str, size: str, out_dir: str | Path | None) -> None:
        self.name, self.size = name, size
        self.tiny = check_size(size)
        self.out_dir = Path(out_dir) if out_dir is not None else GALLERY_DIR
        self.started = time.perf_counter()

    def finish(
        self,
        figure: Figure,
        numbers: dict[str, float],
        labels: dict[str, str],
        claims: Callable[[dict[str, float]], dict[str, bool]],
        answer: Callable[[dict[str, float]], str],
        data: str,
    ) -> dict[str, Any]:
        missing = sorted(set(numbers) - set(labels))
        if missing:
            raise ValueError(f"numbers without a label: {missing}")
        numbers = {key: _plain(value) for key, value in numbers.items()}
        record = {
            "example": self.name,
            "size": self.size,
            "data": data,
            "numbers": numbers,
            "labels": {key: labels[key] for key in numbers},
            "claims": {text: bool(holds) for text, holds in claims(numbers).items()},
            "answer": answer(numbers),
            "seconds": round(time.perf_counter() - self.started, 1),
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.out_dir / f"{self.name}.png", dpi=STYLE.get("figure.dpi", 100))
        (self.out_dir / f"{self.name}.json").write_text(json.dumps(record, indent=1) + "\n")
        return record


def _plain(value: Any) -> float | int:
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, (bool, np.bool_)) else value


def rewrite(module: Any, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Re-render the claims and the answer of an example's recorded full run from its numbers
    (after their wording changed); the measurements, figure and run details stay as recorded."""
    path = Path(out_dir or GALLERY_DIR) / f"{module.NAME}.json"
    record = json.loads(path.read_text())
    numbers = record["numbers"]
    record["claims"] = {text: bool(holds) for text, holds in module.claims(numbers).items()}
    record["answer"] = module.answer(numbers)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def command_line(main: Callable[..., dict[str, Any]], description: str) -> dict[str, Any]:
    """``python examples/NN_name.py [--size tiny] [--out DIR] [--data-dir DIR] [--threads N] [--rewrite]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--out", type=Path, default=None, help="folder for the figure and numbers (docs/gallery)")
    parser.add_argument("--data-dir", default=None, help="folder holding fashion-mnist/ (default $AEKIT_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (recorded with the numbers)")
    parser.add_argument("--rewrite", action="store_true", help="only re-render claims and answer of the recorded run")
    args, _ = parser.parse_known_args()  # Jupyter passes its own arguments
    if args.rewrite:
        return rewrite(sys.modules[main.__module__], args.out)
    torch.set_num_threads(args.threads)
    record = main(size=args.size, out_dir=args.out, data_dir=args.data_dir)
    print(json.dumps({key: record[key] for key in ("numbers", "claims", "seconds")}, indent=1))
    return record


os.environ.setdefault("MPLBACKEND", "Agg")
