"""``torch.cuda.amp``: the older spelling of mixed precision that many training scripts still use,
``torch.cuda.amp.autocast()`` and ``torch.cuda.amp.GradScaler()``: ``deepwise.amp``'s autocast and
GradScaler with the device fixed to ``"cuda"`` and PyTorch's arguments of that spelling."""

from __future__ import annotations

from deepwise import amp
from deepwise.backend import float16

__all__ = ["GradScaler", "autocast"]


class autocast(amp.autocast):  # PyTorch's name, in lower case
    """``torch.cuda.amp.autocast(enabled=True, dtype=torch.float16, cache_enabled=True)``: as
    ``dw.autocast("cuda", ...)``, as a context manager or a decorator."""

    def __init__(self, enabled: bool = True, dtype=float16, cache_enabled: bool = True):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(amp.GradScaler):
    """``torch.cuda.amp.GradScaler(init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True)``: as ``dw.amp.GradScaler("cuda", ...)``."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor,
                         backoff_factor=backoff_factor, growth_interval=growth_interval, enabled=enabled)
