"""``torch.backends.cudnn``: deepwise calls no cuDNN kernels, so it is never available; the flags
programs set (``benchmark``, ``deterministic``, ``enabled``, ``allow_tf32``) are kept but have no effect."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False: deepwise's GPU path (CuPy) does not go through cuDNN."""
    return False


def version():
    """None, as PyTorch answers when cuDNN is not available."""
    return None
