"""The models: partial convolutions and attention (the layers), RFR-Net, the registry
of every model by name, checkpoints (this suite's and the authors'), and the ablation
variants.

``rfr.model.api`` is the one import for users (``RFRNet``, ``build_model``,
``composite``); this ``__init__`` stays empty so that importing one layer does not
import every model (``baselines`` imports ``rfr.model.contract`` and is imported by
``rfr.model.registry``).
"""
