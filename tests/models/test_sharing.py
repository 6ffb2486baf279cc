"""Sharing structure of the zoo: twins compute the same function, counts are exact."""

from __future__ import annotations

import pytest
import torch

from tinyshare.models.sharing import sharing_groups, unique_parameters, unshared_twin
from tinyshare.models.zoo import MODELS, build_model


# Each zoo model at its reference input size where it has one.
SHAPES = {"ds_cnn": (1, 49, 10), "resnet8": (3, 32, 32), "mobilenet_v1_025": (1, 96, 96)}


@pytest.fixture(params=MODELS.names())
def model(request):
    torch.manual_seed(0)
    shape = SHAPES.get(request.param, (1, 8, 8))
    m = build_model(request.param, input_shape=shape, num_classes=10, width=8).eval()
    m.example_shape = shape
    return m


def test_twin_computes_the_same_function(model):
    x = torch.randn(4, *model.example_shape)
    torch.testing.assert_close(unshared_twin(model)(x), model(x), atol=1e-5, rtol=1e-5)


def test_twin_shares_nothing(model):
    twin = unshared_twin(model)
    ids = [id(p) for p in twin.parameters()]
    assert len(ids) == len(set(ids))
    assert not {id(p) for p in twin.parameters()} & {id(p) for p in model.parameters()}


def test_sharing_groups_account_for_the_twin_exactly(model):
    groups = sharing_groups(model)
    saved = sum(g.twin_params - g.stored_params for g in groups)
    assert unique_parameters(unshared_twin(model)) - unique_parameters(model) == saved


def test_digits_cnn_counts():
    m = build_model("digits_cnn", input_shape=(1, 8, 8), num_classes=10, width=16)
    # stem 16·9+16, block: dw 9+16, pw 16·16+16, head 16·16·10+10
    assert unique_parameters(m) == 160 + 25 + 272 + 2570
    # twin: two blocks, each with a 16-channel depthwise conv: 2·(16·9+16 + 272)
    assert unique_parameters(unshared_twin(m)) == 160 + 2 * (160 + 272) + 2570
    by_name = {g.name: g for g in sharing_groups(m)}
    assert by_name["blocks.block.dw.weight"].call_sites == 2
    assert by_name["blocks.block.dw.weight"].twin_params == 2 * 16 * 9
