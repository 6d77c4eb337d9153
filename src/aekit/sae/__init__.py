"""Sparse dictionaries (sparse autoencoders of today's kind): TopK, BatchTopK and JumpReLU
activations over a unit-norm dictionary, the AuxK loss that revives dead latents, and the
measures of a dictionary (:mod:`aekit.sae.parts`, the ``sae-*`` families,
:func:`aekit.metrics.dictionary_report`)."""

from . import parts  # noqa: F401  (registers the parts)
from .collect import activation_rows, collect, find_module

__all__ = ["activation_rows", "collect", "find_module"]
