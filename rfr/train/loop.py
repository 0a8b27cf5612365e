"""Training: the authors' two-phase recipe, exact resume, NaN guard, curves, DDP.

Recipe (Li et al. 2020, authors' run.py): Adam at ``lr`` (2e-4) for ``steps`` steps, then
a fresh Adam at ``finetune_lr`` (5e-5) for ``finetune_steps`` steps with BatchNorm frozen
(``model.train(True, freeze_batchnorm=True)``: BN layers use and keep their running stats).

Several ranks. ``config.batch_size`` is the global batch G (the authors' 6), split over
the ``config.gpus`` ranks W (torchrun's WORLD_SIZE, which must equal it; ``rfr train``
launches torchrun itself when ``gpus`` > 1): each rank trains on ``G / W`` images and
DistributedDataParallel averages the gradients. Every loss term is a mean over the
samples of the batch, so the averaged gradient is that of the global batch: in the
finetune phase (BatchNorm frozen) 2 ranks x 3 train like 1 rank x 6 up to float
rounding. In phase 1 BatchNorm normalises each rank's shard with its own statistics
unless ``config.sync_batchnorm`` converts the model's BatchNorm layers to
``rfr.train.sync_batchnorm.SyncBatchNorm2d`` (global-batch statistics, on CPU and GPU).

Exact resume. Every random choice of step ``s`` is a pure function of (seed, s)
(``rfr.train.sampling``):
- the data order: epoch ``e`` visits the dataset in ``permutation(seed, e)``; the k-th
  sample of the global batch of step ``s`` is global sample ``g = s * G + k`` (G the
  global batch), i.e. position ``g mod N`` of epoch ``g // N``; rank r takes ``k`` in
  ``[r*G/W, (r+1)*G/W)``, so shards are disjoint, together form the global batch, and
  the samples of a step do not depend on W;
- the crop/flip of that sample: ``rfr.data.sample_rng(data seed, epoch, index)``;
- its training mask: ``rfr.masks.generate_mask(size, seed, g, mask_kind)``;
- torch's global RNG is reseeded from (seed, s, rank) before the step (for any stochastic
  layer a model may have; the suite's models have none, so W does not enter here).
So resuming needs only the weights, the optimizer state and the step; the checkpoint
still stores torch/numpy/python RNG states and the data position for inspection, and
they are restored on resume. On CPU with the same thread count a resumed run ends with
weights bit-identical to an uninterrupted one (tests/test_train.py kills and resumes).

Files in ``out_dir`` (rank 0 only): ``checkpoints/step_XXXXXXX.pth`` (suite format, with
``training`` = optimizer, step, phase, RNG states, config), ``last.pth`` (hard link to
the newest, replaced atomically), ``train.log``, ``run.json`` (config, VGG source, world
size, versions), ``metrics.json`` (last loss terms) and ``dvclive/`` (one step-indexed
curve per loss term, written when the checkpoint of its steps is, beside the run's
``summary.json`` and its flat ``metrics.json``; the pipeline puts this folder in
``results/train/<run>`` with ``curves_dir``). The checkpoints and
resume are ``rfr.train.run_state``; the curves, train.log, run.json and the summary
``rfr.train.run_log``; this module is the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rfr.data import build_dataset
from rfr.errors import DivergedError, TrainingError
from rfr.model.api import build_model
from rfr.model.small_map_conv import use_small_map_gemm
from rfr.precision import check_precision, precision_context
from rfr.train.config import (  # re-exported: the run's config lives in its own module
    CHECKPOINT_DIR,
    LAST_NAME,
    RESUME_FREE_KEYS,
    RUNTIME_FIELDS,
    TrainConfig,
    comparable_config,
    config_differences,
    load_train_config,
)
from rfr.train.losses import InpaintingLoss
from rfr.train.run_log import (
    TRAIN_LOGGER,
    TrainingCurves,
    add_file_log,
    curves_dir,
    run_metadata,
    training_summary,
    write_json,
)
from rfr.train.run_state import (
    checkpoint_path,
    nonfinite_weights,
    read_resume_state,
    restore_rng_states,
    write_training_checkpoint,
)
from rfr.train.sampling import (  # re-exported: data order and per-step seeds
    TrainingSamples,
    epoch_order,
    shard_indices,
    step_loader,
    step_seed,
)
from rfr.train.sync_batchnorm import convert_sync_batchnorm

log = logging.getLogger(TRAIN_LOGGER)


@dataclass
class TrainResult:
    checkpoint: Path | None  # final checkpoint (rank 0; None on other ranks)
    out_dir: Path
    step: int
    metrics: dict[str, float]  # loss terms of the last step (this rank's batch)
    resumed_from: int | None  # the step a resumed run started at
    seconds: float
    model: nn.Module = dataclasses.field(repr=False)


# --- environment --------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this call initialised the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_spec: str) -> DistInfo:
    """Read torchrun's WORLD_SIZE/RANK/LOCAL_RANK; init the process group when needed
    (nccl on CUDA, gloo on CPU) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device_spec == "auto":
        device_spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
    if world_size > 1:
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world_size, local_rank, device, owns)


