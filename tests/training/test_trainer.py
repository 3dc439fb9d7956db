"""The training loop: it learns, resumes an interrupted run to the same weights, reports
divergence and a loss that does not fall, and runs bf16 one-cycle training of airbench."""

from dataclasses import replace

import pytest
import torch

from backfill_lib.models.embedding import EmbeddingModel
from backfill_lib.pipeline.config import default_config
from backfill_lib.storage import load_torch, save_torch
from backfill_lib.training.checkpoints import train_or_load
from backfill_lib.training.compute import numerics
from backfill_lib.training.embedding import accuracy, embed
from backfill_lib.training.objectives import ClassifierObjective
from backfill_lib.training.trainer import TrainConfig, TrainingDivergedError, fit, make_scheduler
from tests.conftest import SMALL_CNN, colour_blobs, fresh_model


def test_a_short_training_run_learns(digits, tmp_path):
    model, _, history, _ = train_or_load(
        "new",
        {"test": "learns"},
        *fresh_model(digits),
        digits.train_images,
        digits.train_labels,
        SMALL_CNN,
        tmp_path,
    )
    acc = accuracy(model, digits.test_images, digits.test_labels)
    assert acc > 0.8, f"test accuracy {acc:.2f} (chance 0.10)"
    assert history[-1] < 0.5 * history[0]
    emb = embed(model, digits.test_images)
    assert emb.shape == (len(digits.test_images), 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5)


def test_an_interrupted_run_resumes_to_the_same_weights(digits, tmp_path):
    images, labels = digits.train_images[:256], digits.train_labels[:256]
    cfg = replace(SMALL_CNN, epochs=3)
    reference, objective = fresh_model(digits)
    fit(reference, objective, images, labels, cfg)

    class Interrupt(ClassifierObjective):
        calls = 0

        def forward(self, *args):
            Interrupt.calls += 1
            if Interrupt.calls > 6:  # 4 steps per epoch: dies in the second epoch
                raise KeyboardInterrupt
            return super().forward(*args)

    ckpt = tmp_path / "run.pt"
    model, _ = fresh_model(digits)
    with pytest.raises(KeyboardInterrupt):
        fit(model, Interrupt(), images, labels, cfg, ckpt, {"run": 1})
    partial = tmp_path / "run.partial.pt"
    assert load_torch(partial)["epoch"] == 1
    resumed, objective = fresh_model(digits)
    fit(resumed, objective, images, labels, cfg, ckpt, {"run": 1})
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_resuming_under_another_thread_count_warns(digits, tmp_path, other_thread_count):
    images, labels = digits.train_images[:256], digits.train_labels[:256]
    ckpt, partial = tmp_path / "run.pt", tmp_path / "run.partial.pt"
    model, objective = fresh_model(digits)
    fit(model, objective, images, labels, replace(SMALL_CNN, epochs=1), ckpt, {"run": 1})
    state = load_torch(partial)
    assert state["trained_with"] == numerics()
    save_torch(state | {"config": {"run": 2}}, partial)  # the first epoch of a 2-epoch run
    other_thread_count()
    model, objective = fresh_model(digits)
    with pytest.warns(UserWarning, match="threads .* not be bit-identical"):
        fit(model, objective, images, labels, replace(SMALL_CNN, epochs=2), ckpt, {"run": 2})


def test_divergence_is_reported(digits):
    class NaNObjective(ClassifierObjective):
        def forward(self, *args):
            return super().forward(*args) * float("nan")

    model, _ = fresh_model(digits)
    with pytest.raises(TrainingDivergedError, match="learning rate"):
        fit(model, NaNObjective(), digits.train_images[:128], digits.train_labels[:128], SMALL_CNN)


def test_a_run_that_does_not_learn_is_flagged(digits):
    model, objective = fresh_model(digits)
    frozen = replace(SMALL_CNN, lr=0.0, epochs=2, augment=False, batch_size=128)  # one full batch
    with pytest.warns(UserWarning, match="did not fall"):
        fit(model, objective, digits.train_images[:128], digits.train_labels[:128], frozen)
    with pytest.raises(ValueError, match="epochs >= 1"):
        fit(
            model,
            objective,
            digits.train_images[:128],
            digits.train_labels[:128],
            replace(SMALL_CNN, epochs=0),
        )


def test_bf16_one_cycle_training_of_airbench_learns_and_embeds_in_fp32():
    images, labels = colour_blobs(256)
    profile = default_config(
        "cifar10", "cpu", classes=10
    ).new  # the shipped recipe, on a tiny budget
    config = replace(
        profile, arch="airbench-half", embed_dim=16, epochs=4, batch_size=32, precision="bf16"
    )
    assert config.schedule == "one-cycle"
    torch.manual_seed(0)
    model = EmbeddingModel("airbench-half", 16, 4, 3, [0.3] * 3, [0.3] * 3, channels_last=True)
    history = fit(model, ClassifierObjective(config.label_smoothing), images, labels, config)
    assert history[-1] < 0.7 * history[0]
    assert model.backbone.whiten.weight.abs().sum() > 0
    test_images, test_labels = colour_blobs(256, seed=1)
    assert accuracy(model, test_images, test_labels) > 0.6  # chance 0.25
    emb = embed(model, test_images)
    assert emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5)


def test_the_one_cycle_schedule_warms_up_then_decays_linearly():
    config = TrainConfig(lr=0.2, schedule="one-cycle", warmup=0.25)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = make_scheduler(optimizer, config, total=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(0.2, rel=1e-3) and lrs.index(max(lrs)) in (24, 25)
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[25:], lrs[26:], strict=False))


def test_unknown_schedules_and_precisions_are_refused():
    with pytest.raises(ValueError, match="one-cycle"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="bf16"):
        TrainConfig(precision="fp16")
