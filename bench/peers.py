"""aekit against its peers, side by side: pythae 0.1.2 and the PyPI package ``autoencoders`` 0.6.8.

The same two models are trained on Fashion-MNIST (60 000 training images, intensities in [0, 1])
with the same settings by each toolkit's own documented training API:

* ``vae``: MLP VAE 784-512-256 -> 32-d Gaussian code -> 256-512-784, ReLU, Bernoulli likelihood
  (binary cross-entropy summed over the 784 pixels) + analytic KL to N(0, I), one posterior sample.
* ``ae``: MLP autoencoder 784-512-256-32 (linear code) -> 256-512-784 (linear output), ReLU,
  squared error summed over pixels.

Adam (lr 1e-3, no weight decay, no schedule), PyTorch's default initialisation, shuffled
mini-batches, no validation during training, ``--epochs`` passes. Every run is a fresh child
process (so peak resident memory, VmHWM, is per run) with ``--threads`` threads; runs alternate
between the toolkits (aekit fp32, pythae, autoencoders, aekit bf16, ...) so that machine drift
hits all of them alike.

Timing: the wall time of each epoch's training pass (for the peers measured around their own
per-epoch training method, for aekit from its history); samples/s = 60 000 x epochs / the sum.
The same with the process's CPU clock over the same training passes (``samples_per_cpu_second``;
aekit records each epoch's CPU time in its history) is robust to other jobs sharing the machine.
Runs alternate, so repeat i of every toolkit ran at about the same time: ``paired_speed_vs_pythae``
is the median over repeats of the per-repeat ratio, which cancels slow drift of the machine. The
whole ``fit``/``train`` call (with the peers' own per-epoch extras: pythae copies the best model
and saves the final one, ``autoencoders`` scores its validation loader and saves checkpoints) is
``fit_seconds``.

Test loss: ONE function (:func:`test_loss`) scores every trained network on the 10 000 test
images in nats per example: for the VAE the negative ELBO, BCE-with-logits summed over pixels +
KL, with one posterior sample per image drawn from the same seeded generator for every toolkit;
for the AE the squared error summed over pixels. Each toolkit's trained network is wrapped as
``posterior(x) -> (mean, logvar)`` / ``code(x)`` and ``output(z)`` (logits for the VAE, the
reconstruction for the AE).

How each peer is set up to train exactly this objective (read from their sources):

* pythae ``VAE`` with ``reconstruction_loss="bce"`` trains mean over the batch of
  ``F.binary_cross_entropy(sigmoid output, x)`` summed over pixels + KL summed over code
  dimensions: the same objective in the same units (its decoder ends in a sigmoid, so the wrapper
  scores the pre-sigmoid logits). pythae ``AE`` trains the squared error summed over pixels, batch
  mean: identical. Custom ``BaseEncoder``/``BaseDecoder`` networks give the 784-512-256 shape
  (its default MLP is 784-512 only). ``BaseTrainer`` feeds a per-example ``DataLoader``
  (``BaseDataset.__getitem__`` + collate of dicts), as documented.
* ``autoencoders`` offers only ``mse`` (mean over all elements) and ``l1`` reconstruction losses
  and a free-bits KL. The VAE is its ``VariationalAutoencoderModel`` with ``free_bits=0``,
  ``kl_weight=1``, its ``mlp`` backbones, and a two-method subclass: ``compute_loss`` returns the
  BCE with logits summed over pixels (batch mean), and ``encode`` applies the ReLU after the 256
  layer that its MLP leaves linear (its last backbone layer has no activation). With free_bits=0
  its KL term equals the summed KL, so it trains the same objective. The AE is its
  ``AutoencoderModel`` with encoder widths [512, 256, 32] and decoder widths [256, 512, 784]
  (no projections, ``latent_dim=None``), trained on its own ``mse`` = squared error / 784: the
  same minimiser, a constant factor Adam is invariant to (up to its eps). ``AETrainer`` /
  ``VAETrainer`` with its own ``create_dataloaders`` (per-example ``DataLoader``).
* aekit trains the Gaussian likelihood with sigma 1 for the AE (0.5 x squared error + a
  constant), again a constant factor and offset of the same objective.

    python bench/peers.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from common import machine, print_markdown_table, report_from_child, run_in_child

HIDDEN = [512, 256]
CODE = 32
PIXELS = 784
EVAL_BATCH = 1000
EVAL_SEED = 1234


# ------------------------------------------------------------------------------------------------ #
# measurement helpers, shared by every toolkit


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MiB); not inherited from the parent like ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def test_loss(model: str, nets: dict[str, Callable], x_test) -> dict[str, float]:
    """The test loss of trained networks in nats per example, the same computation for every toolkit.

    ``vae``: nets["posterior"](x) -> (mean, logvar) (B, 32) each, nets["output"](z) -> logits
    (B, 784); returns loss = BCE-with-logits summed over pixels + analytic KL (negative ELBO,
    one posterior sample per image from a generator seeded with EVAL_SEED), and both terms.
    ``ae``: nets["code"](x) -> (B, 32), nets["output"](z) -> reconstruction (B, 784); returns the
    squared error summed over pixels.
    """
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(EVAL_SEED)
    sums: dict[str, float] = {}
    with torch.no_grad():
        for start in range(0, len(x_test), EVAL_BATCH):
            x = x_test[start : start + EVAL_BATCH]  # (B, 784)
            if model == "vae":
                mean, logvar = nets["posterior"](x)
                eps = torch.randn(mean.shape, generator=generator)
                logits = nets["output"](mean + torch.exp(0.5 * logvar) * eps)
                nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
                kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
                terms = {"loss": nll + kl, "nll": nll, "kl": kl}
            else:
                terms = {"loss": (nets["output"](nets["code"](x)) - x).pow(2).sum(1)}
            for name, values in terms.items():
                sums[name] = sums.get(name, 0.0) + float(values.double().sum())
    return {name: total / len(x_test) for name, total in sums.items()}


# ------------------------------------------------------------------------------------------------ #
# one run per toolkit: train with its own API, return (epoch seconds, fit seconds, wrapped networks)


def run_aekit(model: str, x_train, batch: int, epochs: int, precision: str, seed: int):
    import torch

    import aekit

    torch.manual_seed(seed)
    family = "vae" if model == "vae" else "undercomplete"
    net = aekit.make_model(family, (PIXELS,), CODE, hidden=HIDDEN, activation="relu")
    config = aekit.TrainConfig(
        epochs=epochs, batch_size=batch, lr=1e-3, val_fraction=0.0, precision=precision, seed=seed
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    result = aekit.Trainer(net, config).fit(x_train)
    fit_seconds, fit_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    net.eval()
    if model == "vae":

        def posterior(x):
            q = net.latent.posterior(net.encoder(x))
            return q.mean, q.logvar

        nets = {"posterior": posterior, "output": net.decoder}
    else:
        nets = {"code": net.encode, "output": net.decoder}
    epoch_cpu = sum(h["cpu_seconds"] for h in result.history)  # the training passes only, like the wall
    return [h["seconds"] for h in result.history], epoch_cpu, fit_seconds, fit_cpu, nets


def run_pythae(model: str, x_train, batch: int, epochs: int, precision: str, seed: int):
    import numpy as np
    import torch
    from pythae.models import AE, VAE, AEConfig, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from torch import nn

    def mlp(widths: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
        return nn.Sequential(*layers[:-1])  # no activation after the last layer

    class Encoder(BaseEncoder):
        def __init__(self, variational: bool) -> None:
            BaseEncoder.__init__(self)
            self.body = mlp([PIXELS, *HIDDEN])
            self.head = nn.Linear(HIDDEN[-1], CODE)
            self.log_var = nn.Linear(HIDDEN[-1], CODE) if variational else None

        def forward(self, x):
            h = torch.relu(self.body(x.reshape(len(x), -1)))
            out = ModelOutput(embedding=self.head(h))
            if self.log_var is not None:
                out["log_covariance"] = self.log_var(h)
            return out

    class Decoder(BaseDecoder):
        def __init__(self, sigmoid: bool) -> None:
            BaseDecoder.__init__(self)
            self.body = mlp([CODE, *reversed(HIDDEN), PIXELS])
            self.sigmoid = sigmoid

        def forward(self, z):
            out = self.body(z)
            return ModelOutput(reconstruction=torch.sigmoid(out) if self.sigmoid else out)

    epoch_seconds: list[float] = []
    epoch_cpu: list[float] = []

    class TimedTrainer(BaseTrainer):
        def train_step(self, epoch: int):
            started, cpu_started = time.perf_counter(), time.process_time()
            loss = super().train_step(epoch)
            epoch_seconds.append(time.perf_counter() - started)
            epoch_cpu.append(time.process_time() - cpu_started)
            return loss

    from pythae.data.datasets import BaseDataset

    torch.manual_seed(seed)
    np.random.seed(seed)
    if model == "vae":
        config = VAEConfig(input_dim=(PIXELS,), latent_dim=CODE, reconstruction_loss="bce")
        net = VAE(config, encoder=Encoder(True), decoder=Decoder(True))
    else:
        config = AEConfig(input_dim=(PIXELS,), latent_dim=CODE)
        net = AE(config, encoder=Encoder(False), decoder=Decoder(False))
    out_dir = tempfile.mkdtemp(prefix="peers-pythae-")
    training = BaseTrainerConfig(
        output_dir=out_dir,
        per_device_train_batch_size=batch,
        num_epochs=epochs,
        learning_rate=1e-3,
        optimizer_cls="Adam",
        seed=seed,
        no_cuda=True,
    )
    dataset = BaseDataset(x_train, torch.zeros(len(x_train)))
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer = TimedTrainer(net, dataset, training_config=training)
    trainer.train()
    fit_seconds, fit_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    shutil.rmtree(out_dir, ignore_errors=True)
    net = trainer.model.eval()  # the weights after the last epoch
    if model == "vae":

        def posterior(x):
            out = net.encoder(x)
            return out.embedding, out.log_covariance

        nets = {"posterior": posterior, "output": net.decoder.body}  # logits: the layers before the sigmoid
    else:
        nets = {"code": lambda x: net.encoder(x).embedding, "output": lambda z: net.decoder(z)["reconstruction"]}
    return epoch_seconds, sum(epoch_cpu), fit_seconds, fit_cpu, nets


def run_autoencoders(model: str, x_train, batch: int, epochs: int, precision: str, seed: int):
    import torch
    import torch.nn.functional as F
    from autoencoders import (
        AETrainer,
        AutoencoderConfig,
        AutoencoderModel,
        TrainingConfig,
        VAETrainer,
        VariationalAutoencoderConfig,
        VariationalAutoencoderModel,
        create_dataloaders,
        set_seed,
    )
    from autoencoders.data.base import DatasetSplits, TensorSpec
    from torch.utils.data import Dataset

    class Images(Dataset):
        """One flattened image per index, as their embedding datasets return one vector."""

        def __init__(self, x) -> None:
            self.x = x

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, index: int):
            return self.x[index]

    class BernoulliVAE(VariationalAutoencoderModel):
        """Their VAE with a Bernoulli likelihood (logits) and a ReLU on the encoder's last layer."""

        def compute_loss(self, reconstruction, targets):
            return F.binary_cross_entropy_with_logits(reconstruction, targets, reduction="none").sum(-1).mean()

        def encode(self, inputs):
            h = torch.relu(self._encode_backbone(inputs))
            return self.mean_projection(h), self.logvar_projection(h)

    epoch_seconds: list[float] = []
    epoch_cpu: list[float] = []

    def timed(cls):
        class Timed(cls):
            def train_epoch(self, dataloader):
                started, cpu_started = time.perf_counter(), time.process_time()
                metrics = super().train_epoch(dataloader)
                epoch_seconds.append(time.perf_counter() - started)
                epoch_cpu.append(time.process_time() - cpu_started)
                return metrics

        return Timed

    set_seed(seed)
    torch.manual_seed(seed)
    spec = TensorSpec(shape=(PIXELS,))
    if model == "vae":
        net = BernoulliVAE(
            config=VariationalAutoencoderConfig(latent_dim=CODE, kl_weight=1.0, free_bits=0.0),
            sample_spec=spec,
            encoder="mlp",
            encoder_config={"hidden_dims": HIDDEN, "activation": "relu"},
            decoder="mlp",
            decoder_config={"hidden_dims": [*reversed(HIDDEN), PIXELS], "activation": "relu"},
        )
        trainer_cls = timed(VAETrainer)
    else:
        net = AutoencoderModel(
            config=AutoencoderConfig(latent_dim=None, reconstruction_loss="mse"),
            sample_spec=spec,
            encoder="mlp",
            encoder_config={"hidden_dims": [*HIDDEN, CODE], "activation": "relu"},
            decoder="mlp",
            decoder_config={"hidden_dims": [*reversed(HIDDEN), PIXELS], "activation": "relu"},
        )
        trainer_cls = timed(AETrainer)
    out_dir = tempfile.mkdtemp(prefix="peers-autoencoders-")
    # its fit() needs validation and test loaders: one small batch each keeps their cost out of the way
    small = Images(x_train[:batch])
    loaders = create_dataloaders(DatasetSplits(Images(x_train), small, small), batch_size=batch)
    args = TrainingConfig(
        output_dir=out_dir, epochs=epochs, learning_rate=1e-3, optimizer_name="adam", batch_size=batch,
        device="cpu", seed=seed,
    )  # fmt: skip
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer = trainer_cls(model=net, args=args)
    trainer.fit(loaders)
    fit_seconds, fit_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    shutil.rmtree(out_dir, ignore_errors=True)
    net.eval()
    if model == "vae":
        nets = {"posterior": net.encode, "output": net.decode}
    else:
        nets = {"code": net.encode, "output": net.decode}
    return epoch_seconds, sum(epoch_cpu), fit_seconds, fit_cpu, nets


