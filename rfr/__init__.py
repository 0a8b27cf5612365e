"""rfr-bench: a reproducibility and ablation suite for RFR-Net image inpainting.

The public entry points: ``RFRNet`` and ``RFRNetConfig`` (the model and its knobs),
``load_checkpoint`` (this suite's checkpoints or the authors' released ones) and
``build_model`` (any registered model by name).
"""

from rfr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rfr.config import RFRNetConfig
from rfr.models import MODEL_BUILDERS, RFRNet, build_model

__all__ = [
    "MODEL_BUILDERS",
    "CheckpointError",
    "RFRNet",
    "RFRNetConfig",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]
