"""The suite's models in one import: RFR-Net, the registry of every model, and the
helpers of the forward contract.

Every model obeys one contract: ``model(masked_image, mask) -> output``, ``B x 3 x H x W``
pixels in [0, 1], mask ``B x 1|3 x H x W`` with 1 = known and 0 = hole; the output is raw
(the caller composites it with the known pixels).

Where each part lives (this module re-exports them, so ``from rfr.model.api import RFRNet,
build_model, composite`` keeps working):

* ``rfr.model.rfrnet``: ``RFRNet`` (Li et al., CVPR 2020), its ``RFRModule``, ``RFRTrace``;
* ``rfr.model.registry``: ``MODELS`` (name -> config class and builder), ``MODEL_BUILDERS``,
  ``build_model``;
* ``rfr.model.contract``: ``check_inputs``, ``pad_to_multiple``, ``composite``.

The layers go one way: the layers of ``rfr.model`` <- ``rfr.model.rfrnet`` and
``baselines`` <- ``rfr.model.registry`` <- this module; no module below imports one above.
"""

from __future__ import annotations

from torch import nn

from rfr.model.contract import check_inputs, composite, pad_to_multiple
from rfr.model.registry import MODEL_BUILDERS, MODELS, ModelBuilder, build_model
from rfr.model.rfrnet import SIZE_MULTIPLE, Bottleneck, RFRModule, RFRNet, RFRTrace


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "MODELS",
    "MODEL_BUILDERS",
    "SIZE_MULTIPLE",
    "Bottleneck",
    "ModelBuilder",
    "RFRModule",
    "RFRNet",
    "RFRTrace",
    "build_model",
    "check_inputs",
    "composite",
    "count_parameters",
    "pad_to_multiple",
]