def run_pythae_ftz(model: str, x_train, batch: int, epochs: int, precision: str, seed: int):
    """pythae as above, with denormal floats flushed to zero on every thread while it trains (what
    aekit's Trainer does by default): isolates what flushing alone is worth to a peer."""
    from aekit.tensors import denormals_flushed

    with denormals_flushed():
        return run_pythae(model, x_train, batch, epochs, precision, seed)


TOOLKITS = {"aekit": run_aekit, "pythae": run_pythae, "pythae-ftz": run_pythae_ftz, "autoencoders": run_autoencoders}


def child(spec: dict) -> dict:
    """One run in this (fresh) process: load data, train, score, report."""
    import torch

    from aekit.data import load_dataset

    torch.set_num_threads(spec["threads"])
    x_train = torch.from_numpy(load_dataset("fashion-mnist", "train", data_dir=spec["data_dir"]).x).reshape(-1, PIXELS)
    x_test = torch.from_numpy(load_dataset("fashion-mnist", "test", data_dir=spec["data_dir"]).x).reshape(-1, PIXELS)
    run = TOOLKITS[spec["toolkit"]]
    epoch_seconds, train_cpu, fit_seconds, fit_cpu, nets = run(
        spec["model"], x_train, spec["batch"], spec["epochs"], spec["precision"], spec["seed"]
    )
    if len(epoch_seconds) != spec["epochs"]:
        raise RuntimeError(f"{spec['toolkit']} ran {len(epoch_seconds)} epochs, not {spec['epochs']}")
    losses = test_loss(spec["model"], nets, x_test)
    train_seconds = sum(epoch_seconds)
    return {
        **{k: spec[k] for k in ("toolkit", "precision", "model", "batch", "repeat")},
        "samples_per_second": round(len(x_train) * spec["epochs"] / train_seconds, 1),
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "seconds_per_epoch": round(train_seconds / spec["epochs"], 3),
        "samples_per_cpu_second": round(len(x_train) * spec["epochs"] / train_cpu, 1),
        "fit_seconds": round(fit_seconds, 2),
        "fit_cpu_seconds": round(fit_cpu, 2),
        "peak_rss_mb": peak_rss_mb(),
        "test": {k: round(v, 3) for k, v in losses.items()},
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------ #
# the parent: schedule alternating runs, collect, summarise


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "aekit", "pythae", "autoencoders", "numpy")}


