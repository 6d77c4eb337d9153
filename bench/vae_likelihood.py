"""Test-set -log p(x) of VAEs on dynamically binarised 28x28 images, against pythae 0.1.2's VAE.

Architecture of Burda et al. (2016), one stochastic layer: 784-200-200-(50 Gaussian units)-200-200-784
with Bernoulli outputs. They report MNIST test NLL 86.76 (VAE) and 84.78 (IWAE, k=50), estimated
with 5 000 importance samples, after 3^8 = 6 561 passes (3 280 epochs) over 60 000 training
images, with tanh units. Here every model uses ELU units (at budgets of 10-100 epochs tanh
networks of this shape sit for many epochs on the plateau where the code is ignored; ELU for all
models, same networks).

Trained here, at one equal budget of epochs per dataset, Adam with a constant learning rate and
the same batch size for every model:

* ``aekit-vae``: the ELBO, dynamic binarisation (a fresh Bernoulli draw of every training image
  in every batch);
* ``aekit-iwae``: the same with the IWAE objective (k = 50 importance samples);
* ``pythae-vae``: pythae 0.1.2's ``VAE`` with the same encoder/decoder, trained by its
  ``TrainingPipeline`` (Adam, same learning rate, batch size and epochs; its trainer has no dynamic
  binarisation, so it gets one seeded binarisation of the training images);
* ``pythae-vae-cosine`` (optional): the same with a cosine learning-rate decay (pythae's scheduler).

Every model is scored by the same code, :func:`aekit.metrics.importance_sampled_nll`, on the same
binarised test images (pythae's encoder and decoder are wrapped as aekit parts), with K = 5 000.
pythae's own ``get_nll`` is run on 100 test images as a cross-check of the wrapping.

Data: Fashion-MNIST (60k train; a seeded subset of the binarised test set is scored) and MNIST,
whose training images are not available here: a seeded 9 000 / 1 000 split of the 10 000 MNIST
test images (the same split as the PCA baseline in BASELINES.md) stands in for train / test.

pythae must be installed in the environment that runs this script (not a dependency of aekit):
``pip install --no-deps pythae==0.1.2 && pip install cloudpickle imageio "pydantic>=2"``.

    python bench/vae_likelihood.py --data-dir DATA --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

from common import machine

RESULTS = Path(__file__).parent / "results" / "vae_likelihood.json"
PUBLISHED = {"mnist": {"vae": 86.76, "iwae_k50": 84.78, "pythae_binary_mnist_vae": 89.78}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="folder with mnist/ etc.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--datasets", default="mnist,fashion-mnist", help="comma-separated, run in this order")
    parser.add_argument("--models", default="aekit-vae,aekit-iwae,pythae-vae", help="also: pythae-vae-cosine")
    parser.add_argument("--epochs", default="mnist=100,fashion-mnist=10", help="epochs per dataset")
    parser.add_argument("--eval-examples", default="mnist=1000,fashion-mnist=2000", help="test images scored")
    parser.add_argument("--importance-samples", type=int, default=5000, help="K of the test-set estimate")
    parser.add_argument("--iwae-samples", type=int, default=50, help="k of the IWAE training objective")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"], help="aekit models")
    parser.add_argument("--activation", default="elu", help="hidden activation of every model")
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="KL warm-up, fraction of the epochs")
    parser.add_argument("--code-size", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="keep the finished entries of --out, run the rest")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    epochs = _per_dataset(args.epochs)
    eval_examples = _per_dataset(args.eval_examples)
    record = json.loads(args.out.read_text()) if args.resume and args.out.exists() else {}
    header = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    runs = _runs(record)  # one header per invocation, so a resumed record still says how each entry was made
    runs.append({**header, "entries": []})
    record.update({"benchmark": "vae_likelihood", **header, "published": PUBLISHED, "runs": runs})
    results = record.setdefault("results", {})
    for dataset in args.datasets.split(","):
        train_x, test_x, note = _data(dataset, args.data_dir, eval_examples[dataset], args.seed)
        results.setdefault(dataset, {})["data"] = note
        for name in args.models.split(","):
            if name in results[dataset] and args.resume:
                print(f"{dataset} {name}: kept from {args.out}")
                continue
            print(f"\n=== {dataset}: {name}, {epochs[dataset]} epochs ===", flush=True)
            results[dataset][name] = run_model(name, train_x, test_x, epochs[dataset], args)
            runs[-1]["entries"].append(f"{dataset}/{name}")
            _write(args.out, record)
            print(json.dumps(results[dataset][name], indent=1), flush=True)
    print(table(record))


# ------------------------------------------------------------------------------------------------ #
# models


def run_model(name: str, train_x, test_x, epochs: int, args) -> dict:
    import torch

    torch.manual_seed(args.seed)
    if name.startswith("aekit"):
        model, seconds, extra = train_aekit(name, train_x, epochs, args)
    else:
        pythae_model, seconds, extra = train_pythae(name, train_x, epochs, args)
        model = _as_aekit(pythae_model)
        extra["cross_check"] = cross_check(pythae_model, model, test_x[:100], args.seed)
    return {**extra, **evaluate(model, test_x, args), "train_seconds": round(seconds, 1), "epochs": epochs}


def cross_check(pythae_model, model, x, seed: int, samples: int = 1000) -> dict:
    """pythae's own importance-sampled estimate next to aekit's on the same images and model."""
    import torch

    from aekit.metrics import importance_sampled_nll

    torch.manual_seed(seed)
    with torch.no_grad():
        theirs = -float(pythae_model.get_nll(torch.as_tensor(x), n_samples=samples, batch_size=100))
    ours = importance_sampled_nll(model, x, samples, seed=seed).mean()
    return {"examples": len(x), "samples": samples, "pythae_get_nll": round(theirs, 3), "aekit": round(float(ours), 3)}


def train_aekit(name: str, train_x, epochs: int, args):
    import aekit

    samples = args.iwae_samples if name == "aekit-iwae" else 1
    model = aekit.make_model(
        "vae",
        (1, 28, 28),
        args.code_size,
        hidden=[args.hidden, args.hidden],
        activation=args.activation,
        importance_samples=samples,
    )
    config = aekit.TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        val_fraction=0.0,
        dynamic_binarization=True,
        penalty_warmup_epochs=args.warmup_fraction * epochs,
        seed=args.seed,
        log_every=100,
    )
    result = aekit.Trainer(model, config, progress=True).fit(train_x)
    final = result.history[-1]["train"]
    return model, result.seconds, {"final_train_loss": round(final["loss"], 3), "objective_samples": samples}


def train_pythae(name: str, train_x, epochs: int, args):
    import numpy as np
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    # pythae's trainer draws no new binarisation per batch: one seeded draw of the training images
    binary = (np.random.default_rng(args.seed + 10).random(train_x.shape, dtype=np.float32) < train_x).astype(
        np.float32
    )
    encoder, decoder = _pythae_networks(args.code_size, args.hidden, args.activation)
    model_config = VAEConfig(input_dim=(1, 28, 28), latent_dim=args.code_size, reconstruction_loss="bce")
    model = VAE(model_config, encoder, decoder)
    scheduler = {}
    if name == "pythae-vae-cosine":  # stepped once per epoch by pythae's trainer
        cosine = {"T_max": epochs, "eta_min": args.lr / 100}
        scheduler = {"scheduler_cls": "CosineAnnealingLR", "scheduler_params": cosine}
    with tempfile.TemporaryDirectory() as folder:
        config = BaseTrainerConfig(
            output_dir=folder,
            num_epochs=epochs,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size,
            optimizer_cls="Adam",
            keep_best_on_train=True,  # without evaluation data pythae needs this to save its model
            seed=args.seed,
            no_cuda=True,
            **scheduler,
        )
        started = time.perf_counter()
        TrainingPipeline(training_config=config, model=model)(train_data=binary)
        seconds = time.perf_counter() - started
    return model.eval(), seconds, {"pythae_scheduler": scheduler or None}


def _pythae_networks(code_size: int, hidden: int, activation: str):
    import torch
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    from aekit.nets.mlp import make_activation

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.body = nn.Sequential(
                nn.Flatten(),
                nn.Linear(784, hidden),
                make_activation(activation),
                nn.Linear(hidden, hidden),
                make_activation(activation),
            )
            self.mean, self.log_var = nn.Linear(hidden, code_size), nn.Linear(hidden, code_size)

        def forward(self, x):
            h = self.body(x)
            return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.logits = nn.Sequential(
                nn.Linear(code_size, hidden),
                make_activation(activation),
                nn.Linear(hidden, hidden),
                make_activation(activation),
                nn.Linear(hidden, 784),
            )

        def forward(self, z):  # pythae's BCE loss wants probabilities
            return ModelOutput(reconstruction=torch.sigmoid(self.logits(z)).view(-1, 1, 28, 28))

    return Encoder(), Decoder()


def _as_aekit(pythae_model):
    """pythae's trained encoder and decoder as an aekit model: the same weights, scored by aekit's code."""
    import torch
    from torch import nn

    from aekit.latents import GaussianLatent
    from aekit.likelihoods import BernoulliLikelihood
    from aekit.model import Autoencoder

    class Encoder(nn.Module):  # (B, 1, 28, 28) -> (B, 2K): [mean, log-variance], what a Gaussian latent reads
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return torch.cat([out.embedding, out.log_covariance], -1)

    class Decoder(nn.Module):  # (B, K) -> (B, 1, 28, 28) logits, before pythae's sigmoid
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner.logits(z).view(-1, 1, 28, 28)

    encoder, decoder = Encoder(pythae_model.encoder), Decoder(pythae_model.decoder)
    latent = GaussianLatent(pythae_model.latent_dim)
    return Autoencoder(encoder, latent, decoder, BernoulliLikelihood(), data_shape=(1, 28, 28)).eval()


def evaluate(model, test_x, args) -> dict:
    import numpy as np

    from aekit.metrics import active_units, importance_sampled_nll, reconstruction_report

    started = time.perf_counter()
    nll = importance_sampled_nll(model, test_x, args.importance_samples, batch_size=100, seed=args.seed, progress=True)
    seconds = time.perf_counter() - started
    report = reconstruction_report(model, test_x, seed=args.seed)
    out = {
        "is_nll": round(float(nll.mean()), 3),
        "is_nll_stderr": round(float(nll.std(ddof=1) / np.sqrt(len(nll))), 3),
        "neg_elbo": round(-report["elbo"], 3),
        "active_units": active_units(model, test_x),
        "eval_seconds": round(seconds, 1),
        "eval_examples": len(test_x),
        "importance_samples": args.importance_samples,
    }
    return out


# ------------------------------------------------------------------------------------------------ #
# data


def _data(dataset: str, data_dir, n_eval: int, seed: int):
    """(train grey images, binarised test images, description); the test binarisation is seeded."""
    import numpy as np

    import aekit

    if dataset == "mnist":
        full = aekit.load_dataset("mnist", split="test", data_dir=data_dir, download=False)
        train, test = full.split(0.1, seed=seed)  # 9 000 / 1 000 of the MNIST test images
        note = "MNIST: training images unavailable; seeded 9 000 / 1 000 split of the 10 000 test images"
    else:
        train = aekit.load_dataset(dataset, split="train", data_dir=data_dir, download=False)
        test = aekit.load_dataset(dataset, split="test", data_dir=data_dir, download=False)
        note = f"{dataset}: {len(train)} training images; {{n}} seeded test images of {len(test)}"
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(test), min(n_eval, len(test)), replace=False))
    test_x = (rng.random(test.x[index].shape, dtype=np.float32) < test.x[index]).astype(np.float32)
    return train.x, test_x, note.replace("{n}", str(len(test_x))) + "; test images binarised once (seeded)"


def _runs(record: dict) -> list[dict]:
    """The record's list of invocations; a record written before the list existed becomes its first."""
    if "runs" in record or "settings" not in record:
        return record.get("runs", [])
    entries = [f"{d}/{m}" for d, models in record.get("results", {}).items() for m in models if m != "data"]
    keys = ("date", "machine", "threads", "torch", "settings")
    return [{**{key: record[key] for key in keys if key in record}, "entries": entries}]


def _per_dataset(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (item.split("=") for item in text.split(","))}


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(record, default=lambda value: None))
    path.write_text(json.dumps(clean, indent=1) + "\n")


def table(record: dict) -> str:
    lines = [
        "| data | model | epochs | IS-NLL | -ELBO | active units | train s | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset, entries in record["results"].items():
        for name, entry in entries.items():
            if name == "data":
                continue
            lines.append(
                f"| {dataset} | {name} | {entry['epochs']} | {entry['is_nll']:.2f} ± {entry['is_nll_stderr']:.2f} | "
                f"{entry['neg_elbo']:.2f} | {entry['active_units']} | {entry['train_seconds']:.0f} | "
                f"{entry['eval_seconds']:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
