"""Training: the loop (``rfr.train.loop.loop.train``), its configuration, losses, the
per-step sampling of images and masks, run state (RNG, checkpoints, resume), curves and
summaries, and synchronised BatchNorm for multi-rank runs.

Empty on purpose: the pipeline imports ``rfr.train.loop.config`` to validate a profile
without importing the loop, the losses and the models (a DVC stage depends on the code
it imports).
"""
