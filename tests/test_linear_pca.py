"""A linear autoencoder trained with squared error spans the PCA subspace (scikit-learn's PCA)."""

import numpy as np
import torch
from sklearn.decomposition import PCA

import aekit


def test_linear_autoencoder_spans_the_pca_subspace():
    rng = np.random.default_rng(0)
    n, dim, k = 2000, 20, 3
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = np.array([3.0, 2.5, 2.0] + [0.1] * (dim - k))  # clear gap after the third component
    x = (rng.normal(size=(n, dim)) * scales) @ basis.T + rng.normal(size=dim)
    x = x.astype(np.float32)
    pca = PCA(k).fit(x)

    torch.manual_seed(0)
    model = aekit.make_model("linear", (dim,), k)
    config = aekit.TrainConfig(epochs=100, batch_size=100, lr=3e-2, lr_schedule="cosine", val_fraction=0.0)
    aekit.Trainer(model, config, progress=False).fit(x)

    decoder_columns = model.decoder.linear_layers[0].weight.detach().numpy()  # (dim, k)
    angles = aekit.principal_angles(decoder_columns, pca.components_.T)
    assert angles.max() < 1.0, angles
    # and it reconstructs as well as PCA does
    ae_error = aekit.reconstruction_report(model, x)["squared_error"]
    pca_error = ((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(1).mean()
    assert ae_error < 1.02 * pca_error


def test_principal_angles_match_known_geometry():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, np.cos(0.3)], [0.0, np.sin(0.3)]])
    np.testing.assert_allclose(sorted(aekit.principal_angles(a, b)), [0.0, np.degrees(0.3)], atol=1e-9)
