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
``rfr.sync_batchnorm.SyncBatchNorm2d`` (global-batch statistics, on CPU and GPU).

Exact resume. Every random choice of step ``s`` is a pure function of (seed, s):
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
curve per loss term).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import inspect
import json
import logging
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from rfr.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from rfr.config import to_dict
from rfr.data import ImageDataset, build_dataset
from rfr.data.transforms import preprocess, sample_rng
from rfr.losses import InpaintingLoss
from rfr.masks import generate_mask, to_known_mask
from rfr.models import build_model, count_parameters
from rfr.precision import check_precision, precision_context
from rfr.sync_batchnorm import convert_sync_batchnorm
from rfr.train_config import (  # re-exported: the run's config lives in its own module
    CHECKPOINT_DIR,
    LAST_NAME,
    RESUME_FREE_KEYS,
    RUNTIME_FIELDS,
    TrainConfig,
    comparable_config,
    config_differences,
    load_train_config,
)

log = logging.getLogger("rfr.train")

# Leading word of the data-order stream (cf. rfr.data.transforms.DATA_STREAM).
ORDER_STREAM = 0x5246524F  # "RFRO"
STEP_STREAM = 0x52465253  # "RFRS"


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, mismatching resume); the message says why."""


class DivergedError(TrainingError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    checkpoint: Path | None  # final checkpoint (rank 0; None on other ranks)
    out_dir: Path
    step: int
    metrics: dict[str, float]  # loss terms of the last step (this rank's batch)
    resumed_from: int | None  # the step a resumed run started at
    seconds: float
    model: nn.Module = dataclasses.field(repr=False)


# --- data: every sample a function of (seed, global sample index) --------------------------


@lru_cache(maxsize=8)
def epoch_order(seed: int, epoch: int, length: int) -> np.ndarray:
    """Dataset order of pass ``epoch``: a permutation fixed by (seed, epoch, length)."""
    return np.random.default_rng([ORDER_STREAM, seed, epoch]).permutation(length)


def shard_indices(step: int, rank_batch: int, rank: int, world_size: int) -> list[int]:
    """Global sample indices that ``rank`` trains on at ``step`` (0-based), with
    ``rank_batch`` images per rank: ``[s*G + r*B, s*G + (r+1)*B)`` for the global batch
    ``G = B * world_size``, so a step's global batch is the same for any split of G."""
    start = (step * world_size + rank) * rank_batch
    return list(range(start, start + rank_batch))


class TrainingSamples(Dataset):
    """Item g (a global sample index) = image + training mask, drawn from (seed, g) only."""

    def __init__(self, dataset: ImageDataset, seed: int, mask_kind: str) -> None:
        self.dataset = dataset
        self.seed = seed
        self.mask_kind = mask_kind

    def locate(self, g: int) -> tuple[int, int]:
        """(epoch, dataset index) of global sample g."""
        n = len(self.dataset)
        epoch, position = divmod(int(g), n)
        return epoch, int(epoch_order(self.seed, epoch, n)[position])

    def __len__(self) -> int:  # unbounded stream; the sampler decides what is drawn
        return 2**62

    def __getitem__(self, g: int) -> dict[str, Any]:
        epoch, index = self.locate(g)
        ds = self.dataset
        image = preprocess(ds.open(index), ds.size, ds.train, sample_rng(ds.seed, epoch, index))
        mask = to_known_mask(generate_mask(ds.size, self.seed, int(g), self.mask_kind))
        return {"image": image, "mask": mask, "index": index, "global_index": int(g)}


def step_loader(samples: TrainingSamples, config: TrainConfig, start: int, rank: int,
                world_size: int) -> Iterator[dict[str, Any]]:
    rank_batch = config.batch_size // world_size
    batches = [shard_indices(s, rank_batch, rank, world_size)
               for s in range(start, config.total_steps)]
    loader = DataLoader(samples, batch_sampler=batches, num_workers=config.num_workers)
    return iter(loader)


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


