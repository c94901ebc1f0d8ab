"""The matrix run shared by ``loader``, ``train``, ``predict`` and ``footage``: per model, its model-only baseline
first, then every configuration, each row divided by that baseline; in one process (one compile per model, one
copy of each footage set), under ``--budget-s``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence

from . import baseline, loading, matrix, predicting, training
from .record import Record

PARTS = ("loader", "train", "predict")


def run(args: argparse.Namespace, record: Record, parts: Sequence[str]) -> None:
    training.setup_torch(args)
    configs = matrix.configs(args)
    matrix.check_devices(configs)
    record.info("configurations", len(configs))
    sources = matrix.Sources(args, record)
    models = training.Models(args)
    for name in dict.fromkeys(c.model for c in configs):
        model = models.get(name)
        own = [c for c in configs if c.model == name]
        if "loader" in parts or "train" in parts:
            res = record.step(f"{name} model_only", baseline.model_only_training, args, model, args.batch_size,
                              cost_s=30)
            if res and res.get("clips_per_s"):
                record.baseline("model_only_training", res.pop("clips_per_s"), "clips/s", group=name, **res)
        for c in own:
            fields = dataclasses.asdict(c)
            if "loader" in parts:
                res = record.step(f"{name} loader {c.label()}", _loader, args, name, sources, c, cost_s=15)
                _row(record, f"loader {c.label()}", res, name, fields)
            if "train" in parts:
                res = record.step(f"{name} train {c.label()}", _train, args, model, sources, c, cost_s=20)
                _row(record, f"train {c.label()}", res, name, fields)
        if "predict" in parts:
            _predict(args, record, sources, model, name, own)
        del model
        models.release(name)  # the next model's peak memory is its own


def _loader(args: argparse.Namespace, backbone: str, sources: matrix.Sources, c: matrix.Config) -> dict[str, Any]:
    return loading.measure_config(args, backbone, sources.data_kwargs(c))


def _train(args: argparse.Namespace, model: Any, sources: matrix.Sources, c: matrix.Config) -> dict[str, Any]:
    return training.measure_config(args, model, sources.data_kwargs(c), c.steps_per_epoch)


def _row(record: Record, label: str, res: dict[str, Any] | None, group: str, fields: dict[str, Any]) -> None:
    if res and res.get("clips_per_s") is not None:
        record.row(label, res.pop("clips_per_s"), "clips/s", group=group, config=fields, **res)


def _predict(args: argparse.Namespace, record: Record, sources: matrix.Sources, model: Any, name: str,
             own: list[matrix.Config]) -> None:
    """Files/s of ``predict`` per footage set, store and workers, against the model's forward pass on in-memory
    clips (one clip per file). Steps per epoch and data overrides are training options: predict takes neither."""
    group = f"{name} predict"
    res = record.step(f"{group} model_only", baseline.model_only_inference, model, args.predict_batch_size,
                      args.predict_batches, cost_s=10)
    if res:
        record.baseline("model_only_inference", res.pop("clips_per_s"), "files/s", group=group, **res)
    seen = set()
    for c in own:
        c = dataclasses.replace(c, steps_per_epoch=None, data_variant="", decode_device="cpu")  # predict: CPU
        if c in seen:
            continue
        seen.add(c)
        kw = record.step(f"{group} {c.label()} data", sources.data_kwargs, c)
        if kw is None:
            continue
        res = record.step(f"{group} {c.label()}", predicting.measure_folder, args, model, kw["train_folder"], c.workers,
                          kw.get("decoder", "auto"), cost_s=10)
        if res:
            record.row(c.label(), res.pop("files_per_s"), "files/s", group=group, config=dataclasses.asdict(c), **res)
