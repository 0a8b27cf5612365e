"""DistributedDataParallel on CPU: 2 processes, gloo, the env variables torchrun sets.
Both ranks end with identical weights, their data shards are disjoint and together
cover the global batches, and only rank 0 writes checkpoints and logs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORLD_SIZE = 2
STEPS = 3
BATCH = 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(WORLD_SIZE), "RANK": str(rank),
                       "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    import rfr.train as rt
    from rfr.config import from_dict

    writes = {"checkpoints": 0, "logs": 0, "curves": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            writes[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    rt.save_checkpoint = counting("checkpoints", rt.save_checkpoint)
    rt.add_file_log = counting("logs", rt.add_file_log)
    rt.open_live = counting("curves", rt.open_live)
    config = from_dict(rt.TrainConfig, {
        "model_config": {"width": 8}, "dataset": {"name": "demo-scenes", "size": 32},
        "loss": {"vgg_weights": "random"}, "batch_size": BATCH, "steps": STEPS - 1,
        "finetune_steps": 1, "checkpoint_every": 2, "out_dir": str(Path(tmp) / "run"),
        "progress": False, "device": "cpu",
    })
    seen: list[list[int]] = []
    result = rt.train(config, on_step=lambda step, info: seen.append(info["global_index"]))
    torch.save({"state": result.model.state_dict(), "seen": seen, "writes": writes,
                "checkpoint": str(result.checkpoint)}, Path(tmp) / f"rank{rank}.pt")


def test_two_cpu_ranks_train_in_lockstep(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    zero, one = ranks[0]["state"], ranks[1]["state"]
    assert all(torch.equal(zero[k], one[k]) for k in zero)

    shards = [{g for batch in r["seen"] for g in batch} for r in ranks]
    assert all(len(s) == STEPS * BATCH for s in shards)
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(STEPS * BATCH * WORLD_SIZE))
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
    assert all(torch.equal(saved["state_dict"][k], zero[k]) for k in zero)
