"""``torch.backends.cuda``: whether deepwise's GPU path can exist here (CuPy installed), and the
TF32 switches programs set (kept, without effect: deepwise does not pick TF32 kernels)."""

import importlib.util


class _MatmulFlags:
    """``torch.backends.cuda.matmul``: settable flags."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True

    def __repr__(self):
        return f"matmul flags (no effect in deepwise): allow_tf32={self.allow_tf32}"


matmul = _MatmulFlags()


def is_built() -> bool:
    """True when CuPy, deepwise's GPU array library, is installed (a GPU may still be missing)."""
    return importlib.util.find_spec("cupy") is not None


def is_flash_attention_available() -> bool:
    return False
