"""Sparse dictionaries (sparse autoencoders of today's kind): TopK, BatchTopK and JumpReLU
activations over a unit-norm dictionary, the AuxK loss that revives dead latents, and the
measures of a dictionary (:mod:`aekit.sae.parts`, the ``sae-*`` families,
:func:`aekit.metrics.dictionary_report`); the activations of any module (:func:`collect`) and
the host's loss with a dictionary spliced in (:func:`loss_recovered`), hosts that bundle a
network with its data and loss (:func:`sequence_host`, :func:`array_host`), and a static HTML
feature browser (:func:`write_report`)."""

from . import parts  # noqa: F401  (registers the parts)
from .collect import activation_rows, collect, find_module
from .hosts import Host, array_host, sequence_host
from .report import top_activations, write_report
from .splice import Splice, loss_recovered, rows_back

__all__ = [
    "Host", "Splice", "activation_rows", "array_host", "collect", "find_module", "loss_recovered", "rows_back",
    "sequence_host", "top_activations", "write_report",
]  # fmt: skip
