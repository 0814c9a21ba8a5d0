"""Data-parallel training: 2 gloo processes on CPU end a few steps with identical weights."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tmp: str, sync: bool = True) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from test_training import tiny_config

    from gradtrack.training import distributed
    from gradtrack.training.trainer import train

    if not sync:  # control: without gradient averaging the ranks must drift apart
        distributed.average_gradients = lambda params, info: None
        distributed.broadcast_module = lambda module, info, buffers_only=False: None
    cfg = tiny_config(Path(tmp), checkpoint_every=100)
    res = train(cfg, out=Path(tmp) / "run", stop_step=3, progress=False)
    torch.save({k: v.detach().clone() for k, v in res.model.state_dict().items()}, Path(tmp) / f"rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def test_two_gloo_ranks_hold_identical_weights(tmp_path):
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the weights moved away from the (shared) initialisation, so the ranks really trained together
    from test_training import tiny_config

    from gradtrack.training.recipes import build_recipe

    torch.manual_seed(tiny_config(tmp_path).seed)
    init = build_recipe(tiny_config(tmp_path)).build_model().state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a if a[k].is_floating_point())
    assert (tmp_path / "run" / "last.pt").is_file()  # rank 0 wrote the checkpoint


def test_without_synchronisation_ranks_diverge(tmp_path):
    """The control for the test above: ranks read different data, so only the averaging keeps them equal."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), False), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_step_sampler_gives_ranks_disjoint_items():
    from gradtrack.training.trainer import StepSampler

    r0 = list(StepSampler(2, 5, 4, rank=0, world=2))
    r1 = list(StepSampler(2, 5, 4, rank=1, world=2))
    assert len(r0) == len(r1) == 12 and not set(r0) & set(r1)
    single = list(StepSampler(0, 3, 8))
    assert single == list(range(24))
