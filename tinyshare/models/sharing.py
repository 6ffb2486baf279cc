"""Sharing structure of a model: reused blocks, unique parameters, sharing groups, twins.

Weights are tied by Parameter identity or by module reuse, never by ``.data =``.
``model.parameters()`` already yields each Parameter once, so unique parameter counts
come from it directly (as nanoGPT's ``get_num_params`` does).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from tinyshare.models.layers import SharedConv2d, SharedDepthwiseConv2d, SharedLinear


class Repeat(nn.Module):
    """Call one block ``times`` times in sequence: one set of weights, several depths.

    Shapes:
        x: the block's input; the block must map a shape to itself.
    """

    def __init__(self, block: nn.Module, times: int) -> None:
        super().__init__()
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        self.block = block
        self.times = times

    def extra_repr(self) -> str:
        return f"times={self.times}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = self.block(x)
        return x


@dataclass(frozen=True)
class SharedParameter:
    """One stored parameter and what it stands in for.

    Attributes:
        name: the parameter's qualified name, e.g. ``blocks.block.dw.weight``.
        shape: its stored shape.
        stored_params: elements stored (numel).
        call_sites: how many times the forward pass uses it.
        kind: "filter shared across channels", "block reused", "rank-1 linear".
        twin_params: elements the unshared twin stores in its place.
    """

    name: str
    shape: tuple[int, ...]
    stored_params: int
    call_sites: int
    kind: str
    twin_params: int


def unique_parameters(model: nn.Module) -> int:
    """Number of stored parameter elements, each shared Parameter counted once."""
    return sum(p.numel() for p in model.parameters())


def _layer_twin_numel(layer: nn.Module, pname: str) -> tuple[int, str] | None:
    p = getattr(layer, pname)
    if isinstance(layer, SharedDepthwiseConv2d) and pname == "weight":
        return p.numel() * layer.channels, "filter shared across channels"
    if isinstance(layer, SharedConv2d) and pname == "weight":
        return p.numel() * layer.in_channels, "filter shared across input channels"
    if isinstance(layer, SharedLinear) and pname in ("weight", "scale"):
        return (layer.in_features * layer.out_features if pname == "weight" else 0,
                "rank-1 linear")
    return None


def sharing_groups(model: nn.Module) -> list[SharedParameter]:
    """List every parameter that stands in for more than its own elements.

    A parameter inside a ``Repeat`` block has ``call_sites = times``; the twin stores
    it once per call site (and expanded, if the layer also shares across channels).
    """
    reps: dict[str, int] = {}
    for mname, m in model.named_modules():
        if isinstance(m, Repeat):
            reps[f"{mname}.block." if mname else "block."] = m.times
    groups: list[SharedParameter] = []
    for lname, layer in model.named_modules():
        for pname, p in layer.named_parameters(recurse=False):
            full = f"{lname}.{pname}" if lname else pname
            times = 1
            for prefix, t in reps.items():
                if full.startswith(prefix):
                    times *= t
            per_use = _layer_twin_numel(layer, pname)
            twin_numel, kind = per_use if per_use else (p.numel(), "block reused")
            if per_use is None and times == 1:
                continue
            if times > 1 and per_use is not None:
                kind = f"{kind}; block reused"
            groups.append(SharedParameter(
                name=full, shape=tuple(p.shape), stored_params=p.numel(),
                call_sites=times, kind=kind, twin_params=twin_numel * times,
            ))
    return groups


def unshared_twin(model: nn.Module) -> nn.Module:
    """The same topology with independent weights, holding the shared values broadcast.

    Every shared layer becomes its ordinary twin (``unshared_twin()``) and every
    ``Repeat`` becomes an ``nn.Sequential`` of independent copies, so the twin computes
    exactly the same function (up to float rounding) while storing every weight apart.
    """
    twin = copy.deepcopy(model)

    def _swap(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if isinstance(child, Repeat):
                copies = [copy.deepcopy(child.block) for _ in range(child.times)]
                for c in copies:
                    _swap(c)
                setattr(parent, name, nn.Sequential(*copies))
            elif isinstance(child, (SharedConv2d, SharedDepthwiseConv2d)):
                conv = child.unshared_twin()
                setattr(parent, name, _with_act(conv, child.activation))
            elif isinstance(child, SharedLinear):
                setattr(parent, name, child.unshared_twin())
            else:
                _swap(child)

    _swap(twin)
    return twin


def _with_act(conv: nn.Module, activation: str | None) -> nn.Module:
    return nn.Sequential(conv, nn.ReLU()) if activation == "relu" else conv