def check_world_size(config: TrainConfig) -> None:
    """Refuse to train ``config`` under a world size other than its ``gpus``: the split
    of the global batch, and with it the numbers, would not be those of the config. Read
    before any process group is joined (torchrun's WORLD_SIZE, or the group a caller
    initialised), so that every rank refuses at once instead of waiting for the others."""
    if dist.is_available() and dist.is_initialized():
        world_size, source = dist.get_world_size(), "the initialised process group"
    else:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        source = "WORLD_SIZE" if "WORLD_SIZE" in os.environ else "no WORLD_SIZE (one process)"
    if world_size != config.gpus:
        raise TrainingError(
            f"the config trains on gpus {config.gpus} rank(s) but this process runs in a "
            f"world of {world_size} ({source}); run it with `rfr train`, which starts "
            f"torchrun with {config.gpus} processes itself when gpus > 1, or with "
            f"`torchrun --nproc-per-node={config.gpus}`, or set gpus: {world_size}")


# --- model and optimizer ------------------------------------------------------------------


def set_mode(model: nn.Module, phase: str) -> None:
    """Train mode; in the finetune phase BatchNorm keeps its running statistics."""
    freeze = phase == "finetune"
    train = type(model).train
    if "freeze_batchnorm" in inspect.signature(train).parameters:
        model.train(True, freeze_batchnorm=freeze)
        return
    model.train(True)
    if freeze:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def make_optimizer(model: nn.Module, config: TrainConfig, phase: str) -> torch.optim.Adam:
    """The authors' Adam. ``fused``: the same update in one kernel over all parameters
    (torch's plain CPU Adam loops over them, about 4 % of a demo step)."""
    lr = config.lr if phase == "train" else config.finetune_lr
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, fused=True)


# --- the loop -----------------------------------------------------------------------------


StepCallback = Callable[[int, Mapping[str, Any]], None]


