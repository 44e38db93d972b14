"""``torch.utils``, for programs that import from there: ``deepwise.utils.data`` is the data
pipeline of ``deepwise.data`` under PyTorch's module paths (``torch.utils.data.dataloader``, ...)."""

from deepwise.utils import checkpoint, data

__all__ = ["checkpoint", "data"]
