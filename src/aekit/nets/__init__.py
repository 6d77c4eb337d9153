"""Networks used as encoders and decoders. Importing this package registers them."""

from .conv import ColourDecoder, ConvDecoder, ConvEncoder, IdentityDecoder, RedNet
from .mlp import MLP, make_activation

__all__ = ["MLP", "ColourDecoder", "ConvDecoder", "ConvEncoder", "IdentityDecoder", "RedNet", "make_activation"]
