"""``torch.accelerator``: the device-agnostic probes, answered by ``deepwise.cuda`` (deepwise's only
accelerator is an NVIDIA GPU through CuPy). Without one, ``is_available()`` is False,
``current_accelerator()`` None and ``device_count()`` 0, so a program's usual

    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"

picks the CPU instead of failing.
"""

from __future__ import annotations

from deepwise import cuda
from deepwise.backend import Device


def is_available() -> bool:
    return cuda.is_available()


def device_count() -> int:
    return cuda.device_count()


def current_accelerator(check_available: bool = False):
    """``Device("cuda")`` when deepwise can use a GPU here, else None (PyTorch also answers None for
    ``check_available=True`` without a usable device; without a GPU there is nothing to name)."""
    return Device("cuda") if cuda.is_available() else None


def current_device_index() -> int:
    """The current GPU's index (an error that says why when there is none)."""
    return cuda.current_device()


current_device_idx = current_device_index


def set_device_index(device) -> None:
    cuda.set_device(device)


set_device_idx = set_device_index


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work (nothing to wait for without one)."""
    cuda.synchronize(device)
