"""``torch.backends.openmp``: deepwise starts no OpenMP runtime of its own."""


def is_available() -> bool:
    return False
