"""Several ranks on CPU: gloo processes, the env variables torchrun sets.

``batch_size`` is the global batch, split over ``gpus`` ranks. Both ranks end with
identical weights, their data shards are disjoint and together cover the global batches,
and only rank 0 writes checkpoints and logs. 2 ranks x 3 train like 1 rank x 6 where
BatchNorm uses running statistics (finetune phase), and in phase 1 only with
``sync_batchnorm``; ``rfr train`` launches torchrun itself for ``gpus`` > 1.

"Trains like" is a bound on the largest absolute difference of any weight or BatchNorm
buffer after two steps; the runs then differ only in float rounding (DDP averages two
3-image gradients instead of taking one 6-image mean; the synchronised BatchNorm reduces
in another order than BatchNorm2d). Measured on a 2-core CPU: finetune 1.5e-8
(``TOLERANCE`` 1e-6, the weights move by 1e-4); phase 1 synchronised 1.9e-6, in the
running statistics, which go through 12 momentum updates from batch statistics
(``BATCHNORM_TOLERANCE`` 1e-5), against 4.2e-2 without synchronisation.

Phase 1 is compared at ``PHASE1_LR``, not the recipe's 2e-4: there two runs that differ
only in float rounding already end far apart. Adam's first update is about
``lr * sign(gradient)``, so a gradient entry near zero flips sign on a rounding
difference and moves by 2 x lr, and RFR-Net's BatchNorm on 2 x 2 maps amplifies that in
the next step: at 2e-4, 1 rank x 6 on one thread and on two threads differ by 7e-4 after
two steps (2 x 3 synchronised: 3.5e-3 off 1 x 6, unsynchronised 3.4e-2). At 1e-7 the
weights barely move, the BatchNorm statistics (running buffers, and the last step's
gradients) carry the difference, and rounding stays below the bound.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rfr.config import ConfigError, from_dict
from rfr.model.api import build_model
from rfr.model.checkpoint import load_checkpoint, read_checkpoint
from rfr.train.loop import TrainConfig, TrainingError, train
from rfr.train.sync_batchnorm import SyncBatchNorm2d, convert_sync_batchnorm

WORLD_SIZE = 2
STEPS = 3
GLOBAL_BATCH = 4
# Largest absolute difference of any weight or buffer allowed between 1 x 6 and 2 x 3:
# finetune phase (BatchNorm frozen), and phase 1 with synchronised BatchNorm.
TOLERANCE = 1e-6
BATCHNORM_TOLERANCE = 1e-5
# Phase-1 comparisons: see the module docstring.
PHASE1_LR = 1e-7
# Relative L2 difference of the last step's gradients allowed between 1 x 6 and 2 x 3
# synchronised (measured 0.018; 1 x 6 on one thread against two threads: 0.013).
GRADIENT_TOLERANCE = 0.1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_env(rank: int, port: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(WORLD_SIZE), "RANK": str(rank),
                       "LOCAL_RANK": str(rank)})


def tiny(out_dir: Path | str, **changes: Any) -> dict[str, Any]:
    """A tiny run (width 8, 32 x 32, random VGG) as a TrainConfig mapping."""
    return {"model_config": {"width": 8}, "dataset": {"name": "demo-scenes", "size": 32},
            "loss": {"vgg_weights": "random"}, "batch_size": 6, "steps": 2,
            "finetune_steps": 0, "checkpoint_every": 100, "out_dir": str(out_dir),
            "progress": False, "device": "cpu", **changes}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                   keys: list[str] | None = None) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max())
               for k in (keys if keys is not None else a) if a[k].is_floating_point())


# --- lockstep ----------------------------------------------------------------------------


def lockstep_worker(rank: int, port: int, tmp: str) -> None:
    torchrun_env(rank, port)
    torch.set_num_threads(1)
    import rfr.train.loop as rt
    import rfr.train.run_state as rs

    writes = {"checkpoints": 0, "logs": 0, "curves": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            writes[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    rs.save_checkpoint = counting("checkpoints", rs.save_checkpoint)
    rt.add_file_log = counting("logs", rt.add_file_log)
    rt.TrainingCurves = counting("curves", rt.TrainingCurves)
    config = from_dict(rt.TrainConfig, {
        "model_config": {"width": 8}, "dataset": {"name": "demo-scenes", "size": 32},
        "loss": {"vgg_weights": "random"}, "batch_size": GLOBAL_BATCH, "gpus": WORLD_SIZE,
        "steps": STEPS - 1, "finetune_steps": 1, "checkpoint_every": 2,
        "out_dir": str(Path(tmp) / "run"), "progress": False, "device": "cpu",
    })
    seen: list[list[int]] = []
    result = rt.train(config, on_step=lambda step, info: seen.append(info["global_index"]))
    torch.save({"state": result.model.state_dict(), "seen": seen, "writes": writes,
                "checkpoint": str(result.checkpoint)}, Path(tmp) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_cpu_ranks_split_the_global_batch_in_lockstep(tmp_path):
    mp.spawn(lockstep_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE,
             join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    zero, one = ranks[0]["state"], ranks[1]["state"]
    assert all(torch.equal(zero[k], one[k]) for k in zero)

    per_rank = GLOBAL_BATCH // WORLD_SIZE
    shards = [{g for batch in r["seen"] for g in batch} for r in ranks]
    assert all(len(s) == STEPS * per_rank for s in shards)
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(STEPS * GLOBAL_BATCH))
    for step in range(STEPS):  # each step's global batch is split between the ranks
        assert ranks[0]["seen"][step] == [4 * step, 4 * step + 1]
        assert ranks[1]["seen"][step] == [4 * step + 2, 4 * step + 3]

    assert ranks[0]["writes"] == {"checkpoints": 2, "logs": 1, "curves": 1}
    assert ranks[1]["writes"] == {"checkpoints": 0, "logs": 0, "curves": 0}
    assert ranks[1]["checkpoint"] == "None"
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_0000002.pth", "step_0000003.pth"]
    saved = torch.load(run / "last.pth", weights_only=True)
    assert saved["training"]["world_size"] == WORLD_SIZE
    assert saved["training"]["rng"]["data"]["next_global_sample"] == STEPS * GLOBAL_BATCH
    assert all(torch.equal(saved["state_dict"][k], zero[k]) for k in zero)
    assert json.loads((run / "run.json").read_text())["world_size"] == WORLD_SIZE
    summary = json.loads((run / "dvclive" / "summary.json").read_text())
    assert (summary["batch_size"], summary["rank_batch_size"], summary["world_size"]) == (
        GLOBAL_BATCH, per_rank, WORLD_SIZE)
    assert "batch 4 = 2 x 2 ranks" in (run / "train.log").read_text()


# --- 2 ranks x 3 against 1 rank x 6 ------------------------------------------------------

# The runs of the comparisons: name -> config changes (all batch 6, two steps).
TWO_RANK_RUNS = {
    "finetune": {"steps": 0, "finetune_steps": 2},  # the recipe's finetune_lr
    "phase1": {"lr": PHASE1_LR},
    "phase1_sync": {"lr": PHASE1_LR, "sync_batchnorm": True},
}


def last_gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    """The gradients of the run's last step (zeroed only before the next backward)."""
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """|a - b| / |b| over all tensors (L2)."""
    diff = torch.cat([(a[k].double() - b[k].double()).flatten() for k in b])
    return float(diff.norm() / torch.cat([b[k].double().flatten() for k in b]).norm())


