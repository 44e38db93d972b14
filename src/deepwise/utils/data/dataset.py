"""``torch.utils.data.dataset``: the datasets of ``deepwise.data.dataset``."""

from deepwise.data.dataset import Dataset, Subset, TensorDataset, random_split

__all__ = ["Dataset", "Subset", "TensorDataset", "random_split"]
