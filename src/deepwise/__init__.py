"""deepwise: a readable deep learning framework on NumPy (CPU) and CuPy (GPU).

    import deepwise as dw
    x = dw.randn(64, 10, requires_grad=True)
    loss = (x @ w).relu().log_softmax(dim=1)[:, 0].mean()
    loss.backward()
"""

from deepwise import (
    _malloc,
    accelerator,
    amp,
    autograd,
    backend,
    backends,
    callbacks,
    creation,
    cuda,
    data,
    diagnostics,
    distributed,
    distributions,
    io,
    nn,
    onnx,
    ops,
    optim,
    random,
    text,
    train,
    utils,
)
from deepwise.amp import autocast
from deepwise.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from deepwise.backend import (
    Device,
    bool_,
    float16,
    float32,
    float64,
    get_array_module,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from deepwise.creation import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    Generator,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from deepwise.io import load, save
from deepwise.nn.summary import summary
from deepwise.ops import *  # the functional ops are dw.exp, dw.cat, ... as in torch
from deepwise.random import get_rng_state, manual_seed, set_rng_state
from deepwise.tensor import Tensor
from deepwise.threads import get_num_threads, set_num_threads
from deepwise.train import History, Trainer, metrics

_malloc.apply()  # keep freed arrays' pages mapped (see deepwise/_malloc.py; DEEPWISE_MALLOC_TUNING=0 opts out)

__version__ = "0.1.0"

# torch-style dtype aliases
half, double, long = float16, float64, int64
float = float32  # shadows the builtins on purpose: dw.float, dw.int, dw.bool as in torch
int = int32
bool = bool_


def __getattr__(name):  # dw.bfloat16 is looked up when a program names it: importing ml_dtypes takes ~0.5 s
    if name == "bfloat16":
        return creation.bfloat16_dtype()
    raise AttributeError(f"module 'deepwise' has no attribute {name!r}")


def device(spec="cpu", index=None):
    """``dw.device("cuda:1")``, ``dw.device("cuda", 1)`` or ``dw.device(1)`` (CUDA device 1), as in torch."""
    return Device(spec, index)
