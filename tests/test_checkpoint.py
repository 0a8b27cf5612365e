"""Checkpoints: the suite's format, the authors' format, every way a file can be bad, and
atomic writes.

Models are small (width 8 or 16) and filled with the reference weight recipe, so BatchNorm
running statistics are far from their defaults and a loader that dropped buffers would
change the outputs.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rfr.config import RFRNetConfig, to_dict
from rfr.model.api import RFRNet
from rfr.model.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    atomic_torch_save,
    load_checkpoint,
    read_checkpoint,
    save_authors_checkpoint,
    save_checkpoint,
)
from rfr.model.reference import layout_of, recipe_state_dict

SUITE_CONFIG = RFRNetConfig(width=16, iter_num=3, attention="naive", merge="concat",
                            kernel_size=5)

pytestmark = pytest.mark.usefixtures("single_thread")


def recipe_model(config: RFRNetConfig, seed: int = 1) -> RFRNet:
    model = RFRNet(config)
    model.load_state_dict(recipe_state_dict(layout_of(model.state_dict()), seed))
    return model.eval()


def seeded_input(size: tuple[int, int] = (48, 64), seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, *size, generator=generator)
    mask = torch.ones(1, 1, *size)
    mask[..., 10:30, 16:40] = 0
    return image * mask, mask


@torch.inference_mode()
def forward(model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return model(*inputs)


@pytest.fixture(scope="module")
def authors_model() -> RFRNet:
    return recipe_model(RFRNetConfig(width=16, kernel_size=5), seed=2)


@pytest.fixture
def authors_state(authors_model: RFRNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in authors_model.state_dict().items()}


def error_of(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


# ---------------------------------------------------------------------------- suite format


@pytest.mark.slow
def test_suite_format_round_trip_non_default_config(tmp_path: Path) -> None:
    model = recipe_model(SUITE_CONFIG)
    inputs = seeded_input()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    generator = torch.Generator().manual_seed(9)
    for param in model.parameters():  # one optimizer step without a backward pass
        param.grad = torch.randn(param.shape, generator=generator)
    optimizer.step()
    expected = forward(model, inputs)
    rng_state = torch.get_rng_state()
    training = {"step": 1234, "optimizer": optimizer.state_dict(), "torch_rng": rng_state}

    path = save_checkpoint(tmp_path / "suite.pth", model, "rfr", SUITE_CONFIG, training)
    loaded = load_checkpoint(path)

    assert isinstance(loaded, RFRNet)
    assert loaded.config == SUITE_CONFIG
    assert not loaded.training
    assert all(not m.training for m in loaded.modules())
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    assert hasattr(loaded, "merge_conv")  # the concat merge, tied to iter_num 3
    assert loaded.merge_conv.weight.shape == (16, 16 * 4, 1, 1)
    assert loaded.Pconv2.weight.shape[-1] == 5
    assert torch.equal(forward(loaded, inputs), expected)
    # Identical outputs are not trivial: an untrained model of the same config differs.
    assert not torch.allclose(forward(RFRNet(SUITE_CONFIG).eval(), inputs), expected, atol=1e-3)

    payload = read_checkpoint(path)
    assert payload["format"] == FORMAT_NAME
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["model"] == "rfr"
    assert payload["config"] == to_dict(SUITE_CONFIG)
    stored = payload["training"]
    assert stored["step"] == 1234
    assert torch.equal(stored["torch_rng"], rng_state)
    restored = torch.optim.Adam(loaded.parameters(), lr=1.0)
    restored.load_state_dict(stored["optimizer"])
    assert restored.param_groups[0]["lr"] == 2e-4
    first = next(iter(optimizer.state.values()))
    again = next(iter(restored.state.values()))
    assert torch.equal(first["exp_avg"], again["exp_avg"])


def test_suite_format_accepts_config_mapping_and_omits_training(tmp_path: Path) -> None:
    model = recipe_model(RFRNetConfig(width=8, iter_num=2))
    path = save_checkpoint(tmp_path / "m.pth", model, "rfr", {"width": 8, "iter_num": 2})
    assert "training" not in read_checkpoint(path)
    loaded = load_checkpoint(path)
    assert loaded.config == RFRNetConfig(width=8, iter_num=2)
    inputs = seeded_input((32, 32))
    assert torch.equal(forward(loaded, inputs), forward(model, inputs))


# --------------------------------------------------------------------------- authors' format


def test_authors_format_infers_width_and_kernel(tmp_path: Path, authors_model: RFRNet) -> None:
    path = save_authors_checkpoint(tmp_path / "authors.pth", authors_model.state_dict(),
                                   n_iter=7)
    payload = read_checkpoint(path)
    assert set(payload) == {"n_iter", "generator"}
    assert payload["n_iter"] == 7
    loaded = load_checkpoint(path)
    assert loaded.config == RFRNetConfig(width=16, kernel_size=5)
    assert not loaded.training
    inputs = seeded_input()
    assert torch.equal(forward(loaded, inputs), forward(authors_model, inputs))


def test_authors_format_with_optimizer_and_n_iter_loads(
    tmp_path: Path, authors_model: RFRNet, authors_state: dict[str, torch.Tensor]
) -> None:
    optimizer = torch.optim.Adam(RFRNet(RFRNetConfig(width=16, kernel_size=5)).parameters(),
                                 lr=2e-4)
    path = tmp_path / "authors_full.pth"
    torch.save({"n_iter": 450000, "generator": authors_state,
                "optimizer_G": optimizer.state_dict()}, path)
    loaded = load_checkpoint(path)
    assert loaded.config == RFRNetConfig(width=16, kernel_size=5)
    inputs = seeded_input()
    assert torch.equal(forward(loaded, inputs), forward(authors_model, inputs))


def test_authors_format_without_optimizer_loads(
    tmp_path: Path, authors_model: RFRNet, authors_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "authors_gen_only.pth"
    torch.save({"generator": authors_state}, path)
    loaded = load_checkpoint(path)
    inputs = seeded_input()
    assert torch.equal(forward(loaded, inputs), forward(authors_model, inputs))


def test_authors_default_width_7x7_kernels_inferred(tmp_path: Path) -> None:
    model = recipe_model(RFRNetConfig(width=24), seed=3)
    path = save_authors_checkpoint(tmp_path / "w24.pth", model.state_dict())
    assert load_checkpoint(path).config == RFRNetConfig(width=24, kernel_size=7)


# ------------------------------------------------------------------------------ bad files


def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.pth")
    assert "not found" in message


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt_dir.pth"
    folder.mkdir()
    message = error_of(folder)
    assert "not a file" in message


def test_truncated_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "cut.pth", RFRNet(RFRNetConfig(width=8)), "rfr",
                           RFRNetConfig(width=8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = error_of(path)
    assert "cannot be read as a PyTorch checkpoint" in message
    assert "truncated" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    message = error_of(path)
    assert "cannot be read as a PyTorch checkpoint" in message


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("hello, this is not a checkpoint\n" * 20)
    message = error_of(path)
    assert "cannot be read as a PyTorch checkpoint" in message


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    message = error_of(path)
    assert "could run code" not in message
    assert "cannot be read as a PyTorch checkpoint" in message


def test_plain_tensor(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3, 4), path)
    message = error_of(path)
    assert "expected a dict, found Tensor" in message


def test_dict_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pth"
    torch.save({"model_state": {"w": torch.zeros(2)}, "epoch": 3}, path)
    message = error_of(path)
    assert "not an RFR-Net checkpoint" in message
    assert "found keys epoch, model_state" in message


class Payload:
    """Any class instance: unpickling it would import and run this module's code."""

    def __init__(self) -> None:
        self.weights = torch.ones(2)


