"""What a rank needs from torch.distributed and its machine: the device and backend, sums over ranks,
who is who, and a free port for a world of one."""
from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist


def all_reduce(value, op=dist.ReduceOp.SUM):
    """A number (or tensor) summed (or reduced by op) over every rank; every rank gets the result."""
    t = torch.as_tensor(value, dtype=torch.float64 if isinstance(value, float) else torch.int64)
    dist.all_reduce(t, op=op)
    return t.item() if t.dim() == 0 else t


def setup_device(tc: dict) -> tuple[torch.device, str]:
    """(device, process-group backend). GPU ranks use the GPU TorchDistributor (or torchrun) gave
    them: TorchDistributor sets CUDA_VISIBLE_DEVICES per task, so LOCAL_RANK modulo the visible
    devices picks the rank's own."""
    if tc["use_gpu"]:
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.use_gpu is true but this rank sees no CUDA device "
                               f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        return device, "nccl"
    torch.set_num_threads(int(tc["threads_per_rank"]))
    return torch.device("cpu"), "gloo"


def rank_info(rank: int, device: torch.device) -> dict:
    """Who this rank is (host, pid, device, interpreter, package path), gathered on rank 0 for the log and
    the model's metrics: where a cluster ran it from (a packed environment, a zip, a checkout)."""
    import digitforge

    return {"rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd(),
            "device": str(device), "python": sys.executable, "package": os.path.dirname(digitforge.__file__)}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (MASTER_PORT for a world of one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
