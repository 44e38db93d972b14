"""``torch.backends``: the probes and switches PyTorch programs touch, answered for deepwise.

deepwise computes with NumPy on the CPU and with CuPy on NVIDIA GPUs. It calls no cuDNN, MPS
(Apple Metal), MKL-DNN or TF32 kernels of its own, so their ``is_available()`` answer False and
their flags (``cudnn.benchmark = True``, ``cuda.matmul.allow_tf32 = True``, ...) are kept as set but
change nothing. ``cuda.is_built()`` says whether CuPy is installed.
"""

from deepwise.backends import cuda, cudnn, mkldnn, mps, openmp

__all__ = ["cuda", "cudnn", "mkldnn", "mps", "openmp"]