def test_pickled_class_instance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"generator": Payload()}, path)
    message = error_of(path)
    assert "refused to load" in message
    assert "could run code" in message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_plain_pickle_of_class_instance_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"generator": Payload()}, handle)
    message = error_of(path)
    # The safe unpickler stops at the first opcode it does not allow, before any class is
    # named, so a raw pickle cannot be told from corrupt bytes: both are "cannot be read".
    assert "cannot be read as a PyTorch checkpoint" in message
    assert "plain pickle is not accepted" in message


def test_refused_message_names_the_class_and_has_no_ansi(tmp_path: Path) -> None:
    path = tmp_path / "objects.pth"
    torch.save({"generator": Payload()}, path)
    message = error_of(path)
    assert "\x1b[" not in message
    assert "Payload" in message


def test_authors_state_dict_missing_key(tmp_path: Path,
                                        authors_state: dict[str, torch.Tensor]) -> None:
    del authors_state["tail2.bn3.running_var"]
    path = save_authors_checkpoint(tmp_path / "missing.pth", authors_state)
    message = error_of(path)
    assert "weights do not fit the model" in message
    assert "missing keys (1): tail2.bn3.running_var" in message
    assert "unexpected" not in message


def test_authors_state_dict_without_pconv1(tmp_path: Path,
                                           authors_state: dict[str, torch.Tensor]) -> None:
    del authors_state["Pconv1.weight"]
    path = save_authors_checkpoint(tmp_path / "no_pconv1.pth", authors_state)
    message = error_of(path)
    assert "'Pconv1.weight'" in message
    assert "not an RFR-Net generator" in message


def test_authors_state_dict_extra_key(tmp_path: Path,
                                      authors_state: dict[str, torch.Tensor]) -> None:
    authors_state["extra_head.weight"] = torch.zeros(4, 4)
    path = save_authors_checkpoint(tmp_path / "extra.pth", authors_state)
    message = error_of(path)
    assert "unexpected keys (1): extra_head.weight" in message
    assert "missing" not in message


