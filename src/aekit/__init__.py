"""aekit: every classic autoencoder and what it is used for, on PyTorch.

>>> import aekit
>>> model = aekit.make_model("vae", data_shape=(1, 28, 28), code_size=16)
>>> result = aekit.Trainer(model, aekit.TrainConfig(epochs=5)).fit(x_train)   # doctest: +SKIP
>>> codes = model.encode(x)                                                    # doctest: +SKIP
"""

from . import corruptions, degradations, latents, likelihoods, nets, penalties, registry, sae  # noqa: F401  (registers parts)
from .config import ModelConfig, TrainConfig
from .data import Dataset, load_dataset
from .errors import AekitError
from .families import FamilyConfig, family_config, family_names, make_model
from .io import load_model, save_model
from .metrics import importance_sampled_nll, principal_angles, reconstruction_report
from .model import Autoencoder, LossOutput
from .text.families import SequenceConfig
from .text.pipeline import Translator, load_sequence_model, save_sequence_model, train_sequence_model
from .text.tokenizer import SubwordTokenizer
from .train import Trainer, TrainingDiverged, TrainResult

__version__ = "0.1.0"

__all__ = [
    "AekitError",
    "Autoencoder",
    "Dataset",
    "FamilyConfig",
    "LossOutput",
    "ModelConfig",
    "SequenceConfig",
    "SubwordTokenizer",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "Translator",
    "family_config",
    "family_names",
    "importance_sampled_nll",
    "load_dataset",
    "load_model",
    "load_sequence_model",
    "make_model",
    "principal_angles",
    "reconstruction_report",
    "save_model",
    "save_sequence_model",
    "train_sequence_model",
]
