"""Finetune strategies freeze and unfreeze exactly what they say at the epochs they say, in real short fits, and
the LR schedule keeps driving the parameter groups they add; layer decay gives VideoMAE's per-layer rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import BaseFinetuning

from flashvid import Trainer, VideoClassificationData, VideoClassifier
from flashvid.finetuning import FreezeUnfreeze, UnfreezeMilestones, resolve_strategy
from flashvid.models import get_backbone_spec

LR = 1e-2
WD = 0.05
EPOCHS = 3


class StageRecorder(L.Callback):
    """At each epoch's first batch (after every strategy's epoch-start hook) and at the end of training: which
    stage parameters are trainable, the weights and BatchNorm statistics, and the optimizer's groups."""

    def __init__(self):
        self.trainable: list[list[bool]] = []
        self.snapshots: list[list[dict[str, torch.Tensor]]] = []
        self.groups: list[list[dict[str, Any]]] = []
        self.lrs: list[list[float]] = []

    def _snapshot(self, module: L.LightningModule) -> None:
        self.snapshots.append([{k: v.detach().clone() for k, v in s.state_dict().items()}
                               for s in module.backbone.stages])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        opt = trainer.optimizers[0]
        self.lrs.append([g["lr"] for g in opt.param_groups])
        if batch_idx != 0:
            return
        flags = [{p.requires_grad for p in s.parameters()} for s in pl_module.backbone.stages]
        self.trainable.append([f.pop() if len(f) == 1 else None for f in flags])  # None: partly frozen
        self.groups.append([{**{k: v for k, v in g.items() if k != "params"}, "params": {id(p) for p in g["params"]}}
                            for g in opt.param_groups])
        self._snapshot(pl_module)

    def on_train_end(self, trainer, pl_module):
        self._snapshot(pl_module)

    def changed(self, epoch: int) -> list[bool]:
        """Per stage: did any weight or BatchNorm statistic change during ``epoch``."""
        before, after = self.snapshots[epoch], self.snapshots[epoch + 1]
        return [any(not torch.equal(b[k], a[k]) for k in b) for b, a in zip(before, after)]


def fit(demo_root: Path, tmp_path: Path, strategy, epochs: int = EPOCHS, ckpt_path: str | None = None,
        save_checkpoint: bool = False) -> tuple[VideoClassifier, StageRecorder]:
    """A short real fit of tiny_r2plus1d (4 frames of 32 px, 2 batches of 2 clips per epoch)."""
    data = VideoClassificationData.from_folders(demo_root / "train", batch_size=2, num_workers=0)
    torch.manual_seed(0)
    model = VideoClassifier("tiny_r2plus1d", labels=data.labels, learning_rate=LR, weight_decay=WD,
                            data={"num_frames": 4, "crop_size": 32})
    recorder = StageRecorder()
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=save_checkpoint, max_epochs=epochs, limit_train_batches=2,
                      limit_val_batches=0, num_sanity_val_steps=0, callbacks=[recorder],
                      default_root_dir=str(tmp_path))
    trainer.finetune(model, datamodule=data, strategy=strategy, ckpt_path=ckpt_path)
    return model, recorder


# tiny_r2plus1d's stages: 4 conv blocks, then the head
HEAD = [False, False, False, False, True]
ALL = [True] * 5
LAST_TWO = [False, False, True, True, True]


@pytest.mark.parametrize("strategy, expected", [
    ("no_freeze", [ALL] * EPOCHS),
    ("freeze", [HEAD] * EPOCHS),
    (("freeze_unfreeze", 1), [HEAD, ALL, ALL]),
    (("unfreeze_milestones", ((1, 2), 2)), [HEAD, LAST_TWO, ALL]),
    (("layer_decay", 0.75), [ALL] * EPOCHS),
], ids=["no_freeze", "freeze", "freeze_unfreeze", "unfreeze_milestones", "layer_decay"])
def test_strategy_trains_what_it_says(strategy, expected, demo_root: Path, tmp_path: Path):
    model, rec = fit(demo_root, tmp_path, strategy)
    assert rec.trainable == expected
    for epoch in range(EPOCHS):
        # frozen stages stay bit-identical, BatchNorm running statistics included; trainable ones move
        assert rec.changed(epoch) == expected[epoch], f"epoch {epoch}"
        in_optimizer = set().union(*(g["params"] for g in rec.groups[epoch]))
        for stage, trainable in zip(model.backbone.stages, expected[epoch]):
            assert all((id(p) in in_optimizer) == trainable for p in stage.parameters())
    if strategy == ("layer_decay", 0.75):  # stage i of 5 at lr * 0.75 ** (4 - i)
        for i, stage in enumerate(model.backbone.stages):
            for p in stage.parameters():
                assert _group_of(rec.groups[0], p)["initial_lr"] == pytest.approx(LR * 0.75 ** (4 - i))