def summarise(rows: list[dict]) -> list[dict]:
    """Median over repeats per (model, batch, toolkit, precision), with ratios to pythae."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["batch"], row["toolkit"], row["precision"]), []).append(row)
    table = []
    for (model, batch, toolkit, precision), runs in groups.items():
        table.append(
            {
                "model": model,
                "batch": batch,
                "toolkit": toolkit,
                "precision": precision,
                "repeats": len(runs),
                "samples_per_second": statistics.median(r["samples_per_second"] for r in runs),
                "samples_per_cpu_second": statistics.median(r["samples_per_cpu_second"] for r in runs),
                "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                "test_loss": statistics.median(r["test"]["loss"] for r in runs),
            }
        )
    for row in table:
        ref = next(r for r in table if (r["model"], r["batch"], r["toolkit"]) == (row["model"], row["batch"], "pythae"))
        row["speed_vs_pythae"] = round(row["samples_per_second"] / ref["samples_per_second"], 2)
        row["cpu_speed_vs_pythae"] = round(row["samples_per_cpu_second"] / ref["samples_per_cpu_second"], 2)
        row["loss_minus_pythae"] = round(row["test_loss"] - ref["test_loss"], 3)
        mine = groups[(row["model"], row["batch"], row["toolkit"], row["precision"])]
        theirs = groups[(row["model"], row["batch"], "pythae", "fp32")]
        pairs = [a["samples_per_second"] / b["samples_per_second"] for a, b in zip(mine, theirs, strict=False)]
        row["paired_speed_vs_pythae"] = round(statistics.median(pairs), 2)
        flushed = groups.get((row["model"], row["batch"], "pythae-ftz", "fp32"))
        if flushed:  # the same, against pythae with denormals flushed
            pairs = [a["samples_per_second"] / b["samples_per_second"] for a, b in zip(mine, flushed, strict=False)]
            row["paired_speed_vs_pythae_ftz"] = round(statistics.median(pairs), 2)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"), help="holds fashion-mnist/")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["vae", "ae"], choices=["vae", "ae"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="aekit's precisions (the peers train in float32)")  # fmt: skip
    parser.add_argument("--toolkits", nargs="+", default=["pythae", "autoencoders"], choices=list(TOOLKITS)[1:],
                        help="peers to run besides aekit")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "peers.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report_from_child(child(json.loads(args.child)))
        return
    if args.data_dir is None:
        parser.error("pass --data-dir or set AEKIT_DATA_DIR (the folder that holds fashion-mnist/)")

    # one round per (model, batch, repeat), interleaved: aekit fp32, pythae, autoencoders, aekit bf16
    aekit_runs = [("aekit", p) for p in args.precision]
    interleaved = [aekit_runs[0], *[(t, "fp32") for t in args.toolkits], *aekit_runs[1:]]
    order = [
        (model, batch, repeat, toolkit, precision)
        for model in args.models
        for batch in args.batch_sizes
        for repeat in range(args.repeats)
        for toolkit, precision in interleaved
    ]
    load_start = os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    for index, (model, batch, repeat, toolkit, precision) in enumerate(order):
        spec = {
            "toolkit": toolkit, "precision": precision, "model": model, "batch": batch, "repeat": repeat,
            "epochs": args.epochs, "threads": args.threads, "seed": args.seed + repeat, "data_dir": args.data_dir,
        }  # fmt: skip
        rows.append(run_in_child(__file__, spec, env))
        r = rows[-1]
        print(
            f"[{index + 1}/{len(order)}] {model} b{batch} {toolkit}/{precision}: "
            f"{r['samples_per_second']:.0f} samples/s, "
            f"{r['seconds_per_epoch']:.2f} s/epoch, {r['peak_rss_mb']:.0f} MiB, test loss {r['test']['loss']:.2f}",
            flush=True,
        )
    table = summarise(rows)
    record = {
        "benchmark": "peers",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "epochs": args.epochs,
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "versions": versions(),
        "runs": rows,
        "summary": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    header = ["model", "batch", "toolkit", "precision", "samples/s", "x pythae", "x pythae (paired)", "samples/CPU-s"]
    header += ["x pythae (CPU)", "s/epoch", "peak RSS MiB", "test loss nats"]
    formats = {
        "samples_per_second": ".0f",
        "speed_vs_pythae": ".2f",
        "paired_speed_vs_pythae": ".2f",
        "samples_per_cpu_second": ".0f",
        "cpu_speed_vs_pythae": ".2f",
        "seconds_per_epoch": ".2f",
        "peak_rss_mb": ".0f",
        "test_loss": ".2f",
    }
    if any("paired_speed_vs_pythae_ftz" in r for r in table):
        header.insert(7, "x pythae-ftz (paired)")
        items = list(formats.items())
        formats = {**dict(items[:3]), "paired_speed_vs_pythae_ftz": ".2f", **dict(items[3:])}
    keys = ["model", "batch", "toolkit", "precision", *formats]
    print_markdown_table(header, [[format(r.get(k, float("nan")), formats.get(k, "")) for k in keys] for r in table])


if __name__ == "__main__":
    main()
