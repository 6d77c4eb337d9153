"""The course's three comparisons of a plain autoencoder (AE) and a VAE trained on the same data.

1. Generation from random codes (code size 50): decode z ~ N(0, I) with both; also the AE with
   an ex-post Gaussian mixture fitted on its training codes.
2. Interpolation between two test images (code size 3): decode the straight path between codes.
3. Latent-space organisation (code size 3): test codes coloured by class.

Both models have the same MLP (784-512-256-code, ELU, Bernoulli outputs on grey levels), optimiser
and epochs; the VAE differs only by its Gaussian latent and KL term. Measured alongside the
figures:

* Frechet distance (FD) between Gaussians fitted to PCA-50 features (fitted on training images)
  of 2 000 generated and 2 000 real test images; real-vs-real (two test halves) is the floor.
* Distance to the nearest training image (mean squared pixel distance) of generated images and
  of interpolation midpoints; real test images give the reference.
* Largest step share of an interpolation: the biggest jump between consecutive frames as a
  fraction of the whole path length (1 / (steps - 1) for an even path).
* 5-NN class accuracy on the 3-D codes and the hole fraction: draws from a Gaussian with the
  codes' mean and covariance whose nearest training code is farther than the 99th percentile of
  the test codes' nearest-training-code distances (whitened coordinates).

Writes docs/figures/generative_*.png and bench/results/generative_figures.json.

    python bench/generative_figures.py --data-dir DATA --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path

from common import machine

ROOT = Path(__file__).resolve().parents[1]


def script_arguments(description: str, results_name: str) -> argparse.ArgumentParser:
    """The options every figure script takes: data, threads, seed, where figures and numbers go."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AEKIT_DATA_DIR"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"{results_name}.json")
    return parser


def start(name: str, args: argparse.Namespace) -> dict:
    """Set the thread count; the record's header: benchmark, date, machine, threads, torch, settings."""
    import torch

    torch.set_num_threads(args.threads)
    return {
        "benchmark": name,
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }


def main() -> None:
    parser = script_arguments(__doc__, "generative_figures")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    import aekit
    from aekit.applications import generation
    from aekit.plots import code_scatter, image_grids, image_rows

    record = start("generative_figures", args)
    train, test = load(args)
    print(f"{args.dataset}: {len(train)} training, {len(test)} test images")
    rng = np.random.default_rng(args.seed)
    record["data"] = f"{args.dataset}: {len(train)} train / {len(test)} test"
    models, seconds = {}, {}
    for family in ("undercomplete", "vae"):
        for code_size in (50, 3):
            torch.manual_seed(args.seed)
            model = aekit.make_model(
                family, train.data_shape, code_size, hidden=[512, 256], activation="elu", likelihood="bernoulli"
            )
            config = aekit.TrainConfig(
                epochs=args.epochs, batch_size=128, lr=1e-3, lr_schedule="cosine", val_fraction=0.0, seed=args.seed
            )
            result = aekit.Trainer(model, config, progress=True).fit(train.x)
            models[family, code_size], seconds[f"{family}-{code_size}"] = model.eval(), round(result.seconds, 1)
    record["train_seconds"] = seconds
    ae50, vae50, ae3, vae3 = (models[k] for k in [("undercomplete", 50), ("vae", 50), ("undercomplete", 3), ("vae", 3)])

    # ---- 1. generation from random codes, code size 50 ------------------------------------------ #
    metrics = Metrics(train.x, test.x, args.seed)
    n = 2000
    normal = np.random.default_rng(args.seed).standard_normal((n, 50)).astype(np.float32)
    ae_codes = generation.encode(ae50, train.x)
    mixture = generation.CodeMixture(n_components=10, seed=args.seed).fit(ae_codes)
    samples = {
        "AE, z ~ N(0, I)": generation.decode_codes(ae50, normal),
        "AE, z ~ mixture fitted on its codes": generation.decode_codes(ae50, mixture.sample(n, seed=args.seed)),
        "VAE, z ~ N(0, I)": generation.decode_codes(vae50, normal),
    }
    record["generation"] = {
        "real test images": metrics.sample_scores(metrics.real_reference()),
        **{label: metrics.sample_scores(images) for label, images in samples.items()},
        "ae_code_std_mean": round(float(ae_codes.std(0).mean()), 3),
    }
    shown = {label: images[:36] for label, images in samples.items()}
    save(image_grids(shown, columns=6, title="Decoding random codes (code size 50)"), args, "generative_samples.png")

    # ---- 2. interpolation between two test images, code size 3 ---------------------------------- #
    labels = test.labels
    pairs = []
    while len(pairs) < 4:
        i, j = (int(v) for v in rng.choice(len(test), 2, replace=False))
        if labels is None or labels[i] != labels[j]:
            pairs.append((i, j))
    rows, row_labels, scores = [], [], {"AE": [], "VAE": []}
    for i, j in pairs:
        for name, model in (("AE", ae3), ("VAE", vae3)):
            _, frames = generation.interpolate(model, test.x[i], test.x[j], steps=10)
            rows.append(frames)
            row_labels.append(f"{name} {i}->{j}")
            scores[name].append(metrics.path_scores(frames))
    record["interpolation"] = {
        "pairs": pairs,
        **{name: {k: round(float(np.mean([s[k] for s in v])), 3) for k in v[0]} for name, v in scores.items()},
        "real test images, nearest-training distance": metrics.sample_scores(metrics.real_reference())["nn_distance"],
    }
    figure = image_rows(rows, row_labels, "Decoding the straight path between two codes (code size 3)")
    save(figure, args, "generative_interpolation.png")

    # ---- 3. latent organisation, code size 3 ---------------------------------------------------- #
    organisation, codes = {}, {}
    for name, model in (("AE", ae3), ("VAE", vae3)):
        train_codes, test_codes = generation.encode(model, train.x), generation.encode(model, test.x)
        codes[name] = test_codes
        organisation[name] = {
            "knn5_accuracy": knn_accuracy(train_codes, train.labels, test_codes, test.labels),
            "hole_fraction": hole_fraction(train_codes, test_codes, args.seed),
        }
    record["organisation"] = organisation
    figure = code_scatter(codes, test.labels, test.class_names, "Test codes (code size 3), coloured by class")
    save(figure, args, "generative_latent_space.png")

    finish(record, args)


