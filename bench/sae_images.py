"""A sparse dictionary inside an image model: the hidden layer of a Fashion-MNIST autoencoder.

A plain autoencoder (``undercomplete``, MLP 784-512-256-32, ELU) is trained on Fashion-MNIST; the
output of its first hidden layer (after the activation: ``encoder.layers.1``, 512 values) is
collected over the training images (``aekit.sae.collect``) and a ``sae-topk`` dictionary
(``--width`` latents, ``--k``; a latent silent for ``--dead-window`` examples counts as dead and
AuxK revives it: the family's default window, a million, is longer than this whole run) is
trained on it. On the test images: fraction of variance
unexplained, L0, dead and dense latents, shrinkage, and the loss recovered (the autoencoder's own
squared reconstruction error, clean / with the layer replaced by the dictionary's reconstruction
/ with it zeroed). Each latent is drawn as an image through the model: the pixel-space direction
W_1^T d_j of its decoder direction d_j mapped back through the first layer's weights, beside its
top-activating test images (the feature browser written to ``--report``).

``--auxk-sweep`` also trains the same dictionary without AuxK, with the main run's AuxK, and with
AuxK at weight 1 over a 20 000-example window, and reports for each the share of latents that
never fire on the training and on the test images, with the effective rank of the activations
(singular values holding 99 % of the variance of 20 000 of them).

    python bench/sae_images.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_clip_option, write_record


def silent_latents(sae, rows: np.ndarray) -> dict:
    """Of the latents that never fire on ``rows``: the share whose largest pre-activation is
    positive (they lose the top-k race rather than being switched off), the median of that
    largest pre-activation, and the mean |cosine| between their decoder directions beside the same
    for the firing latents (unit vectors drawn at random in D dimensions: about sqrt(2 / (pi D)))."""
    import torch

    sae.eval()
    with torch.no_grad():
        x = torch.as_tensor(rows)
        h = torch.cat([sae.encoder(x[i : i + 4096]) for i in range(0, len(x), 4096)])  # (N, K)
        fired = torch.zeros(h.shape[1], dtype=torch.bool)
        for i in range(0, len(h), 4096):
            fired |= (sae.latent.activate(h[i : i + 4096]) != 0).any(0)
    largest = h.max(0).values  # (K,)
    directions = sae.decoder.weight.detach()  # (D, K), unit columns

    def mean_abs_cosine(columns: torch.Tensor) -> float:
        n = columns.shape[1]
        return float(((columns.T @ columns).abs().sum() - n) / max(n * (n - 1), 1))

    silent = ~fired
    return {
        "silent_positive_share": round(float((largest[silent] > 0).float().mean()), 4),
        "silent_largest_preactivation_median": round(float(largest[silent].median()), 3),
        "silent_mean_abs_cosine": round(mean_abs_cosine(directions[:, silent]), 4),
        "firing_mean_abs_cosine": round(mean_abs_cosine(directions[:, fired]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding fashion-mnist/")
    parser.add_argument("--epochs", type=int, default=10, help="autoencoder epochs (default: 10)")
    parser.add_argument("--sae-epochs", type=int, default=5, help="dictionary epochs (default: 5)")
    parser.add_argument("--width", type=int, default=2048, help="dictionary latents (default: 2048)")
    parser.add_argument("--k", type=int, default=16, help="active latents (default: 16)")
    parser.add_argument(
        "--dead-window", type=int, default=50_000, help="examples without firing = dead, for AuxK (default: 50000)"
    )
    parser.add_argument("--auxk-sweep", action="store_true", help="also compare AuxK settings (see above)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    add_clip_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--report", type=Path, default=Path("runs/sae-images-report"), help="browser folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sae_images.json")
    args = parser.parse_args()

    import torch

    import aekit
    from aekit.metrics import dictionary_report
    from aekit.sae import collect, loss_recovered, write_report

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train = aekit.load_dataset("fashion-mnist", "train", data_dir=args.data_dir, download=False)
    test = aekit.load_dataset("fashion-mnist", "test", data_dir=args.data_dir, download=False)
    torch.manual_seed(args.seed)
    host = aekit.make_model("undercomplete", (1, 28, 28), 32, hidden=[512, 256], likelihood="bernoulli")
    config = aekit.TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed)
    aekit.Trainer(host, config, progress=False).fit(train.x)
    host.eval()
    module = "encoder.layers.1"
    folder = Path(tempfile.mkdtemp(prefix="aekit-acts-"))
    acts = collect(host, module, train.x, folder / "train", progress=False)
    held = collect(host, module, test.x, folder / "test", progress=False).read(0, len(test.x))
    torch.manual_seed(args.seed)
    sae = aekit.make_model("sae-topk", (acts.shape[1],), args.width, k=args.k, dead_window=args.dead_window)
    settings = aekit.TrainConfig(
        epochs=args.sae_epochs, batch_size=1024, lr=1e-3, lr_schedule="cosine", val_fraction=0.0, seed=args.seed,
        checkpoint_every=0, clip_grad_norm=args.clip_grad_norm,
    )  # fmt: skip
    result = aekit.Trainer(sae, settings, progress=False).fit(acts)
    batches = [torch.as_tensor(test.x[i : i + 1000]) for i in range(0, len(test.x), 1000)]

    def squared_error(batch: torch.Tensor) -> torch.Tensor:
        return (host.reconstruct(batch) - batch).square().flatten(1).sum(1).mean()

    row = {"module": module, "width": args.width, "k": args.k, "sae_train_seconds": round(result.seconds, 1)}
    row |= {key: round(value, 4) for key, value in dictionary_report(sae, held).items()}
    row |= {key: round(value, 4) for key, value in loss_recovered(host, module, sae, batches, squared_error).items()}
    print(row, flush=True)
    # a latent's decoder direction seen in pixel space, through the first layer: W_1^T d_j (784,)
    first = host.encoder.linear_layers[0].weight.detach()  # (512, 784)
    directions = (sae.decoder.weight.detach().T / sae.decoder.scale) @ first  # (K, 784)
    page = write_report(
        sae, held, args.report, images=test.x, direction_shape=(28, 28), directions=directions, latents=60, top=8,
        title="Fashion-MNIST autoencoder, hidden layer 1: features",
    )  # fmt: skip
    sweep = {}
    if args.auxk_sweep:
        train_rows = acts.read(0, len(acts))
        sample = train_rows[:20000] - train_rows[:20000].mean(0)
        energy = np.linalg.svd(sample, compute_uv=False) ** 2
        sweep["effective_rank_99"] = int((np.cumsum(energy) / energy.sum() < 0.99).sum() + 1)
        settings_by_name = {
            "no AuxK": {"aux_k": 0},
            f"AuxK weight 1/32, window {args.dead_window}": {"dead_window": args.dead_window},
            "AuxK weight 1, window 20000": {"dead_window": 20000, "aux_weight": 1.0},
        }
        for name, options in settings_by_name.items():
            torch.manual_seed(args.seed)
            variant = aekit.make_model("sae-topk", (acts.shape[1],), args.width, k=args.k, **options)
            aekit.Trainer(variant, settings, progress=False).fit(acts)
            on_train, on_test = dictionary_report(variant, train_rows), dictionary_report(variant, held)
            dead_in_training = float(variant.latent.dead.float().mean())  # silent > window at the end
            sweep[name] = {
                "never_fire_train": round(on_train["dead"], 4), "never_fire_test": round(on_test["dead"], 4),
                "fvu_test": round(on_test["fvu"], 4), "dead_in_training": round(dead_in_training, 4),
                **silent_latents(variant, train_rows),
            }  # fmt: skip
            print(f"  {name}: {sweep[name]}", flush=True)
    write_record(args, "sae_images", time.perf_counter() - started, row=row, auxk_sweep=sweep)
    print(f"browser: {page}; {np.round(time.perf_counter() - started)} s", flush=True)


if __name__ == "__main__":
    main()
