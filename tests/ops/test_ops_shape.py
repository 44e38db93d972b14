"""Ops that move elements: reshape/view/flatten/squeeze, transpose/permute, expand/repeat,
cat/stack/split/chunk, pad (all modes), flip, tril/triu."""

import pytest

import deepwise as dw

torch = pytest.importorskip("torch")
F = torch.nn.functional

from parity.helpers import helper_test_op  # noqa: E402

SAME = {  # one lambda for both frameworks
    "reshape": ((2, 3, 4), lambda x: x.reshape(6, 4)),
    "reshape_tuple": ((2, 3, 4), lambda x: x.reshape((4, -1))),
    "reshape_to_0d": ((1, 1), lambda x: x.reshape(())),
    "view": ((2, 3, 4), lambda x: x.view(-1)),
    "view_as": ((2, 3, 4), lambda x: x.view(3, 8) * 2),
    "flatten": ((2, 3, 4), lambda x: x.flatten()),
    "flatten_1": ((2, 3, 4, 2), lambda x: x.flatten(1)),
    "flatten_1_2": ((2, 3, 4, 2), lambda x: x.flatten(1, 2)),
    "flatten_neg": ((2, 3, 4, 2), lambda x: x.flatten(-3, -2)),
    "squeeze": ((2, 1, 3, 1), lambda x: x.squeeze()),
    "squeeze_dim": ((2, 1, 3, 1), lambda x: x.squeeze(1)),
    "squeeze_neg": ((2, 1, 3, 1), lambda x: x.squeeze(-1)),
    "squeeze_non1": ((2, 1, 3, 1), lambda x: x.squeeze(0)),
    "squeeze_tuple": ((2, 1, 3, 1), lambda x: x.squeeze((1, 3))),
    "unsqueeze0": ((2, 3), lambda x: x.unsqueeze(0)),
    "unsqueeze_last": ((2, 3), lambda x: x.unsqueeze(-1)),
    "unsqueeze_mid": ((2, 3), lambda x: x.unsqueeze(1)),
    "transpose": ((2, 3, 4), lambda x: x.transpose(0, 2)),
    "transpose_neg": ((2, 3, 4), lambda x: x.transpose(-1, -2)),
    "T": ((3, 4), lambda x: x.T),
    "mT": ((2, 3, 4), lambda x: x.mT),
    "permute": ((2, 3, 4), lambda x: x.permute(2, 0, 1)),
    "permute_tuple": ((2, 3, 4), lambda x: x.permute((1, 2, 0))),
    "permute_neg": ((2, 3, 4), lambda x: x.permute(-1, 0, 1)),
    "expand": ((3, 1), lambda x: x.expand(3, 4)),
    "expand_neg1": ((3, 1), lambda x: x.expand(2, -1, 5)),
    "expand_tuple": ((1, 4), lambda x: x.expand((3, 4))),
    "expand_0d": ((), lambda x: x.expand(2, 3)),
    "repeat": ((2, 3), lambda x: x.repeat(2, 3)),
    "repeat_more_dims": ((2, 3), lambda x: x.repeat(2, 1, 2)),
    "repeat_ones": ((2, 3), lambda x: x.repeat(1, 1)),
    "flip0": ((2, 3, 4), lambda x: x.flip(0)),
    "flip_tuple": ((2, 3, 4), lambda x: x.flip((0, 2))),
    "tril": ((4, 4), lambda x: x.tril()),
    "tril_k1": ((3, 5), lambda x: x.tril(1)),
    "tril_km1_batched": ((2, 4, 3), lambda x: x.tril(-1)),
    "triu": ((4, 4), lambda x: x.triu()),
    "triu_k1": ((5, 3), lambda x: x.triu(1)),
    "triu_km1_batched": ((2, 3, 4), lambda x: x.triu(-1)),
    "split_int": ((5, 3), lambda x: x.split(2)),
    "split_dim1": ((3, 5), lambda x: x.split(2, dim=1)),
    "split_sections": ((6, 2), lambda x: x.split([1, 3, 2])),
    "split_one_piece": ((3, 2), lambda x: x.split(4)),
    "chunk": ((7, 2), lambda x: x.chunk(3)),
    "chunk_dim": ((2, 6), lambda x: x.chunk(2, dim=-1)),
    "chunk_uneven": ((2, 5), lambda x: x.chunk(3, 1)),
}