def _group_of(groups: list[dict[str, Any]], param: torch.nn.Parameter) -> dict[str, Any]:
    (group,) = [g for g in groups if id(param) in g["params"]]
    return group


@pytest.mark.parametrize("strategy", [("freeze_unfreeze", 1), ("unfreeze_milestones", ((1, 2), 2))],
                         ids=["freeze_unfreeze", "unfreeze_milestones"])
def test_unfrozen_groups_follow_the_schedule(strategy, demo_root: Path, tmp_path: Path):
    """Groups added mid-training (a plain LambdaLR crashed on them) start at a tenth of the head's rate, keep the
    no-decay split for biases and norms, and the cosine schedule drives them from then on."""
    model, rec = fit(demo_root, tmp_path, strategy, epochs=3)
    head_weight = model.backbone.head.weight
    first_block = model.backbone.stages[0]
    conv = next(p for p in first_block.parameters() if p.ndim > 1)
    norm = next(p for p in first_block.parameters() if p.ndim == 1)
    final = rec.groups[-1]
    head_group, conv_group, norm_group = (_group_of(final, p) for p in (head_weight, conv, norm))
    assert conv_group["initial_lr"] == pytest.approx(LR * 0.1)
    assert (conv_group["weight_decay"], norm_group["weight_decay"], head_group["weight_decay"]) == (WD, 0.0, WD)
    # at every step after the unfreeze the body's rate is a tenth of the head's: both follow the schedule
    unfrozen_steps = [lrs for lrs in rec.lrs if len(lrs) == len(final)]
    assert len(unfrozen_steps) >= 2
    i_head, i_conv = final.index(head_group), final.index(conv_group)
    for lrs in unfrozen_steps:
        assert lrs[i_conv] == pytest.approx(lrs[i_head] * 0.1)
    assert unfrozen_steps[-1][i_head] != unfrozen_steps[0][i_head]  # the schedule moved


