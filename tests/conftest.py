import os

# one thread: with two cores and another busy process, OpenMP spin-waiting slows torch 25-40x
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

FAMILY_CASES = [
    ("linear", {}),
    ("undercomplete", {"hidden": [16]}),
    ("undercomplete", {"hidden": [16], "norm": "batch", "activation": "elu"}),
    ("undercomplete", {"network": "conv", "channels": [4, 8]}),
    ("sparse", {"hidden": [16], "sparsity": "l1"}),
    ("sparse", {"hidden": [16], "sparsity": "kl"}),
    ("denoising", {"hidden": [16], "noise": "gaussian"}),
    ("denoising", {"hidden": [16], "noise": "masking"}),
    ("denoising", {"hidden": [16], "noise": "salt_and_pepper"}),
    ("contractive", {"hidden": []}),
    ("contractive", {"hidden": [16]}),
    ("vae", {"hidden": [16]}),
    ("vae", {"hidden": [16], "free_bits": 0.1}),
    ("vae", {"hidden": [16], "importance_samples": 4}),
    ("vae", {"network": "conv", "channels": [4, 8], "likelihood": "gaussian"}),
    ("hashing", {"hidden": [16]}),
]


def case_id(case):
    family, options = case
    extra = ",".join(f"{k}={v}" for k, v in options.items() if k != "hidden")
    return f"{family}[{extra}]" if extra else family


@pytest.fixture
def images():
    """64 seeded images (64, 1, 9, 7) in [0, 1]: odd sizes on purpose."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 9, 7, generator=generator)


def shared_data_dir() -> Path | None:
    """The folder of real datasets, if this machine has one (tests that need it skip otherwise)."""
    for candidate in (os.environ.get("AEKIT_DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if candidate and (Path(candidate) / "fashion-mnist").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# the image-restoration families: fully convolutional, any image size, the code is an image
DICTIONARY_CASES = [  # families of flat vectors (N, D)
    ("sae-topk", {"k": 2, "aux_k": 4}),
    ("sae-batchtopk", {"k": 2}),
    ("sae-jumprelu", {"l0_weight": 0.3, "aux_k": 4}),
    ("sae-l1", {"l1_weight": 0.1}),
    ("sae-topk", {"k": 2, "centre": "median", "expansion": 2.0}),
]

RESTORATION_CASES = [
    ("denoise", {"depth": 2, "width": 4}),
    ("denoise", {"depth": 2, "width": 4, "max_sigma": 50.0}),
    ("denoise", {"depth": 2, "width": 4, "sigma": 0.0, "max_sigma": 75.0, "noise_map": True}),
    ("super-resolve", {"depth": 2, "width": 4, "scale": 2}),
    ("inpaint", {"depth": 2, "width": 4, "mask": "pixels"}),
    ("colorize", {"depth": 2, "width": 4}),
    ("colorize", {"depth": 2, "width": 4, "output": "categorical"}),
    ("deblock", {"depth": 2, "width": 4}),
]


@pytest.fixture(params=["compiled", "torch"])
def listed_loops(request, monkeypatch):
    """Runs a test with the dictionaries' listed arithmetic compiled (aekit.sae.native; skipped
    where this machine has no C compiler) and again with torch's operators."""
    from aekit.sae import native

    if request.param == "compiled" and not native.available():
        pytest.skip(f"the compiled loops are not available here: {native.reason}")
    if request.param == "torch":
        monkeypatch.setattr(native, "_library", None)
        monkeypatch.setattr(native, "_tried", True)
    return request.param
