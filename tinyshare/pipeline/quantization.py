"""The QUANTIZE stage's choices, apart from the stage itself: the deploy-form copy, the
per-module settings (``quantize.layers``) checked against sharing, PTQ or QAT of one model,
and the baselines a QAT run is measured against."""

from __future__ import annotations

from tinyshare.config import RunConfig, TrainConfig
from tinyshare.data.splits import DataSplits
from tinyshare.pipeline.train import Progress, relabel, top1, train_model

__all__ = ["check_model_settings", "deploy_copy", "layer_overrides", "qat_baselines",
           "quantize_one"]


def deploy_copy(model):
    """A copy of ``model`` with every shared layer in its deploy form, in eval mode."""
    import copy

    from tinyshare.models.layers import switch_to_deploy

    return switch_to_deploy(copy.deepcopy(model)).eval()


def layer_overrides(cfg: RunConfig, twin=None) -> dict[str, bool]:
    """``quantize.layers`` as ``{module fqn: per_channel}``; with ``twin`` (the unshared
    twin), only the names it has: its copies of a reused block are named apart and keep
    the global setting."""
    layers = {k: v.per_channel for k, v in cfg.quantize.layers.items()
              if v.per_channel is not None}
    if twin is not None:
        names = {n for n, _ in twin.named_modules()}
        layers = {k: v for k, v in layers.items() if k in names}
    return layers


def check_model_settings(cfg: RunConfig, splits: DataSplits) -> None:
    """Check the settings that depend on the configured model, before training:
    ``quantize.layers`` against its sharing, and that ``[cluster]`` clusters something.

    Raises:
        ConfigError: a ``quantize.layers`` name is not a module with weights, a shared
            weight would get two settings (``tinyshare.quantize.settings``), or no weight
            has ``cluster.min_elements`` elements.
    """
    from tinyshare.errors import ConfigError
    from tinyshare.models.zoo import build_model
    from tinyshare.quantize.cluster import clusterable_weights
    from tinyshare.quantize.settings import per_channel_by_module

    model = build_model(cfg.model.name, input_shape=splits.input_shape,
                        num_classes=splits.num_classes, width=cfg.model.width)
    per_channel_by_module(model, cfg.quantize.per_channel, layer_overrides(cfg))
    if cfg.cluster is not None and not clusterable_weights(model, cfg.cluster.min_elements):
        largest = max(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
        raise ConfigError(f"cluster.min_elements = {cfg.cluster.min_elements} leaves no weight "
                          f"of model {cfg.model.name!r} to cluster; its largest weight has "
                          f"{largest} elements")


def quantize_one(cfg: RunConfig, model, splits: DataSplits, twin: bool,
                  progress: Progress | None):
    q = cfg.quantize
    layers = layer_overrides(cfg, model if twin else None)
    deploy = deploy_copy(model)
    if q.method == "ptq":
        from tinyshare.quantize.ptq import quantize_ptq

        return quantize_ptq(deploy, splits.x_calib, per_channel=q.per_channel,
                            layers=layers, progress=None if twin else progress)
    from tinyshare.quantize.qat import quantize_qat

    label = "qat twin" if twin else "qat"
    schedule = TrainConfig(epochs=q.qat.epochs, batch_size=q.qat.batch_size, lr=q.qat.lr)
    return quantize_qat(
        deploy, splits.x_train,
        lambda m: train_model(m, splits, schedule, cfg.seed,
                              relabel(progress, label)),
        per_channel=q.per_channel, layers=layers)


def qat_baselines(cfg: RunConfig, model, splits: DataSplits,
                   progress: Progress | None) -> tuple[float, float]:
    """PyTorch int8 test top-1 of (PTQ of ``model``, PTQ of ``model`` fine-tuned in float
    with the QAT schedule): what QAT is measured against."""
    import copy

    ptq_cfg = cfg.model_copy(update={"quantize": cfg.quantize.model_copy(
        update={"method": "ptq"})})
    ptq = quantize_one(ptq_cfg, model, splits, False, None)
    control = copy.deepcopy(model)
    q = cfg.quantize.qat
    train_model(control, splits, TrainConfig(epochs=q.epochs, batch_size=q.batch_size,
                                             lr=q.lr), cfg.seed,
                relabel(progress, "qat control"))
    ctl = quantize_one(ptq_cfg, control, splits, False, None)
    return (top1(ptq.run(splits.x_test), splits.y_test),
            top1(ctl.run(splits.x_test), splits.y_test))
