"""What a denoising autoencoder's field estimates, and sampling by running its Markov chain.

* score: a mixture of 8 Gaussians (std 0.1) on a ring of radius 2 (``aekit.data.synthetic``), whose
  corrupted density p_sigma is known in closed form. A DAE (MLP 2-128-128-32-128-128-2, ELU,
  Gaussian output with a learned shared sigma, started at the corruption's) is trained with
  Gaussian corruption of std sigma;
  at 5 000 points x~ drawn from p_sigma (so the averages are density-weighted) its field r(x~) - x~
  is compared with sigma^2 grad log p_sigma(x~) (``aekit.metrics.score_alignment``: mean cosine and
  relative error), for sigma 0.05 / 0.1 / 0.2 / 0.4 and, at 0.1, for 5 / 15 / 60 epochs.
* chains: the same DAE at sigma 0.1, plain and trained with walk-back (``walkback`` 1 and 3); 2 000
  chains started uniformly over the data's bounding box, 300 moves, drawing from the learned
  reconstruction distribution; their last states scored by the modes covered (a mode holding at
  least a quarter of its fair share of the samples within 3 std of its mean), the share of samples
  within 3 std of a mode, and the held-out log-likelihood (nats per point) of 5 000 fresh mixture
  points under a Parzen window fitted on the samples (bandwidth chosen on 2 000 other fresh points),
  beside the same for 2 000 true samples and the true log-likelihood.
* images: Fashion-MNIST (its own split) and MNIST (the test images split 9 000 / 1 000, seed 0, as
  BASELINES.md's MNIST rows). The same MLP (784-512-256-50, ELU, Bernoulli outputs) as DAEs with
  three corruptions (Gaussian 0.3, salt-and-pepper 0.4 as Bengio et al. 2013 on MNIST, masking
  0.5) sampled by their chains (2 000 chains from uniform noise, 300 moves, last states; the
  reconstruction read as a Bernoulli sample and as its mean), a VAE sampled from its prior, and a
  plain autoencoder sampled from a 10-component Gaussian mixture on its training codes, all trained
  the same epochs in the same run. Frechet distance between Gaussians fitted to PCA-50 features
  (PCA fitted on training images) of 2 000 samples and 2 000 test images (real-vs-real floor:
  two halves of the test images), and the Parzen-window log-likelihood of 1 000 test images under
  the 2 000 samples (bandwidth chosen on 500 held-out training images). Parzen estimates in 784
  dimensions are known to be biased and to rank models unreliably (Theis et al. 2016); they are
  reported because the literature on these samplers reports them, beside the Frechet distance.
  Training images scored as if they were samples give the reference.
* drift: on MNIST (the split above), the same three DAEs; 1 000 chains from uniform noise and 1 000
  from training images, Bernoulli draws; the Frechet distance of their states after 30 and after
  300 moves: does a chain forget where it started, and does it stay near the data?

    python bench/dae_chains.py --data-dir /work/shared/data --threads 1
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from common import write_record

RING = {"modes": 8, "radius": 2.0, "std": 0.1}


def ring_dae(sigma: float, epochs: int, walkback: int, train_x: np.ndarray, seed: int):
    import torch

    import aekit

    torch.manual_seed(seed)
    # the reconstruction distribution's spread starts at the corruption's (its posterior is narrower)
    likelihood = {"name": "gaussian", "learn_sigma": "shared", "sigma": sigma}
    config = aekit.family_config(
        "denoising", (2,), 32, noise="gaussian", level=sigma, hidden=[128, 128], likelihood=likelihood
    )
    model = aekit.Autoencoder.from_config(config)
    settings = aekit.TrainConfig(
        epochs=epochs, batch_size=256, lr=3e-3, lr_schedule="cosine", walkback=walkback, seed=seed
    )
    started = time.perf_counter()
    aekit.Trainer(model, settings, progress=False).fit(train_x)
    return model.eval(), time.perf_counter() - started


def score_section(args) -> dict:
    import torch

    from aekit.applications.generation import denoising_field
    from aekit.data.synthetic import ring_mixture
    from aekit.metrics import log_density_gradient, score_alignment

    torch.manual_seed(args.seed)
    mixture = ring_mixture(**RING)
    train_x = mixture.sample((args.ring_train,)).float().numpy()
    cases = [(sigma, args.ring_epochs) for sigma in (0.05, 0.1, 0.2, 0.4)]
    cases += [(0.1, epochs) for epochs in (5, 15) if epochs < args.ring_epochs]
    rows = []
    for sigma, epochs in cases:
        model, seconds = ring_dae(sigma, epochs, 0, train_x, args.seed)
        p_sigma = ring_mixture(RING["modes"], RING["radius"], math.hypot(RING["std"], sigma))
        points = p_sigma.sample((5000,)).float().numpy()  # x~ ~ p_sigma: density-weighted averages
        score = sigma**2 * log_density_gradient(p_sigma.log_prob, points)
        found = score_alignment(denoising_field(model, points), score)
        rows.append({"sigma": sigma, "epochs": epochs, **{k: round(v, 4) for k, v in found.items()}})
        rows[-1]["train_seconds"] = round(seconds, 1)
        print(f"  score sigma {sigma} epochs {epochs}: {rows[-1]}", flush=True)
    return {"rows": rows}


def chain_section(args) -> dict:
    import torch

    from aekit.applications.generation import denoising_chain
    from aekit.data.synthetic import ring_mixture
    from aekit.metrics import parzen_log_likelihood

    torch.manual_seed(args.seed)
    mixture = ring_mixture(**RING)
    train_x = mixture.sample((args.ring_train,)).float().numpy()
    held_out = mixture.sample((5000,)).numpy()
    validation = mixture.sample((2000,)).numpy()
    means = mixture.component_distribution.base_dist.loc.numpy()  # (8, 2)
    rng = np.random.default_rng(args.seed)
    start = rng.uniform(train_x.min(0), train_x.max(0), (args.chains, 2)).astype(np.float32)

    def scores(samples: np.ndarray) -> dict:
        distance = np.linalg.norm(samples[:, None] - means[None], axis=2)  # (N, 8)
        near = distance.min(1) < 3 * RING["std"]
        counts = np.bincount(distance.argmin(1)[near], minlength=len(means))
        parzen = parzen_log_likelihood(samples, held_out, validation, bandwidths=np.logspace(-2, 0, 15))
        return {
            "modes_covered": int((counts >= 0.25 * len(samples) / len(means)).sum()),
            "share_near_a_mode": round(float(near.mean()), 4),
            "samples_per_mode": counts.tolist(),
            "parzen_log_likelihood": round(parzen["log_likelihood"], 4),
            "parzen_bandwidth": round(parzen["bandwidth"], 4),
        }

    result = {
        "true samples": scores(mixture.sample((args.chains,)).numpy()),
        "true log-likelihood": round(float(mixture.log_prob(torch.as_tensor(held_out)).mean()), 4),
    }
    print(f"  chains reference: {result}", flush=True)
    for walkback in args.walkback:
        model, seconds = ring_dae(0.1, args.ring_epochs, walkback, train_x, args.seed)
        chain = denoising_chain(model, start, args.chain_steps, seed=args.seed)
        name = "plain" if walkback == 0 else f"walk-back {walkback}"
        result[name] = scores(chain.samples) | {"train_seconds": round(seconds, 1)}
        print(f"  chains {name}: {result[name]}", flush=True)
    return result


def image_section(args, dataset: str) -> dict:
    import torch
    from sklearn.decomposition import PCA

    import aekit
    from aekit.applications.generation import denoising_chain, sample_mixture, sample_prior
    from aekit.metrics import frechet_distance, parzen_log_likelihood

    if dataset == "mnist":  # no MNIST training images here: a seeded split of the test images
        full = aekit.load_dataset("mnist", split="test", data_dir=args.data_dir, download=False)
        train, test = full.split(0.1, seed=0)
    else:
        train = aekit.load_dataset(dataset, split="train", data_dir=args.data_dir, download=False)
        test = aekit.load_dataset(dataset, split="test", data_dir=args.data_dir, download=False)
    train_x, test_x = np.asarray(train.x, np.float32), np.asarray(test.x, np.float32)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(train_x))
    validation, train_x = train_x[order[:500]], train_x[order[500:]]  # Parzen bandwidth, never trained on
    flat = lambda images: images.reshape(len(images), -1)  # noqa: E731
    pca = PCA(50, random_state=args.seed).fit(flat(train_x[:20000]))
    test_order = rng.permutation(len(test_x))
    real = pca.transform(flat(test_x[test_order[:2000]]))
    half = len(test_x) // 2
    floor = frechet_distance(
        pca.transform(flat(test_x[test_order[:half]])), pca.transform(flat(test_x[test_order[half:]]))
    )
    parzen_test = flat(test_x[test_order[:1000]])

    def scores(samples: np.ndarray, seconds: float) -> dict:
        samples = flat(np.asarray(samples, np.float32))
        parzen = parzen_log_likelihood(samples, parzen_test, flat(validation), np.logspace(-1.5, 0, 10))
        return {
            "frechet_pca50": round(frechet_distance(pca.transform(samples), real), 2),
            "parzen_log_likelihood": round(parzen["log_likelihood"], 1),
            "parzen_bandwidth": round(parzen["bandwidth"], 4),
            "train_seconds": round(seconds, 1),
        }

    def trained(family: str, **options):
        torch.manual_seed(args.seed)
        model = aekit.make_model(family, (1, 28, 28), 50, hidden=[512, 256], likelihood="bernoulli", **options)
        settings = aekit.TrainConfig(epochs=args.image_epochs, batch_size=128, lr=1e-3, seed=args.seed)
        started = time.perf_counter()
        aekit.Trainer(model, settings, progress=False).fit(train_x)
        return model.eval(), time.perf_counter() - started

    result: dict = {"train_images": len(train_x), "test_images": len(test_x), "frechet_floor": round(floor, 2)}
    start = rng.uniform(0, 1, (args.image_chains, 1, 28, 28)).astype(np.float32)
    for noise, level in (("gaussian", 0.3), ("salt_and_pepper", 0.4), ("masking", 0.5)):
        dae, seconds = trained("denoising", noise=noise, level=level)
        for draw in ("sample", "mean"):
            chain = denoising_chain(dae, start, args.image_steps, draw=draw, seed=args.seed)
            name = f"DAE chain, {noise} {level}, {draw} draws"
            result[name] = scores(chain.samples, seconds)
            print(f"  {dataset} {name}: {result[name]}", flush=True)
    vae, seconds = trained("vae")
    result["VAE prior"] = scores(sample_prior(vae, args.image_chains, args.seed)[1], seconds)
    print(f"  {dataset} VAE prior: {result['VAE prior']}", flush=True)
    ae, seconds = trained("undercomplete")
    result["AE + mixture"] = scores(sample_mixture(ae, train_x, args.image_chains, 10, args.seed)[1], seconds)
    print(f"  {dataset} AE + mixture: {result['AE + mixture']}", flush=True)
    result["training images"] = scores(train_x[: args.image_chains], 0.0)  # the data as its own sampler
    return result


def drift_section(args) -> dict:
    import torch
    from sklearn.decomposition import PCA

    import aekit
    from aekit.applications.generation import denoising_chain
    from aekit.metrics import frechet_distance

    full = aekit.load_dataset("mnist", split="test", data_dir=args.data_dir, download=False)
    train, test = full.split(0.1, seed=0)
    train_x, test_x = np.asarray(train.x, np.float32), np.asarray(test.x, np.float32)
    flat = lambda images: images.reshape(len(images), -1)  # noqa: E731
    pca = PCA(50, random_state=args.seed).fit(flat(train_x))
    real = pca.transform(flat(test_x))
    rng = np.random.default_rng(args.seed)
    starts = {
        "noise": rng.uniform(0, 1, (1000, 1, 28, 28)).astype(np.float32),
        "data": train_x[rng.choice(len(train_x), 1000, replace=False)],
    }
    result: dict = {}
    for noise, level in (("gaussian", 0.3), ("salt_and_pepper", 0.4), ("masking", 0.5)):
        torch.manual_seed(args.seed)
        model = aekit.make_model(
            "denoising", (1, 28, 28), 50, hidden=[512, 256], likelihood="bernoulli", noise=noise, level=level
        )
        settings = aekit.TrainConfig(epochs=args.image_epochs, batch_size=128, lr=1e-3, seed=args.seed)
        aekit.Trainer(model, settings, progress=False).fit(train_x)
        row = {}
        for start_name, start in starts.items():
            chain = denoising_chain(model, start, 300, thin=30, draw="sample", seed=args.seed)  # steps 30..300
            for index in (0, -1):
                features = pca.transform(flat(chain.states[index]))
                row[f"from {start_name}, {chain.steps[index]} moves"] = round(frechet_distance(features, real), 2)
        result[f"{noise} {level}"] = row
        print(f"  drift {noise} {level}: {row}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding fashion-mnist/ and mnist/")
    parser.add_argument("--sections", default="score,chains,images,drift", help="which parts (default: %(default)s)")
    parser.add_argument("--ring-train", type=int, default=20000, help="mixture training points (default: 20000)")
    parser.add_argument("--ring-epochs", type=int, default=60, help="epochs of the ring DAEs (default: 60)")
    parser.add_argument("--chains", type=int, default=2000, help="ring chains (default: 2000)")
    parser.add_argument("--chain-steps", type=int, default=300, help="moves of each ring chain (default: 300)")
    parser.add_argument("--image-epochs", type=int, default=10, help="epochs of each image model (default: 10)")
    parser.add_argument("--image-chains", type=int, default=2000, help="image samples per model (default: 2000)")
    parser.add_argument("--image-steps", type=int, default=300, help="moves of each image chain (default: 300)")
    parser.add_argument("--walkback", type=int, nargs="+", default=[0, 1, 3], help="walk-back steps (default: 0 1 3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds data, training and chains (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dae_chains.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sections = set(args.sections.split(","))
    results: dict = {}
    if "score" in sections:
        results["score"] = score_section(args)
    if "chains" in sections:
        results["chains"] = chain_section(args)
    if "images" in sections:
        results["images"] = {name: image_section(args, name) for name in ("mnist", "fashion-mnist")}
    if "drift" in sections:
        results["drift"] = drift_section(args)
    write_record(args, "dae_chains", time.perf_counter() - started, **results)


if __name__ == "__main__":
    main()