def finish(record: dict, args: argparse.Namespace) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


class Metrics:
    """Distances between generated and real images: PCA-50 Frechet distance, nearest-training distance."""

    def __init__(self, train_x, test_x, seed: int) -> None:
        import numpy as np
        from sklearn.decomposition import PCA

        from aekit.metrics import frechet_distance

        self.frechet_distance = frechet_distance
        self.train = train_x.reshape(len(train_x), -1)
        self.test = test_x.reshape(len(test_x), -1)
        self.pca = PCA(50, random_state=seed).fit(self.train[:20000])
        self.rng = np.random.default_rng(seed)
        index = self.rng.permutation(len(self.test))
        self.real_a, self.real_b = self.test[index[: len(index) // 2]], self.test[index[len(index) // 2 :]]
        self.real_features = self.pca.transform(self.real_a[:2000])
        import torch

        self.train_tensor = torch.as_tensor(self.train)

    def real_reference(self):
        return self.real_b[:2000]

    def sample_scores(self, images) -> dict:
        flat = images.reshape(len(images), -1)
        return {
            "frechet_pca50": round(self.frechet_distance(self.real_features, self.pca.transform(flat)), 2),
            "nn_distance": round(float(self.nearest_distance(flat[:500]).mean()), 2),
        }

    def path_scores(self, frames) -> dict:
        import numpy as np

        flat = frames.reshape(len(frames), -1)
        steps = np.linalg.norm(np.diff(flat, axis=0), axis=1)
        return {
            "midpoint_nn_distance": float(self.nearest_distance(flat[1:-1]).mean()),
            "largest_step_share": float(steps.max() / max(steps.sum(), 1e-12)),
        }

    def nearest_distance(self, flat):
        """Squared pixel distance of each row to its nearest training image."""
        import torch

        queries = torch.as_tensor(flat)
        best = torch.full((len(queries),), float("inf"))
        for start in range(0, len(self.train_tensor), 10000):
            block = self.train_tensor[start : start + 10000]
            best = torch.minimum(best, torch.cdist(queries, block).min(1).values)
        return best.pow(2).numpy()


def knn_accuracy(train_codes, train_labels, test_codes, test_labels) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(5).fit(train_codes, train_labels)
    return round(float(classifier.score(test_codes, test_labels)), 4)


def hole_fraction(train_codes, test_codes, seed: int, draws: int = 5000) -> float:
    """Share of moment-matched Gaussian draws that land farther from every training code than
    99 % of real test codes do (in whitened coordinates, so the code's scale does not matter)."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    mean, cov = train_codes.mean(0), np.cov(train_codes, rowvar=False)
    whiten = np.linalg.inv(np.linalg.cholesky(cov))
    index = NearestNeighbors(n_neighbors=1).fit((train_codes - mean) @ whiten.T)
    threshold = np.percentile(index.kneighbors((test_codes - mean) @ whiten.T)[0][:, 0], 99)
    points = np.random.default_rng(seed).multivariate_normal(mean, cov, draws)
    return round(float((index.kneighbors((points - mean) @ whiten.T)[0][:, 0] > threshold).mean()), 4)


def load(args):
    import aekit

    if args.dataset == "mnist":  # no MNIST training images here: a seeded split of the test images
        full = aekit.load_dataset("mnist", split="test", data_dir=args.data_dir, download=False)
        return full.split(0.1, seed=args.seed)
    train = aekit.load_dataset(args.dataset, split="train", data_dir=args.data_dir, download=False)
    return train, aekit.load_dataset(args.dataset, split="test", data_dir=args.data_dir, download=False)


def save(figure, args, name: str) -> None:
    args.figures.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.figures / name, dpi=90)
    print(f"wrote {args.figures / name} ({(args.figures / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
