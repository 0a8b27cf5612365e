"""One registry of models (``rfr.registry.MODELS``), an import graph without cycles, and
one class per user error wherever it is imported from."""

from __future__ import annotations

import subprocess
import sys

import pytest

import baselines
import rfr.checkpoint
import rfr.config
import rfr.data
import rfr.errors
import rfr.image_io
import rfr.launch
import rfr.masks
import rfr.models
import rfr.pipeline
import rfr.report
import rfr.train
import rfr.weights
from baselines.encoder_decoder import EncDecConfig, EncoderDecoder
from baselines.pconv import PConvConfig, PConvUNet
from rfr.config import RFRNetConfig
from rfr.registry import MODEL_BUILDERS, MODELS, build_model
from rfr.rfrnet import RFRNet
from rfr.variants import config_classes


def test_the_registry_pairs_each_model_with_its_config_class():
    assert {name: entry.config for name, entry in MODELS.items()} == {
        "rfr": RFRNetConfig, "pconv": PConvConfig, "encdec": EncDecConfig}
    assert MODEL_BUILDERS == {name: builder for name, (_, builder) in MODELS.items()}
    assert config_classes() == {name: entry.config for name, entry in MODELS.items()}
    for name, cls in (("rfr", RFRNet), ("pconv", PConvUNet), ("encdec", EncoderDecoder)):
        model = build_model(name, {"width": 8})
        assert type(model) is cls
        assert model.config == MODELS[name].config(width=8)


def test_rfr_models_reexports_the_registry_and_the_helpers():
    assert rfr.models.MODEL_BUILDERS is MODEL_BUILDERS
    assert rfr.models.build_model is build_model
    assert rfr.models.RFRNet is RFRNet
    assert baselines.PConvUNet is PConvUNet and baselines.EncoderDecoder is EncoderDecoder


@pytest.mark.parametrize("module", ["baselines", "rfr.rfrnet", "rfr.nn.contract"])
@pytest.mark.slow
def test_the_models_do_not_import_the_registry(module):
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in ('rfr.models', 'rfr.registry') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("module, names", [
    (rfr.checkpoint, ["CheckpointError"]),
    (rfr.config, ["ConfigError"]),
    (rfr.data, ["DatasetFormatError", "DatasetNotFoundError"]),
    (rfr.image_io, ["ImageReadError", "ImageWriteError"]),
    (rfr.masks, ["MaskBankError"]),
    (rfr.weights, ["ChecksumMismatchError", "InvalidWeightsError", "WeightsNotFoundError"]),
    (rfr.pipeline, ["PipelineError"]),
    (rfr.train, ["DivergedError", "TrainingError"]),
    (rfr.launch, ["LaunchError"]),
    (rfr.report, ["ReportError"]),
])
def test_each_error_is_the_class_of_rfr_errors(module, names):
    for name in names:
        assert getattr(module, name) is getattr(rfr.errors, name)
        if hasattr(module, "__all__"):
            assert name in module.__all__


def test_error_hierarchy():
    errors = rfr.errors
    assert issubclass(errors.PipelineError, errors.ConfigError)
    assert issubclass(errors.LaunchError, errors.ConfigError)
    assert issubclass(errors.DivergedError, errors.TrainingError)
    assert issubclass(errors.ChecksumMismatchError, errors.InvalidWeightsError)
    assert issubclass(errors.WeightsNotFoundError, FileNotFoundError)
    assert errors.WeightsNotFoundError("gone", "x.pth").path == "x.pth"
