"""Sparse dictionaries (sparse autoencoders of today's kind): TopK, BatchTopK and JumpReLU
activations over a unit-norm dictionary, the AuxK loss that revives dead latents, and the
measures of a dictionary (:mod:`aekit.sae.parts`, the ``sae-*`` families,
:func:`aekit.metrics.dictionary_report`); the activations of any module (:func:`collect`) and
the host's loss with a dictionary spliced in (:func:`loss_recovered`), and a static HTML feature
browser (:func:`write_report`)."""

from . import parts  # noqa: F401  (registers the parts)
from .collect import activation_rows, collect, find_module
from .report import top_activations, write_report
from .splice import Splice, loss_recovered, rows_back

__all__ = [
    "Splice", "activation_rows", "collect", "find_module", "loss_recovered", "rows_back", "top_activations",
    "write_report",
]  # fmt: skip
