"""Tangent planes of the learned manifold: a contractive autoencoder (CAE) against a plain one.

Both are one sigmoid layer of ``--code-size`` units with a linear decoder (Bernoulli outputs),
trained on the same images for the same epochs; the CAE adds weight * ||d code / d x||_F^2 (exact
for one layer). At each of ``--points`` test images the exact Jacobian of the code (torch.func)
gives the singular values; their leading right-singular vectors are the tangent directions.

Measured: the median of sigma_i / sigma_1 over the test points, and the number of singular values
above 10 % of the largest (few for a CAE: it is sensitive to few directions, those of the
manifold). Figures: the spectra, and the leading tangents at two test images.

The vertical-translation manifold: one test image shifted vertically by a continuous amount (cubic
spline, -3..3 pixels). A CAE and a plain AE with 16 code units (squared-error outputs) are trained
on 400 shifts; at one shift the leading tangent of each is compared with the finite-difference
derivative of the image with respect to the shift (absolute cosine, 1 = the same direction).

Writes docs/figures/tangents_*.png and bench/results/manifold_tangents.json.

    python bench/manifold_tangents.py --data-dir DATA --threads 1
"""

from __future__ import annotations

import os


def main() -> None:
    from generative_figures import finish, save, script_arguments, start  # the sibling figure script

    parser = script_arguments(__doc__, "manifold_tangents")
    parser.add_argument("--code-size", type=int, default=200)
    parser.add_argument("--weight", type=float, default=1.0, help="contractive penalty weight")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--points", type=int, default=200, help="test images whose Jacobians are measured")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    import aekit
    from aekit.applications import manifold
    from aekit.plots import labelled_images, spectra, tangent_rows

    record = start("manifold_tangents", args)
    # MNIST training images are not available here: a seeded 9 000 / 1 000 split of its test images
    full = aekit.load_dataset("mnist", split="test", data_dir=args.data_dir, download=False)
    train, test = full.split(0.1, seed=args.seed)
    record["data"] = "MNIST: seeded 9 000 / 1 000 split of the 10 000 test images (no training images here)"

    def fit(family: str, x, code_size: int, **options):
        torch.manual_seed(args.seed)
        model = aekit.make_model(family, x.shape[1:], code_size, hidden=[], likelihood="bernoulli", **options)
        config = aekit.TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, val_fraction=0.0, seed=args.seed)
        result = aekit.Trainer(model, config, progress=True).fit(x)
        return model.eval(), round(result.seconds, 1)

    models, report = {}, {}
    for label, family, options in [
        ("CAE", "contractive", {"weight": args.weight}),
        ("AE", "undercomplete", {"code_activation": "sigmoid"}),
    ]:
        model, seconds = fit(family, train.x, args.code_size, **options)
        points = test.x[np.random.default_rng(args.seed).choice(len(test), args.points, replace=False)]
        values = manifold.singular_value_spectra(model, points)  # (points, min(K, D))
        ratios = values / values[:, :1]
        models[label] = (model, values)
        report[label] = {
            "train_seconds": seconds,
            "test_squared_error": round(aekit.reconstruction_report(model, test.x)["squared_error"], 2),
            "sigma_1_median": round(float(np.median(values[:, 0])), 4),
            "above_10pct_of_sigma_1_mean": round(float((ratios > 0.1).sum(1).mean()), 1),
            "above_1pct_of_sigma_1_mean": round(float((ratios > 0.01).sum(1).mean()), 1),
            "median_ratio_at": {str(i): round(float(np.median(ratios[:, i - 1])), 4) for i in (2, 5, 10, 20, 50)},
        }
    record["mnist"] = report
    save(
        spectra({k: v for k, (_, v) in models.items()}, "Singular values of d code / d x"), args, "tangents_spectra.png"
    )
    rows = {}
    for index in (3, 11):
        for label, (model, _) in models.items():
            plane = manifold.tangent_plane(model, test.x[index], k=8)
            rows[f"{label}, test {index}"] = (
                test.x[index],
                manifold.as_tangent_images(plane.directions),
                plane.singular_values[:40],
            )
    save(
        tangent_rows(rows, "Leading tangent directions (grey: unchanged, white: brighten, black: darken)"),
        args,
        "tangents_mnist.png",
    )

    # ---- the vertical-translation manifold ------------------------------------------------------ #
    image = test.x[3, 0]
    shifts = np.random.default_rng(args.seed).uniform(-3, 3, 400)
    frames = manifold.vertical_translations(image, shifts)
    t0, eps = 0.5, 1e-2
    ends = manifold.vertical_translations(image, [t0 + eps, t0 - eps])
    derivative = (ends[0] - ends[1]) / (2 * eps)
    unit = derivative.ravel() / np.linalg.norm(derivative)
    point = manifold.vertical_translations(image, [t0])[0]
    translation, shown, titles = {}, [], []
    for label, family, options in [
        ("CAE", "contractive", {"weight": 1.0}),
        ("AE", "undercomplete", {"code_activation": "sigmoid"}),
    ]:
        torch.manual_seed(args.seed)
        # squared error here: with Bernoulli outputs on 400 near-identical images the sigmoid code saturates
        model = aekit.make_model(family, (1, 28, 28), 16, hidden=[], likelihood="gaussian", **options)
        config = aekit.TrainConfig(epochs=60, batch_size=20, lr=3e-3, val_fraction=0.0, seed=args.seed)
        aekit.Trainer(model, config, progress=False).fit(frames)
        plane = manifold.tangent_plane(model, point, k=2)
        translation[label] = {
            "abs_cosine_leading_tangent_vs_finite_difference": round(abs(float(plane.directions[0].ravel() @ unit)), 4),
            "singular_values": [round(float(v), 4) for v in plane.singular_values[:4]],
        }
        shown.append(plane.directions[0])
        titles.append(
            f"{label} tangent 1\n|cos| {translation[label]['abs_cosine_leading_tangent_vs_finite_difference']:.3f}"
        )
    record["vertical_translation"] = translation
    examples = manifold.vertical_translations(image, [-3, -1.5, 0, 1.5, 3])
    row = np.concatenate([examples, manifold.as_tangent_images(np.stack([derivative, *shown]))])
    row_titles = [f"shift {s:+g}" for s in (-3, -1.5, 0, 1.5, 3)] + ["d x / d shift\n(finite diff.)", *titles]
    save(
        labelled_images(row, row_titles, "A 1-D manifold: one digit shifted vertically"),
        args,
        "tangents_translation.png",
    )

    finish(record, args)


if __name__ == "__main__":
    main()