@pytest.mark.parametrize("name", list(SAME))
def test_shape_ops(name):
    shape, fn = SAME[name]
    helper_test_op([shape], fn)


def test_only_some_split_pieces_used():
    helper_test_op([(6, 2)], lambda x: x.split(2)[1] * 3.0, lambda x: x.split(2)[1] * 3.0)
    helper_test_op([(6, 2)], lambda x: x.chunk(3)[0].sum() + x.chunk(3)[2].sum(),
                   lambda x: x.chunk(3)[0].sum() + x.chunk(3)[2].sum())


def test_functional_forms():
    helper_test_op([(2, 3, 4)], lambda x: dw.reshape(x, (4, 6)), lambda x: torch.reshape(x, (4, 6)))
    helper_test_op([(2, 3, 4)], lambda x: dw.flatten(x, 1), lambda x: torch.flatten(x, 1))
    helper_test_op([(2, 1)], lambda x: dw.squeeze(x, 1), lambda x: torch.squeeze(x, 1))
    helper_test_op([(2,)], lambda x: dw.unsqueeze(x, 0), lambda x: torch.unsqueeze(x, 0))
    helper_test_op([(2, 3)], lambda x: dw.transpose(x, 0, 1), lambda x: torch.transpose(x, 0, 1))
    helper_test_op([(2, 3)], lambda x: dw.permute(x, (1, 0)), lambda x: torch.permute(x, (1, 0)))
    helper_test_op([(2, 3)], lambda x: dw.flip(x, [1]), lambda x: torch.flip(x, [1]))
    helper_test_op([(3, 3)], lambda x: dw.tril(x), lambda x: torch.tril(x))
    helper_test_op([(3, 3)], lambda x: dw.triu(x, 1), lambda x: torch.triu(x, 1))
    helper_test_op([(2, 3), (4, 2, 3)], lambda x, y: x.expand_as(y) * y, lambda x, y: x.expand_as(y) * y)
    helper_test_op([(6,), (2, 3)], lambda x, y: x.view_as(y) * y, lambda x, y: x.view_as(y) * y)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    helper_test_op(shapes, lambda a, b, c: dw.cat([a, b, c], dim), lambda a, b, c: torch.cat([a, b, c], dim))


def test_cat_different_sizes_and_aliases():
    helper_test_op([(2, 3), (4, 3), (1, 3)], lambda a, b, c: dw.cat((a, b, c)), lambda a, b, c: torch.cat((a, b, c)))
    helper_test_op([(2, 1), (2, 3)], lambda a, b: dw.concat([a, b], dim=1), lambda a, b: torch.concat([a, b], dim=1))
    helper_test_op([(2, 1), (2, 3)], lambda a, b: dw.concatenate([a, b], 1), lambda a, b: torch.cat([a, b], 1))
    helper_test_op([(3,)], lambda a: dw.cat([a, a * 2]), lambda a: torch.cat([a, a * 2]))  # same tensor twice


def test_cat_mixed_with_constant():
    helper_test_op([(2, 3)], lambda a: dw.cat([a, dw.ones(1, 3)]), lambda a: torch.cat([a, torch.ones(1, 3)]))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim):
    helper_test_op([(2, 3), (2, 3), (2, 3)], lambda a, b, c: dw.stack([a, b, c], dim),
                   lambda a, b, c: torch.stack([a, b, c], dim))


PADS = [(1, 2), (2, 1, 1, 0), (0, 0, 1, 1), (1, 1, 2, 0, 1, 1)]


@pytest.mark.parametrize("pad", PADS, ids=str)
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode, pad):
    shape = {2: (2, 3, 4), 4: (2, 2, 3, 4), 6: (1, 2, 3, 4, 3)}[len(pad)]  # torch's rank rules for non-constant
    helper_test_op([shape], lambda x: dw.pad(x, pad, mode=mode), lambda x: F.pad(x, pad, mode=mode))


def test_pad_constant_value_and_3d_input():
    helper_test_op([(2, 3)], lambda x: dw.pad(x, (1, 1), value=-2.5), lambda x: F.pad(x, (1, 1), value=-2.5))
    for mode in ["reflect", "replicate", "circular"]:
        helper_test_op([(2, 3, 4)], lambda x, m=mode: dw.pad(x, (3, 2), mode=m),
                       lambda x, m=mode: F.pad(x, (3, 2), mode=m))
