"""Spreading the pipeline's runs over GPUs, CPU workers or a SLURM job array (``rfr
launch``); ``rfr.launch.launcher`` has the sequence, ``plan`` what runs, ``local`` and
``slurm`` where."""

from rfr.launch.config import LaunchConfig, SlurmConfig
from rfr.launch.launcher import launch
from rfr.launch.plan import LaunchError

__all__ = ["LaunchConfig", "LaunchError", "SlurmConfig", "launch"]
