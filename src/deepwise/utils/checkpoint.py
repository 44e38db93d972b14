"""Activation checkpointing: ``checkpoint(fn, *args)`` runs a block without keeping its activations
and runs it again in backward to get them (PyTorch's ``torch.utils.checkpoint.checkpoint``).

A network's memory in training is mostly the activations its ops save for backward. Wrapping a
block in ``checkpoint`` trades that memory for one more forward of the block: in forward the block
runs under ``no_grad`` (nothing of it is saved) while ``Function.apply`` notes every tensor the block
reads that requires grad -- its inputs, the parameters of its layers, tensors it closes over. The
block's outputs hang on one graph node whose inputs are those tensors. When backward reaches the
node it swaps each of them for a detached stand-in, runs the block again with grad on (with the
random state it had in forward, so dropout draws the same mask), backpropagates the incoming
gradients through that short graph, and hands the stand-ins' gradients to the real tensors. So
gradients are the same as without checkpointing, ``autograd.grad`` works through it, and a
parameter's gradient arrives once, through the normal walk.

Only the block's inputs (and the outputs) are kept between forward and backward. Layers that change
state when they run (BatchNorm's running statistics) update it twice, once per forward, as they do
in PyTorch. Differentiating twice (``create_graph=True``) through a checkpoint is not supported.
"""

from __future__ import annotations

from deepwise import random
from deepwise.autograd import engine, mode
from deepwise.autograd.function import Function, watch_inputs
from deepwise.tensor import Tensor


class _Block:
    """One checkpointed call: the function, its arguments and the tensors it read (kept alive, so
    their ids stay theirs until backward), and the random state it started with."""

    def __init__(self, fn, args, kwargs, preserve_rng_state):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.rng_state = random.get_rng_state() if preserve_rng_state else None
        self.read = {}  # id -> tensor that requires grad, in the order the block first read it
        self.single = True

    def note(self, op_args):
        for a in op_args:
            if isinstance(a, Tensor) and a.requires_grad and id(a) not in self.read:
                self.read[id(a)] = a
        return op_args

    def run(self):
        """The block's outputs as arrays, computed without a graph, noting what it reads."""
        with mode.no_grad(), watch_inputs(self.note):
            out = self.fn(*self.args, **self.kwargs)
        self.single = not isinstance(out, (tuple, list))
        outs = (out,) if self.single else tuple(out)
        for o in outs:
            if not isinstance(o, Tensor):
                raise TypeError(f"checkpoint: the function must return a Tensor or a tuple of Tensors, got a "
                                f"{type(o).__name__} among its outputs")
        return outs

    def gradients(self, grads):
        """Run the block again with grad on and backpropagate ``grads`` through it: the gradients
        of the tensors it read, in the order of ``self.read``."""
        read = list(self.read.values())
        stand_in = {id(t): Tensor._make(t.array, True) for t in read}

        def swap(op_args):
            return tuple(stand_in.get(id(a), a) if isinstance(a, Tensor) else a for a in op_args)

        args = swap(self.args)
        outer_state = random.get_rng_state() if self.rng_state is not None else None
        try:
            if self.rng_state is not None:
                random.set_rng_state(self.rng_state)
            with mode.enable_grad(), watch_inputs(swap):
                out = self.fn(*args, **self.kwargs)
        finally:
            if outer_state is not None:
                random.set_rng_state(outer_state)
        outs = (out,) if self.single else tuple(out)
        pairs = [(o, g) for o, g in zip(outs, grads) if isinstance(o, Tensor) and o.requires_grad and g is not None]
        if not pairs:
            return [None] * len(read)
        got = engine.grad([o for o, _ in pairs], [stand_in[id(t)] for t in read],
                          [Tensor._make(g) for _, g in pairs], allow_unused=True)
        return [None if g is None else g.array for g in got]


class Checkpoint(Function):
    """The node a checkpointed block's outputs hang on; its inputs are the tensors the block read."""

    @staticmethod
    def forward(ctx, block, outputs, *read):
        ctx.block = block
        return outputs[0] if block.single else outputs

    @staticmethod
    def backward(ctx, *grads):
        if mode.is_grad_enabled():
            raise RuntimeError("checkpoint: create_graph=True (double backward) through a checkpointed block is "
                               "not supported; call the block without checkpoint for higher derivatives")
        return (None, None, *ctx.block.gradients(grads))


def checkpoint(function, *args, use_reentrant=None, preserve_rng_state=True, **kwargs):
    """``function(*args, **kwargs)``, keeping none of its activations for backward: they are
    recomputed when backward reaches the block. Gradients equal those without checkpointing.

    ``preserve_rng_state`` (default True) replays the random state in the recomputation, so dropout
    masks match. ``use_reentrant`` is accepted for PyTorch's signature; deepwise has one mode, which
    behaves as PyTorch's ``use_reentrant=False`` (``autograd.grad`` and inputs without grad work)."""
    if not callable(function):
        raise TypeError(f"checkpoint: the first argument must be callable, got {type(function).__name__}")
    if use_reentrant not in (None, True, False):
        raise ValueError(f"checkpoint: use_reentrant must be True, False or None, got {use_reentrant!r}")
    if not mode.is_grad_enabled():
        return function(*args, **kwargs)  # no graph would be kept anyway
    block = _Block(function, args, kwargs, preserve_rng_state)
    outs = block.run()
    if not block.read:  # nothing in the block needs a gradient
        return outs[0] if block.single else outs
    made = Checkpoint.apply(block, tuple(o.array for o in outs), *block.read.values())
    return made if block.single else (made if isinstance(made, tuple) else (made,))


def checkpoint_sequential(functions, segments, input, use_reentrant=None, preserve_rng_state=True):
    """Run ``functions`` (an ``nn.Sequential`` or a list of callables) one after another in
    ``segments`` checkpointed chunks (PyTorch's ``checkpoint_sequential``); the last chunk runs
    normally, as its activations are needed right away."""
    functions = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if not isinstance(segments, int) or segments < 1:
        raise ValueError(f"checkpoint_sequential: segments must be a whole number >= 1, got {segments!r}")
    size = max(1, -(-len(functions) // segments))

    def chunk(fns):
        def run(x):
            for f in fns:
                x = f(x)
            return x

        return run

    starts = list(range(0, len(functions), size))
    for k, start in enumerate(starts):
        part = chunk(functions[start:start + size])
        last = k == len(starts) - 1
        input = part(input) if last else checkpoint(part, input, use_reentrant=use_reentrant,
                                                   preserve_rng_state=preserve_rng_state)
    return input


__all__ = ["checkpoint", "checkpoint_sequential"]