def train(config: TrainConfig, on_step: StepCallback | None = None) -> TrainResult:
    """Train (or resume) ``config``; returns the final checkpoint and last loss terms.

    ``on_step(step, info)`` (optional) is called on every rank after each completed step
    with ``info`` = {"phase", "terms", "index", "global_index"}.
    """
    started = time.perf_counter()
    check_world_size(config)
    info = setup_distributed(config.device)
    out_dir = Path(config.out_dir)
    handler = None
    curves: TrainingCurves | None = None
    try:
        check_precision(config.precision, info.device.type)  # before anything is built
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            handler = add_file_log(out_dir)
        resume = read_resume_state(out_dir, config, info.world_size)
        start = int(resume["training"]["step"]) if resume is not None else 0

        torch.manual_seed(config.seed)  # model init: identical on every rank
        model = build_model(config.model, config.model_config).to(info.device)
        if config.small_map_gemm:  # before DDP, which wraps the module tree it is given
            swapped = use_small_map_gemm(model)
            if info.is_main:
                log.info("small_map_gemm: %d layer(s) use the CPU GEMM paths", swapped)
        if config.sync_batchnorm and info.distributed:
            # Global-batch statistics in phase 1. The layers keep their parameter and
            # buffer tensors and names: state dict, optimizer and checkpoints are those
            # of the plain model, which the checkpoints load into.
            model = convert_sync_batchnorm(model)
        loss_fn = InpaintingLoss(config.loss).to(info.device)
        phase = config.phase(start)
        optimizer = make_optimizer(model, config, phase)
        if resume is not None:
            training = resume["training"]
            model.load_state_dict(resume["state_dict"])
            if training["phase"] == phase:
                optimizer.load_state_dict(training["optimizer"])
            else:  # checkpoint at the phase boundary: phase 2 starts with a fresh Adam
                optimizer = make_optimizer(model, config, phase)
            restore_rng_states(training["rng"])
        net: nn.Module = model
        if info.distributed:
            ids = [info.device.index] if info.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=ids)

        vgg = {"source": loss_fn.vgg_source, "random": loss_fn.uses_random_vgg}
        if info.is_main:
            if resume is not None:
                log.info("resuming %s from step %d (%s)", out_dir, start, out_dir / LAST_NAME)
            else:
                write_json(out_dir / "run.json",
                           run_metadata(config, info.world_size, info.device, vgg, model))
            if vgg["random"]:
                log.warning("loss uses %s", vgg["source"])
            log.info("training %s on %s: steps %d..%d (phase 1: %d, finetune: %d), "
                     "batch %d = %d x %d ranks%s, %s, %s", config.model, config.dataset.name,
                     start, config.total_steps, config.steps, config.finetune_steps,
                     config.batch_size, config.rank_batch_size, info.world_size,
                     " (synchronised BatchNorm)" if config.sync_batchnorm and info.distributed
                     else "", info.device, config.precision)
            curves = TrainingCurves(curves_dir(config), resume=resume is not None)

        dataset = build_dataset(config.dataset)
        samples = TrainingSamples(dataset, config.seed, config.mask_kind)
        batches = step_loader(samples, config, start, info.rank, info.world_size)
        bar = None
        if info.is_main and config.progress:
            from tqdm import tqdm
            bar = tqdm(total=config.total_steps, initial=start, desc="train", unit="step",
                       dynamic_ncols=True)
        last_ckpt = out_dir / LAST_NAME if resume is not None else None
        terms_f: dict[str, float] = {}
        for step in range(start, config.total_steps):
            now = config.phase(step)
            if now != phase:
                phase = now
                optimizer = make_optimizer(model, config, phase)
                if info.is_main:
                    log.info("step %d: finetune phase (BatchNorm frozen, lr %g)", step,
                             config.finetune_lr)
            set_mode(model, phase)
            torch.manual_seed(step_seed(config.seed, step, info.rank))
            batch = next(batches)
            image = batch["image"].to(info.device)
            mask = batch["mask"].to(info.device)
            terms = forward_losses(net, loss_fn, image, mask, config.precision)
            check_finite(terms, step + 1, info, last_ckpt)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            done = step + 1
            terms_f = {name: float(value.detach()) for name, value in terms.items()}
            if on_step is not None:
                on_step(done, {"phase": phase, "terms": terms_f,
                               "index": batch["index"].tolist(),
                               "global_index": batch["global_index"].tolist()})
            if info.is_main:
                curves.log(step, terms_f)
                log.info("step %d/%d %s %s", done, config.total_steps, phase,
                         " ".join(f"{k}={v:.5g}" for k, v in terms_f.items()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{terms_f['total']:.4g}", phase=phase)
            if done % config.checkpoint_every == 0 or done == config.total_steps:
                check_finite_weights(model, done, info)  # every rank: all stop together
                if info.is_main:
                    curves.flush()  # first: the curves never miss a checkpointed step
                    last_ckpt = write_training_checkpoint(out_dir, model, optimizer, done,
                                                          phase, config, info.world_size,
                                                          vgg, samples)
                    log.info("step %d: checkpoint %s", done, last_ckpt)
                if info.distributed:
                    dist.barrier()
        if bar is not None:
            bar.close()
        final = None
        if info.is_main:
            final = checkpoint_path(out_dir, config.total_steps)
            if not final.exists():  # a finished run started again: nothing left to do
                final = (out_dir / LAST_NAME).resolve()
            if terms_f:
                write_json(out_dir / "metrics.json", {"step": config.total_steps,
                                                      "vgg_weights": vgg["source"],
                                                      **{f"train/{k}": v
                                                         for k, v in terms_f.items()}})
            log.info("done: %d steps, final checkpoint %s", config.total_steps, final)
            elapsed = time.perf_counter() - started
            curves.finish(training_summary(config, model, vgg, elapsed, start,
                                           curves.summary, info.world_size))
        return TrainResult(final, out_dir, config.total_steps, terms_f,
                           start if resume is not None else None,
                           time.perf_counter() - started, model)
    except DivergedError:
        if curves is not None:  # the run ends here: its curves keep the steps up to it
            with contextlib.suppress(Exception):
                curves.flush()
        raise
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        if info.owns_group:
            dist.destroy_process_group()


def forward_losses(net: nn.Module, loss_fn: nn.Module, image: Tensor, mask: Tensor,
                   precision: str = "fp32") -> dict[str, Tensor]:
    """One training forward: the model sees the masked image and the mask (1 = known);
    the loss terms compare its raw output with the image. bf16 = autocast (opt-in)."""
    with precision_context(precision, image.device.type):
        output = net(image * mask, mask)
        # bf16 outputs go to float32 for the loss; float64 (the faithfulness tests) stays.
        return loss_fn(output.to(torch.promote_types(output.dtype, torch.float32)), image,
                       mask)


def check_finite(terms: Mapping[str, Tensor], step: int, info: DistInfo,
                 last_ckpt: Path | None) -> None:
    """Stop before a NaN/inf loss reaches the weights; all ranks stop together."""
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
    bad = (~torch.isfinite(values)).to(torch.float32)
    if info.distributed:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if not bool(bad.any()):
        return
    names = [name for name, flag in zip(terms, bad.tolist(), strict=True) if flag]
    shown = ", ".join(f"{n}={float(terms[n].detach()):g}" for n in names)
    kept = (f"the last good checkpoint {last_ckpt} is kept" if last_ckpt is not None
            else "no checkpoint had been written yet")
    message = (f"loss is not finite at step {step}: {shown} (term(s) {', '.join(names)}); "
               f"training stopped before updating the weights; {kept}. Lower the learning "
               f"rate, use fp32, or check the data at this step.")
    if info.is_main:
        log.error(message)
    raise DivergedError(message)


def check_finite_weights(model: nn.Module, step: int, info: DistInfo) -> None:
    """Refuse to checkpoint non-finite weights, on every rank at once. The ranks' weights
    are the same by construction, but only a collective verdict is safe: a check on rank 0
    alone (the rank that writes) would leave the others waiting at the checkpoint barrier
    when it raises. The names reported are those of the lowest rank that found any."""
    names = nonfinite_weights(model)
    if info.distributed:
        # On the run's device: nccl reduces CUDA tensors only.
        first = torch.tensor([info.rank if names else info.world_size], device=info.device)
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
        if int(first) == info.world_size:
            return
        shared: list[Any] = [names]
        dist.broadcast_object_list(shared, src=int(first))
        names = shared[0]
    if not names:
        return
    others = f" (and {len(names) - 1} other tensor(s))" if len(names) > 1 else ""
    message = (f"step {step}: weight {names[0]} is not finite{others}; no checkpoint "
               f"written, the previous one is kept")
    if info.is_main:
        log.error(message)
    raise DivergedError(message)


__all__ = [
    "CHECKPOINT_DIR",
    "LAST_NAME",
    "RESUME_FREE_KEYS",
    "RUNTIME_FIELDS",
    "DivergedError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingSamples",
    "check_world_size",
    "comparable_config",
    "config_differences",
    "epoch_order",
    "forward_losses",
    "load_train_config",
    "shard_indices",
    "train",
]
