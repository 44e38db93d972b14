"""``torch.utils.data.dataloader``: the DataLoader (``deepwise.data.loader``) and its helpers."""

from deepwise.data.collate import default_collate, default_convert
from deepwise.data.loader import DataLoader, get_worker_info

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]