def step_seed(seed: int, step: int, rank: int) -> int:
    state = np.random.SeedSequence([STEP_STREAM, seed, step, rank]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def rng_states(data_position: Mapping[str, int]) -> dict[str, Any]:
    """Every RNG state as tensors and plain data (checkpoints load with weights_only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64)},
        "data": dict(data_position),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), None))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# --- checkpoints --------------------------------------------------------------------------


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / CHECKPOINT_DIR / f"step_{step:07d}.pth"


def link_last(out_dir: Path, target: Path) -> Path:
    """Point ``last.pth`` at ``target`` atomically (hard link, or a copy where links are
    not supported), so a reader never sees a half-written last.pth."""
    last = out_dir / LAST_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{LAST_NAME}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(target, tmp)
    except OSError:
        shutil.copyfile(target, tmp)
    os.replace(tmp, last)
    return last


def read_resume_state(out_dir: Path, config: TrainConfig, world_size: int) -> dict | None:
    last = out_dir / LAST_NAME
    if not last.exists():
        return None
    payload = read_checkpoint(last)
    training = payload.get("training")
    if not isinstance(training, Mapping) or "step" not in training:
        raise CheckpointError(f"{last}: not a training checkpoint (no 'training' state)")
    diffs = config_differences(comparable_config(training["train_config"]),
                               comparable_config(config))
    if training.get("world_size", 1) != world_size:
        diffs.append(f"world_size: checkpoint {training.get('world_size', 1)}, now {world_size}")
    if diffs:
        raise TrainingError(
            f"cannot resume from {last}: the run in {out_dir} was made with another config "
            f"({'; '.join(diffs)}). Use the original config, or another --out directory "
            f"for a new run."
        )
    return payload


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


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


# --- logging ------------------------------------------------------------------------------


def open_live(live_dir: Path, resume_step: int | None) -> Any:
    try:
        from dvclive import Live
    except ImportError as exc:
        raise TrainingError(
            "training curves need dvclive, which is not importable "
            f"({exc}); install it with: pip install 'dvclive>=3.40,<4'"
        ) from exc
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")

    class FilesOnlyLive(Live):
        """Live that only writes its files. Stock Live looks for a DVC repository and,
        finding none, runs ``dvc init`` in the enclosing Git repository (creating .dvc/
        and staging it): a training run must not do that. Inside ``dvc repro`` (DVC_ROOT
        set) the repository exists and stock behaviour is kept."""

        def _init_dvc(self) -> None:
            if os.getenv("DVC_ROOT"):
                super()._init_dvc()
                return
            self._dvc_file = self._init_dvc_file()

    if resume_step is not None:
        truncate_curves(live_dir, resume_step)
    live = FilesOnlyLive(str(live_dir), resume=resume_step is not None, save_dvc_exp=False,
                         dvcyaml=False)
    if resume_step is not None:
        live.step = resume_step
    return live


def truncate_curves(live_dir: Path, step: int) -> None:
    """Drop curve rows logged after ``step`` by a run that died before checkpointing."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines:
            continue
        header = lines[0].split("\t")
        col = header.index("step") if "step" in header else None
        keep = [lines[0]] + [line for line in lines[1:]
                             if col is None or int(line.split("\t")[col]) < step]
        tsv.write_text("\n".join(keep) + "\n")


def add_file_log(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


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
    live = None
    try:
        check_precision(config.precision, info.device.type)  # before anything is built
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            handler = add_file_log(out_dir)
        resume = read_resume_state(out_dir, config, info.world_size)
        start = int(resume["training"]["step"]) if resume is not None else 0

        torch.manual_seed(config.seed)  # model init: identical on every rank
        model = build_model(config.model, config.model_config).to(info.device)
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
                write_json(out_dir / "run.json", run_metadata(config, info, vgg, model))
            if vgg["random"]:
                log.warning("loss uses %s", vgg["source"])
            log.info("training %s on %s: steps %d..%d (phase 1: %d, finetune: %d), "
                     "batch %d = %d x %d ranks%s, %s, %s", config.model, config.dataset.name,
                     start, config.total_steps, config.steps, config.finetune_steps,
                     config.batch_size, config.rank_batch_size, info.world_size,
                     " (synchronised BatchNorm)" if config.sync_batchnorm and info.distributed
                     else "", info.device, config.precision)
            live = open_live(curves_dir(config), start if resume is not None else None)

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
        step = start
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
                for name, value in terms_f.items():
                    live.log_metric(f"train/{name}", value)
                live.next_step()
                log.info("step %d/%d %s %s", done, config.total_steps, phase,
                         " ".join(f"{k}={v:.5g}" for k, v in terms_f.items()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{terms_f['total']:.4g}", phase=phase)
            if done % config.checkpoint_every == 0 or done == config.total_steps:
                if info.is_main:
                    last_ckpt = write_training_checkpoint(out_dir, model, optimizer, done,
                                                          phase, config, info, vgg, samples)
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
            live.summary.update(training_summary(config, model, vgg, elapsed, start,
                                                 live.summary, info.world_size))
            live.end()
            live = None
        return TrainResult(final, out_dir, config.total_steps, terms_f,
                           start if resume is not None else None,
                           time.perf_counter() - started, model)
    finally:
        if live is not None:
            with contextlib.suppress(Exception):
                live.end()
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


def write_training_checkpoint(out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                              step: int, phase: str, config: TrainConfig, info: DistInfo,
                              vgg: Mapping[str, Any], samples: TrainingSamples) -> Path:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DivergedError(f"step {step}: weight {name} is not finite; no checkpoint "
                                f"written, the previous one is kept")
    next_global = step * config.batch_size  # the global batch: any world size
    epoch, position = divmod(next_global, len(samples.dataset))
    training = {
        "step": step,
        "phase": phase,
        "optimizer": optimizer.state_dict(),
        "rng": rng_states({"next_global_sample": next_global, "epoch": epoch,
                           "position": position}),
        "train_config": to_dict(config),
        "world_size": info.world_size,
        "vgg_weights": dict(vgg),
        "torch_version": str(torch.__version__),
    }
    path = save_checkpoint(checkpoint_path(out_dir, step), model, config.model,
                           dict(config.model_config), training=training)
    link_last(out_dir, path)
    if config.keep_checkpoints:
        old = sorted((out_dir / CHECKPOINT_DIR).glob("step_*.pth"))[:-config.keep_checkpoints]
        for stale in old:
            stale.unlink(missing_ok=True)
    return path


def curves_dir(config: TrainConfig) -> Path:
    """Where the dvclive curves and the training summary go."""
    if config.curves_dir is not None:
        return Path(config.curves_dir)
    return Path(config.out_dir) / "dvclive"


def training_summary(config: TrainConfig, model: nn.Module, vgg: Mapping[str, Any],
                     seconds: float, start: int, previous: Mapping[str, Any],
                     world_size: int) -> dict[str, Any]:
    """What a report needs of a finished run beside its loss curves: cost and provenance.
    A resumed run adds its wall time to that of the invocations before it."""
    total = seconds + (float(previous.get("seconds", 0.0)) if start else 0.0)
    return {
        "steps": config.total_steps,
        "seconds": total,
        "steps_per_second": config.total_steps / total if total > 0 else None,
        "parameters": count_parameters(model),
        "model": config.model,
        "dataset": config.dataset.name,
        "image_size": config.dataset.size,
        "batch_size": config.batch_size,  # global: over all ranks
        "rank_batch_size": config.batch_size // world_size,
        "world_size": world_size,
        "sync_batchnorm": config.sync_batchnorm and world_size > 1,
        "precision": config.precision,
        "vgg_weights": str(vgg["source"]),
        "vgg_random": bool(vgg["random"]),
    }


def run_metadata(config: TrainConfig, info: DistInfo, vgg: Mapping[str, Any],
                 model: nn.Module) -> dict[str, Any]:
    return {
        "config": to_dict(config),
        "vgg_weights": {"spec": config.loss.vgg_weights, **vgg},
        "world_size": info.world_size,
        "device": str(info.device),
        "parameters": count_parameters(model),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(),
        "note": ("losses computed with RANDOM VGG16 weights: not comparable to published "
                 "numbers" if vgg["random"] else "VGG16: " + str(vgg["source"])),
    }


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
