"""One registry of models (``rfr.model.registry.MODELS``), an import graph without cycles, and
one class per user error wherever it is imported from."""

from __future__ import annotations

import subprocess
import sys

import pytest

import baselines
import rfr.config
import rfr.data
import rfr.data.image_io
import rfr.errors
import rfr.launch
import rfr.masks
import rfr.model.api
import rfr.model.checkpoint
import rfr.pipeline
import rfr.report
import rfr.train.loop
import rfr.weights
from baselines.encoder_decoder import EncDecConfig, EncoderDecoder
from baselines.pconv import PConvConfig, PConvUNet
from rfr.config import RFRNetConfig
from rfr.model.registry import MODEL_BUILDERS, MODELS, build_model
from rfr.model.rfrnet import RFRNet
from rfr.model.variants import config_classes


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
    assert rfr.model.api.MODEL_BUILDERS is MODEL_BUILDERS
    assert rfr.model.api.build_model is build_model
    assert rfr.model.api.RFRNet is RFRNet
    assert baselines.PConvUNet is PConvUNet and baselines.EncoderDecoder is EncoderDecoder


@pytest.mark.parametrize("module", ["baselines", "rfr.model.rfrnet", "rfr.model.contract"])
@pytest.mark.slow
def test_the_models_do_not_import_the_registry(module):
    code = (f"import sys, {module}; "
            "print(' '.join(m for m in ('rfr.model.api', 'rfr.model.registry') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("module, names", [
    (rfr.model.checkpoint, ["CheckpointError"]),
    (rfr.config, ["ConfigError"]),
    (rfr.data, ["DatasetFormatError", "DatasetNotFoundError"]),
    (rfr.data.image_io, ["ImageReadError", "ImageWriteError"]),
    (rfr.masks, ["MaskBankError"]),
    (rfr.weights, ["ChecksumMismatchError", "InvalidWeightsError", "WeightsNotFoundError"]),
    (rfr.pipeline, ["PipelineError"]),
    (rfr.train.loop, ["DivergedError", "TrainingError"]),
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