def two_rank_worker(rank: int, port: int, tmp: str) -> None:
    """Every run of TWO_RANK_RUNS in one process group (train() joins the group it
    finds), each rank saving its final state."""
    torchrun_env(rank, port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        for name, changes in TWO_RANK_RUNS.items():
            config = from_dict(TrainConfig, tiny(Path(tmp) / name, gpus=WORLD_SIZE, **changes))
            seen: list[list[int]] = []
            result = train(config, on_step=lambda s, info, seen=seen: seen.append(
                info["global_index"]))
            types = sorted({type(m).__name__ for m in result.model.modules()
                            if isinstance(m, nn.modules.batchnorm._BatchNorm)})
            torch.save({"state": result.model.state_dict(), "seen": seen, "types": types,
                        "grads": last_gradients(result.model)},
                       Path(tmp) / f"{name}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, single_thread) -> dict[str, Any]:
    """The runs at 2 ranks x 3 (spawned) and at 1 rank x 6 (here), all on one thread."""
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(two_rank_worker, args=(free_port(), str(tmp)), nprocs=WORLD_SIZE, join=True)
    found: dict[str, Any] = {"dir": tmp}
    for name in TWO_RANK_RUNS:
        found[name] = [torch.load(tmp / f"{name}-rank{r}.pt", weights_only=True)
                       for r in range(WORLD_SIZE)]
    for name, changes in (("single_finetune", TWO_RANK_RUNS["finetune"]),
                          ("single", TWO_RANK_RUNS["phase1"])):
        seen: list[list[int]] = []
        result = train(from_dict(TrainConfig, tiny(tmp / name, **changes)),
                       on_step=lambda s, info, seen=seen: seen.append(info["global_index"]))
        found[name] = {"state": result.model.state_dict(), "seen": seen,
                       "grads": last_gradients(result.model)}
    return found


@pytest.mark.slow
def test_two_ranks_see_the_samples_of_one_rank(runs):
    single = runs["single"]["seen"]
    assert single == [list(range(6)), list(range(6, 12))]
    for name in TWO_RANK_RUNS:
        zero, one = (r["seen"] for r in runs[name])
        assert [a + b for a, b in zip(zero, one, strict=True)] == single


@pytest.mark.slow
def test_finetune_two_ranks_of_three_train_like_one_rank_of_six(runs):
    """BatchNorm frozen: the per-sample-mean losses make the averaged gradient that of
    the global batch, so only float rounding separates the runs."""
    zero, one = (r["state"] for r in runs["finetune"])
    assert all(torch.equal(zero[k], one[k]) for k in zero)
    single = runs["single_finetune"]["state"]
    difference = max_difference(zero, single)
    print(f"finetune, 2 x 3 vs 1 x 6: max |difference| {difference:.3g}")
    assert all(torch.allclose(zero[k], single[k], rtol=0, atol=TOLERANCE) for k in single)
    torch.manual_seed(0)
    initial = build_model("rfr", {"width": 8}).state_dict()
    assert max_difference(single, initial) > 50 * TOLERANCE  # the runs did train


@pytest.mark.slow
def test_phase1_trains_like_one_rank_only_with_sync_batchnorm(runs):
    """Per-rank BatchNorm statistics make 2 x 3 another run than 1 x 6 in phase 1: other
    running statistics, other gradients. Synchronised, it is the same run."""
    single = runs["single"]["state"]
    layers = [name for name, module in build_model("rfr", {"width": 8}).named_modules()
              if isinstance(module, nn.BatchNorm2d)]
    buffers = [k for k in single if k.rpartition(".")[0] in layers
               and k.rpartition(".")[2] in ("running_mean", "running_var")]
    assert len(buffers) == 2 * len(layers)
    plain, synced = runs["phase1"][0], runs["phase1_sync"][0]
    per_rank = {"buffers": max_difference(plain["state"], single, buffers),
                "all": max_difference(plain["state"], single),
                "gradients": relative_difference(plain["grads"], runs["single"]["grads"])}
    together = {"buffers": max_difference(synced["state"], single, buffers),
                "all": max_difference(synced["state"], single),
                "gradients": relative_difference(synced["grads"], runs["single"]["grads"])}
    print(f"phase 1 (lr {PHASE1_LR:g}), 2 x 3 vs 1 x 6, max |difference| of BatchNorm "
          f"running stats / of everything, relative difference of the last gradients: "
          f"per-rank BatchNorm {per_rank['buffers']:.3g} / {per_rank['all']:.3g}, "
          f"{per_rank['gradients']:.3g}; synchronised {together['buffers']:.3g} / "
          f"{together['all']:.3g}, {together['gradients']:.3g}")
    assert per_rank["buffers"] > 100 * BATCHNORM_TOLERANCE
    assert per_rank["gradients"] > 10 * GRADIENT_TOLERANCE
    assert together["all"] <= BATCHNORM_TOLERANCE
    assert together["gradients"] <= GRADIENT_TOLERANCE
    zero, one = (r["state"] for r in runs["phase1_sync"])  # synchronised stats on both ranks
    assert max_difference(zero, one) == 0
    assert runs["phase1_sync"][0]["types"] == ["SyncBatchNorm2d"]
    assert runs["phase1"][0]["types"] == ["BatchNorm2d"]


@pytest.mark.slow
def test_sync_batchnorm_checkpoint_loads_into_the_plain_model(runs):
    checkpoint = runs["dir"] / "phase1_sync" / "last.pth"
    model = load_checkpoint(checkpoint)
    assert not any(isinstance(m, SyncBatchNorm2d) for m in model.modules())
    state = model.state_dict()
    trained = runs["phase1_sync"][0]["state"]
    assert state.keys() == trained.keys()
    assert all(torch.equal(state[k], trained[k]) for k in state)
    assert read_checkpoint(checkpoint)["training"]["train_config"]["sync_batchnorm"] is True


# --- the layer -----------------------------------------------------------------------------


def layer_data() -> tuple[torch.Tensor, torch.Tensor]:
    """6 x 4 x 5 x 5 inputs off zero mean and unit variance, and output weights."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 5, 5, generator=generator) * 3 + 2
    return x, torch.randn(6, 4, 5, 5, generator=generator)


def reference_layer(cls: type[nn.BatchNorm2d] = nn.BatchNorm2d) -> nn.BatchNorm2d:
    layer = cls(4, momentum=0.3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
    return layer


def two_passes(layer: nn.Module, x: torch.Tensor, w: torch.Tensor, batch: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two training forwards and backwards of a per-sample-mean loss; (output, dL/dx)."""
    x = x.clone().requires_grad_(True)
    for _ in range(2):
        out = layer(x)
        ((out * w).sum() / batch).backward()
    return out.detach(), x.grad


def sync_layer_worker(rank: int, port: int, tmp: str) -> None:
    torchrun_env(rank, port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        x, w = layer_data()
        shard = slice(3 * rank, 3 * rank + 3)
        layer = convert_sync_batchnorm(reference_layer())
        out, x_grad = two_passes(layer, x[shard], w[shard], 3)
        grads = [layer.weight.grad.clone(), layer.bias.grad.clone()]
        for grad in grads:  # what DDP does with parameter gradients
            dist.all_reduce(grad)
            grad /= WORLD_SIZE
        torch.save({"out": out, "x_grad": x_grad, "weight_grad": grads[0],
                    "bias_grad": grads[1], **{k: v for k, v in layer.state_dict().items()}},
                   Path(tmp) / f"layer{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sync_batchnorm_on_two_halves_equals_batchnorm_on_the_whole_batch(tmp_path,
                                                                          single_thread):
    mp.spawn(sync_layer_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE,
             join=True)
    ranks = [torch.load(tmp_path / f"layer{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    x, w = layer_data()
    layer = reference_layer()
    out, x_grad = two_passes(layer, x, w, 6)
    # Each rank's input gradient is that of the sum of both ranks' losses (the
    # all-reduce's backward); DDP's averaging of the parameters' makes it the mean.
    got = {"out": torch.cat([r["out"] for r in ranks]),
           "x_grad": torch.cat([r["x_grad"] for r in ranks]) / WORLD_SIZE,
           "weight_grad": ranks[0]["weight_grad"], "bias_grad": ranks[0]["bias_grad"],
           **{k: ranks[0][k] for k in layer.state_dict()}}
    want = {"out": out, "x_grad": x_grad, "weight_grad": layer.weight.grad,
            "bias_grad": layer.bias.grad, **layer.state_dict()}
    for key, value in want.items():
        assert torch.allclose(got[key].double(), value.double(), rtol=1e-5, atol=1e-6), key
        assert torch.equal(ranks[0][key], ranks[1][key]) or key in ("out", "x_grad"), key
    assert int(got["num_batches_tracked"]) == 2


def test_sync_batchnorm_without_a_group_is_batchnorm(single_thread):
    """One process, eval mode or frozen: plain BatchNorm2d, same state-dict keys."""
    x, w = layer_data()
    plain = reference_layer()
    synced = convert_sync_batchnorm(reference_layer())
    assert isinstance(synced, SyncBatchNorm2d)
    assert isinstance(synced, nn.modules.batchnorm._BatchNorm)
    assert list(synced.state_dict()) == list(plain.state_dict())
    assert (synced.eps, synced.momentum, synced.affine, synced.track_running_stats) == (
        plain.eps, plain.momentum, plain.affine, plain.track_running_stats)
    a, b = two_passes(plain, x, w, 6), two_passes(synced, x, w, 6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    plain.eval()
    synced.eval()
    assert torch.equal(plain(x), synced(x))

    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Sequential(
        nn.BatchNorm2d(4, affine=False, track_running_stats=False)))
    model[1].eval()
    weight = model[1].weight
    converted = convert_sync_batchnorm(model)
    assert converted is model
    assert [type(m).__name__ for m in model.modules()] == [
        "Sequential", "Conv2d", "SyncBatchNorm2d", "Sequential", "SyncBatchNorm2d"]
    assert model[1].weight is weight and not model[1].training and model[2][0].training
    assert not model[2][0].affine and model[2][0].running_mean is None


# --- small_map_gemm under DDP, and non-finite weights at a checkpoint ---------------------

# A run that goes wrong must fail, not hang: the group's collectives time out after this.
GROUP_TIMEOUT_S = 60


def poison_after_step(rank_to_poison: int) -> None:
    """Make ``rfr.train.loop``'s optimizers put a NaN into the first weight after each step on
    ``rank_to_poison`` only: the ranks' weights then disagree, as after a fault on one."""
    import rfr.train.loop as rt

    make = rt.make_optimizer

    def poisoned(model, config, phase):
        optimizer = make(model, config, phase)
        step = optimizer.step

        def step_then_poison(*args, **kwargs):
            result = step(*args, **kwargs)
            if dist.get_rank() == rank_to_poison:
                with torch.no_grad():
                    next(model.parameters()).view(-1)[0] = float("nan")
            return result

        optimizer.step = step_then_poison
        return optimizer

    rt.make_optimizer = poisoned


def gemm_and_nan_worker(rank: int, port: int, tmp: str) -> None:
    """One clean small_map_gemm run, then one run per poisoned rank; saves what each rank
    saw (its final state, or the error it raised)."""
    import datetime

    import rfr.train.loop as rt

    torchrun_env(rank, port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
    found: dict[str, Any] = {}
    make = rt.make_optimizer
    try:
        config = from_dict(TrainConfig, tiny(Path(tmp) / "gemm", gpus=WORLD_SIZE, steps=1,
                                             small_map_gemm=True))
        result = train(config)
        found["gemm"] = {"state": dict(result.model.named_parameters()),
                         "swapped": sum(type(m).__name__.startswith("SmallMap")
                                        for m in result.model.modules())}
        for poisoned in range(WORLD_SIZE):
            poison_after_step(poisoned)
            config = from_dict(TrainConfig, tiny(Path(tmp) / f"nan{poisoned}",
                                                 gpus=WORLD_SIZE, steps=1))
            try:
                train(config)
                found[f"nan{poisoned}"] = "no error"
            except Exception as error:  # noqa: BLE001 - the test compares what was raised
                found[f"nan{poisoned}"] = f"{type(error).__name__}: {error}"
            finally:
                rt.make_optimizer = make
    finally:
        torch.save(found, Path(tmp) / f"gemm-nan-rank{rank}.pt")
        dist.destroy_process_group()


@pytest.mark.slow
def test_small_map_gemm_under_ddp_and_a_nan_weight_on_one_rank_stops_every_rank(tmp_path):
    """The swap happens before DDP wraps the model (the ranks stay in lockstep); a weight
    that is not finite on any one rank at checkpoint time stops all ranks with the same
    DivergedError (a check on rank 0 alone left the others waiting at the barrier), and
    no checkpoint is written."""
    mp.spawn(gemm_and_nan_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE,
             join=True)
    ranks = [torch.load(tmp_path / f"gemm-nan-rank{r}.pt", weights_only=True)
             for r in range(WORLD_SIZE)]
    zero, one = ranks[0]["gemm"], ranks[1]["gemm"]  # parameters: BatchNorm stats are per rank
    assert zero["swapped"] == one["swapped"] == 6
    assert all(torch.equal(zero["state"][k], one["state"][k]) for k in zero["state"])
    for poisoned in range(WORLD_SIZE):
        seen = [r[f"nan{poisoned}"] for r in ranks]
        assert seen[0] == seen[1], seen
        assert seen[0].startswith("DivergedError: step 1: weight Pconv1.weight is not finite")
        assert not list((tmp_path / f"nan{poisoned}").glob("checkpoints/*.pth"))
        assert not (tmp_path / f"nan{poisoned}" / "last.pth").exists()


# --- refusals ------------------------------------------------------------------------------


def test_batch_size_must_split_evenly_over_the_ranks(tmp_path):
    with pytest.raises(ConfigError, match=r"batch_size 6 is not divisible by gpus 4"):
        from_dict(TrainConfig, tiny(tmp_path, gpus=4))
    with pytest.raises(ConfigError, match=r"gpus must be an integer >= 1"):
        from_dict(TrainConfig, tiny(tmp_path, gpus=0))
    assert from_dict(TrainConfig, tiny(tmp_path, gpus=3)).rank_batch_size == 2


def test_train_refuses_a_world_size_other_than_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TrainingError, match=r"gpus 1 rank.*world of 2 \(WORLD_SIZE\)"):
        train(from_dict(TrainConfig, tiny(tmp_path / "a")))
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(TrainingError, match=r"gpus 2 rank.*world of 1.*torchrun"):
        train(from_dict(TrainConfig, tiny(tmp_path / "b", gpus=2)))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_pipeline_passes_gpus_and_sync_batchnorm_from_the_train_section(tmp_path):
    from rfr import pipeline

    params = pipeline.read_profile("smoke")
    assert (params["train"]["gpus"], params["train"]["sync_batchnorm"]) == (1, False)
    params["train"].update(gpus=2, sync_batchnorm=True)
    pipeline.validate_params(params)
    tracked = pipeline.TrackedParams(params)
    config = pipeline.train_config(tracked, "demo-scenes", "rfr", 0, tmp_path, None)
    assert (config.gpus, config.sync_batchnorm, config.rank_batch_size) == (2, True, 1)
    assert "train" in tracked.read
    params["train"]["gpus"] = 4
    with pytest.raises(ConfigError, match=r"train: batch_size 2 is not divisible by gpus 4"):
        pipeline.validate_params(params)


# --- rfr train launches torchrun --------------------------------------------------------


@pytest.mark.slow
def test_rfr_train_runs_gpus_ranks_under_torchrun(tmp_path, runs, monkeypatch, caplog):
    """`rfr train --config` with gpus 2 reruns itself as `python -m torch.distributed.run
    ... -m rfr.cli train ...`; the run equals the spawned 2 x 3 run bit for bit."""
    import yaml

    from rfr.cli import main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    config_file = tmp_path / "train.yaml"
    config_file.write_text(yaml.safe_dump(tiny("unused", gpus=WORLD_SIZE,
                                               **TWO_RANK_RUNS["phase1"])))
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="rfr"):
        assert main(["train", "--config", str(config_file), "--out", str(out)]) == 0
    assert "-m torch.distributed.run --standalone --nproc-per-node=2 -m rfr.cli train " \
           "--config" in caplog.text
    assert json.loads((out / "run.json").read_text())["world_size"] == WORLD_SIZE
    saved = read_checkpoint(out / "last.pth")
    assert saved["training"]["world_size"] == WORLD_SIZE
    spawned = runs["phase1"][0]["state"]
    assert all(torch.equal(saved["state_dict"][k], spawned[k]) for k in spawned)
