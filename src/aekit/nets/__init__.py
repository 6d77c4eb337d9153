"""Networks used as encoders and decoders. Importing this package registers them."""

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLP, make_activation

__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "make_activation"]