def test_authors_state_dict_wrong_shape(tmp_path: Path,
                                        authors_state: dict[str, torch.Tensor]) -> None:
    authors_state["out.weight"] = torch.zeros(3, 16, 5, 5)
    path = save_authors_checkpoint(tmp_path / "shape.pth", authors_state)
    message = error_of(path)
    assert "wrong shapes (1)" in message
    assert "out.weight: file (3, 16, 5, 5), expected (3, 16, 3, 3)" in message


def test_authors_unsupported_width(tmp_path: Path,
                                   authors_state: dict[str, torch.Tensor]) -> None:
    authors_state["Pconv1.weight"] = torch.zeros(12, 3, 7, 7)
    path = save_authors_checkpoint(tmp_path / "w12.pth", authors_state)
    message = error_of(path)
    assert "unsupported RFR-Net architecture" in message
    assert "width" in message


def test_authors_generator_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "gen_list.pth"
    torch.save({"generator": [torch.zeros(2)]}, path)
    message = error_of(path)
    assert "'generator' is not a state dict" in message


def suite_payload(**changes: object) -> dict[str, object]:
    model = RFRNet(RFRNetConfig(width=8))
    payload: dict[str, object] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": "rfr",
        "config": to_dict(RFRNetConfig(width=8)),
        "state_dict": model.state_dict(),
    }
    payload.update(changes)
    return payload


def test_suite_unknown_model_name(tmp_path: Path) -> None:
    path = tmp_path / "unknown_model.pth"
    torch.save(suite_payload(model="deepfill"), path)
    message = error_of(path)
    assert "cannot rebuild its model" in message
    assert "'deepfill'" in message
    assert "['encdec', 'pconv', 'rfr']" in message


def test_suite_wrong_format_version(tmp_path: Path) -> None:
    path = tmp_path / "v2.pth"
    torch.save(suite_payload(format_version=2), path)
    message = error_of(path)
    assert "format version 2" in message
    assert f"reads version {FORMAT_VERSION}" in message


def test_suite_config_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.pth"
    torch.save(suite_payload(config={"width": 8, "widht": 16}), path)
    message = error_of(path)
    assert "cannot rebuild its model" in message
    assert "widht" in message


def test_suite_missing_state_dict(tmp_path: Path) -> None:
    payload = suite_payload()
    del payload["state_dict"]
    path = tmp_path / "no_weights.pth"
    torch.save(payload, path)
    assert "lacks 'state_dict'" in error_of(path)


def test_suite_weights_of_another_config(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.pth"
    torch.save(suite_payload(config={"width": 16}), path)
    message = error_of(path)
    assert "wrong shapes" in message
    assert "Pconv1.weight: file (8, 3, 7, 7), expected (16, 3, 7, 7)" in message


# ---------------------------------------------------------------------------- atomic write


class WriteFailure(RuntimeError):
    pass


@pytest.mark.parametrize("failure", [WriteFailure("disk full"), KeyboardInterrupt()],
                         ids=["exception", "keyboard-interrupt"])
def test_failed_overwrite_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    first = recipe_model(RFRNetConfig(width=8), seed=4)
    path = save_checkpoint(tmp_path / "model.pth", first, "rfr", first.config)
    original_bytes = path.read_bytes()
    real_save = torch.save

    def failing_save(obj: object, handle: object, *args: object, **kwargs: object) -> None:
        real_save(obj, handle, *args, **kwargs)  # the whole payload reaches the temp file,
        handle.seek(0)  # type: ignore[attr-defined]
        handle.truncate(1000)  # type: ignore[attr-defined]  # then the write is cut short
        raise failure

    monkeypatch.setattr(torch, "save", failing_save)
    second = recipe_model(RFRNetConfig(width=8), seed=5)
    with pytest.raises(type(failure)):
        save_checkpoint(path, second, "rfr", second.config)
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    assert path.read_bytes() == original_bytes
    inputs = seeded_input((32, 48))
    assert torch.equal(forward(load_checkpoint(path), inputs), forward(first, inputs))


def test_successful_overwrite_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    first = recipe_model(RFRNetConfig(width=8), seed=4)
    second = recipe_model(RFRNetConfig(width=8), seed=5)
    path = tmp_path / "sub" / "model.pth"
    save_checkpoint(path, first, "rfr", first.config)
    save_checkpoint(path, second, "rfr", second.config)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pth"]
    inputs = seeded_input((32, 48))
    assert torch.equal(forward(load_checkpoint(path), inputs), forward(second, inputs))


def test_saved_file_has_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_torch_save({"x": torch.zeros(1)}, tmp_path / "perm.pth")
        torch.save({"x": torch.zeros(1)}, tmp_path / "plain.pth")
    finally:
        os.umask(old)
    assert (tmp_path / "plain.pth").stat().st_mode & 0o777 == 0o644
    assert path.stat().st_mode & 0o777 == 0o644
