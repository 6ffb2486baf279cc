"""Per-module quantization settings, checked against weight sharing before any quantizing.

A config may override the weight quantization of single modules::

    [quantize.layers."blocks.block.pw"]
    per_channel = false

A shared weight has one int8 tensor with one scale set, so every module that reads it must
get the same setting. Two modules tied to one Parameter with different settings is a
config error, reported with the parameter and both modules; tinyshare never picks one.
"""

from __future__ import annotations

from collections.abc import Mapping

from tinyshare.errors import ConfigError

__all__ = ["per_channel_by_module"]


def _weighted_modules(model) -> dict[str, list[tuple[str, object]]]:
    """``{module fqn: [(parameter name, Parameter), ...]}`` for every module that owns
    parameters directly, tied modules included (``remove_duplicate=False``)."""
    out: dict[str, list[tuple[str, object]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        params = list(module.named_parameters(recurse=False))
        if params and name:
            out[name] = params
    return out


def per_channel_by_module(model, per_channel: bool, layers: Mapping[str, bool]
                          ) -> dict[str, bool]:
    """Resolve the weight granularity of every module that owns parameters.

    Args:
        model: the float ``torch.nn.Module`` (shared form).
        per_channel: the global setting (``quantize.per_channel``).
        layers: module fqn → its ``per_channel`` (``quantize.layers``; a module not
            listed keeps the global setting).

    Returns:
        ``{module fqn: per_channel}`` for every module with parameters.

    Raises:
        ConfigError: a name in ``layers`` is not a module with parameters, or a shared
            Parameter would get two different settings from the modules that read it.
    """
    modules = _weighted_modules(model)
    unknown = sorted(set(layers) - set(modules))
    if unknown:
        known = ", ".join(sorted(modules)[:8]) + (", ..." if len(modules) > 8 else "")
        raise ConfigError(f"quantize.layers: {', '.join(repr(u) for u in unknown)} is not a "
                          f"module with weights in this model; expected one of: {known}")
    resolved: dict[str, bool] = {}
    for name in modules:
        resolved[name] = bool(layers.get(name, per_channel))
    owner: dict[int, tuple[str, str]] = {}  # id(Parameter) -> (module, parameter name)
    for name, params in modules.items():
        for pname, p in params:
            first = owner.setdefault(id(p), (name, pname))
            if resolved[first[0]] != resolved[name]:
                raise ConfigError(
                    f"quantize.layers: shared weight '{first[0]}.{first[1]}' is read by "
                    f"module '{first[0]}' (per_channel = {str(resolved[first[0]]).lower()}) "
                    f"and module '{name}' (per_channel = {str(resolved[name]).lower()}); a "
                    "shared weight has one int8 tensor with one scale set, so give both "
                    "modules the same per_channel")
    return resolved
