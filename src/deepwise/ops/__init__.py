"""Every differentiable op, one family per file; ``deepwise.ops.<name>`` is the functional form.

Loading this package binds it to the Tensor (``deepwise.tensor.bind_ops``): ``x.exp()`` calls
``deepwise.ops.exp(x)``. ``dual`` holds the functions that backward formulas are written with.
"""

import sys

from deepwise import tensor as _tensor
from deepwise.ops.activation import elu, gelu, leaky_relu, log_softmax, relu, silu, softmax, softplus
from deepwise.ops.arithmetic import (
    add,
    clamp,
    clip,
    div,
    divide,
    eq,
    equal,
    floor_divide,
    ge,
    greater,
    gt,
    le,
    less,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    maximum,
    minimum,
    mul,
    multiply,
    ne,
    neg,
    negative,
    not_equal,
    pow,
    remainder,
    sub,
    subtract,
    true_divide,
    where,
)
from deepwise.ops.dropout import alpha_dropout, dropout, dropout1d, dropout2d
from deepwise.ops.embedding import embedding
from deepwise.ops.index import (
    argsort,
    gather,
    getitem,
    index_select,
    masked_fill,
    one_hot,
    scatter_add,
    sort,
    topk,
)
from deepwise.ops.linalg import bmm, dot, linear, matmul, mm
from deepwise.ops.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    std,
    sum,
    var,
)
from deepwise.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    concat,
    concatenate,
    expand,
    expand_as,
    flatten,
    flip,
    movedim,
    pad,
    permute,
    repeat,
    reshape,
    reshape_as,
    split,
    squeeze,
    stack,
    transpose,
    tril,
    triu,
    unflatten,
    unsqueeze,
    view,
    view_as,
)
from deepwise.ops.unary import (
    abs,
    cast,
    ceil,
    clone,
    cos,
    exp,
    floor,
    isfinite,
    isinf,
    isnan,
    log,
    log1p,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    tanh,
    to_device,
)

__all__ = sorted(  # the functions only: dw.exp, dw.cat, ... (the family modules stay deepwise.ops.<family>)
    name for name, value in vars().items()
    if not name.startswith("_") and callable(value) and not isinstance(value, type(sys))
)

_tensor.bind_ops(sys.modules[__name__])
