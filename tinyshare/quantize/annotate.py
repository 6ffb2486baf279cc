"""A node-by-node PT2E annotator with TFLite int8 semantics that keeps sharing true.

litert-torch's ``PT2EQuantizer`` finds patterns through source partitions. A module
called at several depths defeats that: the second call of a shared conv, or a residual
add of a reused block, is left in float (docs/toolchain.md, "Shared module called twice";
field case C1). This annotator walks the aten graph node by node instead, so every
call site is annotated on its own, and uses litert-torch's own quantization specs so
that its converter reads the result as usual.

Rules (TFLite int8 spec):
    * conv2d / linear: int8 per-tensor affine input, int8 per-channel symmetric weight
      (axis 0), float bias (the converter derives the int32 bias as
      input_scale × weight_scale); a ReLU that is the only user is fused, so the
      output observer sits after the ReLU.
    * add / mul: int8 inputs (constants included), int8 output, ReLU fused likewise.
    * max_pool2d and layout ops (permute, reshape, view, flatten, ...): output shares
      the input's scale and zero point, as TFLite requires.
    * sum / mean / adaptive_avg_pool2d / standalone relu: int8 in, int8 out.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.fx import GraphModule, Node

from tinyshare.artifacts.models import COMPUTE_OPS

_aten = torch.ops.aten

_COMPUTE = {_aten.conv2d.default, _aten.linear.default, _aten.convolution.default}
assert {str(t) for t in _COMPUTE} == set(COMPUTE_OPS)  # one list, two spellings
_BINARY = {_aten.add.Tensor, _aten.mul.Tensor}
_RELU = {_aten.relu.default, _aten.relu_.default}
_SHARE = {
    _aten.max_pool2d.default,
    _aten.permute.default,
    _aten.reshape.default,
    _aten.view.default,
    _aten.flatten.using_ints,
    _aten.squeeze.dim,
    _aten.squeeze.dims,
    _aten.unsqueeze.default,
    _aten.clone.default,
    _aten.contiguous.default,
}
_REQUANT = {
    _aten.sum.dim_IntList,
    _aten.mean.dim,
    _aten.adaptive_avg_pool2d.default,
}


def _fused_relu(node: Node) -> Node | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_function" and users[0].target in _RELU:
        return users[0]
    return None


def annotate_graph(gm: GraphModule, config, module_configs: Mapping[str, object] | None = None
                   ) -> GraphModule:
    """Annotate every supported node of ``gm`` in place.

    Args:
        gm: an aten-level ``GraphModule`` from ``torch.export`` whose weight
            ``get_attr`` nodes each have one user (see ``untie_shared_uses``).
        config: a litert-torch ``QuantizationConfig`` (static, int8).
        module_configs: ``{module fqn: QuantizationConfig}`` whose weight spec replaces
            ``config``'s for the compute ops that module calls (the innermost module of the
            node's ``nn_module_stack``); see ``tinyshare.quantize.settings``.

    Returns:
        ``gm``, annotated.
    """
    from litert_torch.quantize.pt2e_quantizer_utils import (
        get_bias_qspec,
        get_input_act_qspec,
        get_output_act_qspec,
        get_weight_qspec,
    )
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    act_in = get_input_act_qspec(config)
    act_out = get_output_act_qspec(config)
    fused: set[Node] = set()

    def _module_config(node: Node):
        stack = node.meta.get("nn_module_stack") or {}
        if not module_configs or not stack:
            return config
        return module_configs.get(list(stack.values())[-1][0], config)

    def set_output(node: Node, input_map: dict) -> None:
        relu = _fused_relu(node)
        if relu is None:
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map=input_map, output_qspec=act_out, _annotated=True
            )
            return
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map=input_map, _annotated=True
        )
        relu.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=act_out, _annotated=True
        )
        fused.add(relu)

    for node in gm.graph.nodes:
        if node.op != "call_function" or node in fused:
            continue
        target = node.target
        if target in _COMPUTE:
            x, w = node.args[0], node.args[1]
            input_map = {x: act_in, w: get_weight_qspec(_module_config(node))}
            bias = node.args[2] if len(node.args) > 2 else None
            if isinstance(bias, Node):
                input_map[bias] = get_bias_qspec(config)
            set_output(node, input_map)
        elif target in _BINARY:
            input_map = {a: act_in for a in node.args[:2] if isinstance(a, Node)}
            set_output(node, input_map)
        elif target in _SHARE or target in _REQUANT or target in _RELU:
            x = node.args[0]
            if not isinstance(x, Node) or x.op == "get_attr":
                # A reshaped constant is a weight seen through a view: the compute op
                # that reads it gives it the weight spec; never an activation spec.
                continue
            out = SharedQuantizationSpec((x, node)) if target in _SHARE else act_out
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={x: act_in}, output_qspec=out, _annotated=True
            )
    return gm


def untie_shared_uses(gm: GraphModule) -> dict[str, int]:
    """Give every use of a shared parameter its own ``get_attr`` node, in place.

    PT2E observes a weight once per node; a ``get_attr`` with two users would be
    annotated for the first call site only. After this pass every call site has its
    own reference to the *same* stored tensor, so every call site is quantized while
    the weight stays one tensor (the converters deduplicate identical constants, and
    our ONNX pass maps every reference back to one initializer).

    Returns:
        ``{parameter target: number of call sites}`` for targets used more than once.
    """
    graph = gm.graph
    shared: dict[str, int] = {}
    for node in list(graph.nodes):
        if node.op != "get_attr" or len(node.users) < 2:
            continue
        users = list(node.users)
        shared[node.target] = len(users)
        for user in users[1:]:
            with graph.inserting_before(user):
                ref = graph.get_attr(node.target)
            ref.meta = dict(node.meta)
            user.replace_input_with(node, ref)
    graph.lint()
    gm.recompile()
    return shared