@pytest.mark.parametrize("strategy, events", [
    (("freeze_unfreeze", 1), [(1, "the whole backbone", range(4))]),
    (("unfreeze_milestones", ((1, 2), 2)), [(1, "the last 2 of 4 stages", range(2, 4)),
                                            (2, "the remaining 2 of 4 stages", range(2))]),
], ids=["freeze_unfreeze", "unfreeze_milestones"])
def test_each_unfreeze_is_logged_once_with_its_parameters(strategy, events, demo_root: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    """A log said nothing when the backbone joined: one INFO line per event, its epoch, stages and parameters."""
    import logging

    with caplog.at_level(logging.INFO, logger="flashvid.finetuning"):
        model, _ = fit(demo_root, tmp_path, strategy)
    lines = [r.getMessage() for r in caplog.records if r.name == "flashvid.finetuning"]
    stages = model.backbone.stages
    assert lines == [f"flashvid finetune: epoch {epoch}: unfroze {what} "
                     f"({sum(p.numel() for i in which for p in stages[i].parameters()):,} parameters), "
                     "at 0.1 x the learning rate" for epoch, what, which in events]


def test_resuming_after_the_unfreeze_keeps_training_the_backbone(demo_root: Path, tmp_path: Path):
    """Lightning restores the added groups on resume but not requires_grad: the body must not silently freeze."""
    fit(demo_root, tmp_path / "first", ("freeze_unfreeze", 1), epochs=2, save_checkpoint=True)
    (ckpt,) = (tmp_path / "first").rglob("*.ckpt")
    resumed, rec = fit(demo_root, tmp_path / "resumed", ("freeze_unfreeze", 1), epochs=3, ckpt_path=str(ckpt),
                       save_checkpoint=True)
    assert rec.trainable == [ALL]
    assert rec.changed(0) == ALL
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    first_conv = "backbone.model.blocks.0.0.weight"
    assert not torch.equal(saved[first_conv], resumed.state_dict()[first_conv])


class FirstStageLater(BaseFinetuning):
    """A user's own strategy with Lightning's stock unfreeze_and_add_param_group (groups without initial_lr)."""

    def freeze_before_training(self, pl_module):
        self.freeze(pl_module.backbone.stages[0])

    def finetune_function(self, pl_module, epoch, optimizer):
        if epoch == 1:
            self.unfreeze_and_add_param_group(pl_module.backbone.stages[0], optimizer)


def test_a_users_base_finetuning_callback_runs_with_the_schedule(demo_root: Path, tmp_path: Path):
    """Its added group is scheduled too: it stays at a tenth of the group it was derived from."""
    model, rec = fit(demo_root, tmp_path, FirstStageLater(), epochs=3)
    assert len(rec.groups[1]) == len(rec.groups[0]) + 1
    after = [lrs for lrs in rec.lrs if len(lrs) == len(rec.groups[1])]
    assert len(after) == 4
    for lrs in after:
        assert lrs[-1] == pytest.approx(lrs[0] * 0.1)
    assert after[-1][0] != after[0][0]
    assert rec.changed(2)[0]


def test_layer_decay_rates_match_videomae_recipe():
    """VideoMAE's recipe with N encoder layers: embeddings lr * d^(N+1), layer i (from 0) lr * d^(N-i),
    the final norm and the head lr; no weight decay on biases and norms. Read from configure_optimizers with
    the strategy's callback applied, as a fit would."""
    decay = 0.75
    spec = get_backbone_spec("videomae_small")
    model = VideoClassifier("videomae_small", num_classes=3, backbone_kwargs=spec.test_kwargs, learning_rate=LR,
                            weight_decay=WD)
    trainer = Trainer(accelerator="cpu", logger=False, max_steps=20, max_epochs=-1)
    model.trainer = trainer
    resolve_strategy(("layer_decay", decay)).setup(trainer, model, "fit")
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    groups = [{**g, "params": {id(p) for p in g["params"]}} for g in optimizer.param_groups]

    hf = model.backbone.model
    n = hf.config.num_hidden_layers
    expected: dict[int, float] = {}
    for p in hf.videomae.embeddings.parameters():
        expected[id(p)] = decay ** (n + 1)
    for i, layer in enumerate(hf.videomae.encoder.layer):
        for p in layer.parameters():
            expected[id(p)] = decay ** (n - i)
    for p in [*hf.fc_norm.parameters(), *hf.classifier.parameters()]:
        expected[id(p)] = 1.0
    assert set(expected) == {id(p) for p in model.parameters()}
    for name, p in model.backbone.named_parameters():
        group = _group_of(groups, p)
        assert group["initial_lr"] == pytest.approx(LR * expected[id(p)]), name
        assert group["weight_decay"] == (0.0 if p.ndim == 1 else WD), name
    # warmup (10% of 20 steps) then cosine: every group at the same fraction of its own base rate
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    fractions = {round(g["lr"] / g["initial_lr"], 9) for g in optimizer.param_groups}
    assert len(fractions) == 1 and 0 < fractions.pop() < 1


def test_layer_decay_argument_without_a_strategy():
    """layer_decay= on the module gives the same grouping without a callback."""
    spec = get_backbone_spec("videomae_small")
    model = VideoClassifier("videomae_small", num_classes=2, backbone_kwargs=spec.test_kwargs, layer_decay=0.5)
    scales = {g["lr_scale"] for g in model.parameter_groups(1.0, 0.0)}
    last = len(model.backbone.stages) - 1
    assert scales == {0.5 ** k for k in range(last + 1)}


def test_unfreezing_a_transformer_reaches_its_final_norm():
    """The head's stage also holds VideoMAE's fc_norm: unfreezing must not leave it frozen."""
    spec = get_backbone_spec("videomae_small")
    model = VideoClassifier("videomae_small", num_classes=2, backbone_kwargs=spec.test_kwargs)
    fc_norm = list(model.backbone.model.fc_norm.parameters())
    last_layer = list(model.backbone.model.videomae.encoder.layer[-1].parameters())
    first_layer = list(model.backbone.model.videomae.encoder.layer[0].parameters())

    milestones = UnfreezeMilestones((1, 2), num_layers=2)
    milestones.freeze_before_training(model)
    opt = torch.optim.AdamW(model.parameter_groups(LR, WD), lr=LR)
    assert not any(p.requires_grad for p in fc_norm + last_layer + first_layer)
    milestones.finetune_function(model, 1, opt)
    assert all(p.requires_grad for p in fc_norm + last_layer)
    assert not any(p.requires_grad for p in first_layer)
    milestones.finetune_function(model, 2, opt)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(p.requires_grad and id(p) in held for p in model.parameters())

    model = VideoClassifier("videomae_small", num_classes=2, backbone_kwargs=spec.test_kwargs)
    unfreeze = FreezeUnfreeze(1)
    unfreeze.freeze_before_training(model)
    opt = torch.optim.AdamW(model.parameter_groups(LR, WD), lr=LR)
    unfreeze.finetune_function(model, 1, opt)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(p.requires_grad and id(p) in held for p in model.parameters())


def test_resolve_strategy_names():
    assert resolve_strategy("no_freeze") is None
    assert isinstance(resolve_strategy(("freeze_unfreeze", 3)), FreezeUnfreeze)
    assert resolve_strategy(("unfreeze_milestones", ((2, 4), 1))).milestones == (2, 4)
    with pytest.raises(ValueError, match="choose one of"):
        resolve_strategy("freeze_all")
    with pytest.raises(ValueError, match="increasing"):
        resolve_strategy(("unfreeze_milestones", ((4, 2), 1)))
