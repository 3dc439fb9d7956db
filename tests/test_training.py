import os
from dataclasses import replace

import pytest
import torch

from backfill_lib.compute import bf16_is_native, numerics
from backfill_lib.config import default_config
from backfill_lib.data import load_dataset
from backfill_lib.models import ARCHITECTURES, AirbenchNet, EmbeddingModel, make_backbone
from backfill_lib.storage import (
    ConfigMismatchError,
    CorruptFileError,
    atomic_write,
    load_derived,
    load_torch,
    save_torch,
)
from backfill_lib.training import (
    ClassifierObjective,
    TrainConfig,
    TrainingDivergedError,
    accuracy,
    embed,
    fit,
    make_scheduler,
    train_or_load,
)
from backfill_lib.transformation import TransformConfig, fit_transformation

from .conftest import unit

CONFIG = TrainConfig(arch="cnn-small", embed_dim=16, epochs=4, batch_size=64, lr=0.05)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def build(ds):
    def make():
        torch.manual_seed(0)
        mean, std = ds.channel_stats()
        return EmbeddingModel("cnn-small", 16, 10, 1, mean, std), ClassifierObjective()

    return make


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_backbone_gives_its_feature_size(arch):
    net = make_backbone(arch, 3).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, net.out_dim)


def test_a_short_training_run_learns(digits, tmp_path):
    model, _, history = train_or_load(
        "new",
        {"test": "learns"},
        build(digits),
        digits.train_images,
        digits.train_labels,
        CONFIG,
        tmp_path,
    )
    acc = accuracy(model, digits.test_images, digits.test_labels)
    assert acc > 0.8, f"test accuracy {acc:.2f} (chance 0.10)"
    assert history[-1] < 0.5 * history[0]
    emb = embed(model, digits.test_images)
    assert emb.shape == (len(digits.test_images), 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5)


def test_atomic_writes_keep_the_old_file_on_failure_and_get_the_usual_mode(tmp_path):
    path = atomic_write(tmp_path / "figure.txt", lambda tmp: tmp.write_text("first"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.txt"]


def test_a_killed_writer_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    import subprocess
    import sys

    path = save_torch({"x": 1}, tmp_path / "emb.pt")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    for _ in range(3):  # a writer killed mid-save, three times
        (tmp_path / f".emb.pt.{dead_pid}.x{_}.tmp").write_bytes(b"half a tensor")
    alive = tmp_path / f".emb.pt.{os.getppid()}.y.tmp"  # a live writer's file is left alone
    alive.write_bytes(b"in progress")
    save_torch({"x": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "emb.pt"]
    assert load_torch(path) == {"x": 2}


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", b"not a tensor file at all"])
def test_a_damaged_file_is_named_and_a_derived_one_is_computed_again(tmp_path, damage):
    path = save_torch({"x": torch.ones(1000)}, tmp_path / "curve.pt")
    path.write_bytes(damage or path.read_bytes()[:0])
    with pytest.raises(CorruptFileError, match=r"curve.pt cannot be read .*delete it and rerun"):
        load_torch(path)
    with pytest.warns(UserWarning, match=r"curve.pt was damaged .*moved to .*curve.pt.corrupt"):
        assert load_derived(path) is None
    assert not path.exists() and (tmp_path / "curve.pt.corrupt").read_bytes() == damage
    assert load_derived(path) is None  # missing: nothing to warn about


CONCURRENT_TRAINER = """
import os, pathlib, sys, time
from dataclasses import replace
import torch
from backfill_lib import training
from backfill_lib.data import load_dataset
from tests.test_training import CONFIG, build

cache, log, ready = (pathlib.Path(a) for a in sys.argv[1:])
real_fit = training.fit

def counting_fit(*args, **kwargs):
    with open(log, "a") as fh:
        fh.write("trained\\n")
    time.sleep(2)  # long enough for the other process to look for the checkpoint
    return real_fit(*args, **kwargs)

training.fit = counting_fit
torch.set_num_threads(1)
ds = load_dataset("digits")
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:  # start both at once
    time.sleep(0.05)
model, _, _ = training.train_or_load(
    "old", {"k": "concurrent"}, build(ds), ds.train_images[:512], ds.train_labels[:512],
    replace(CONFIG, epochs=2), cache,
)
print(sum(float(t.double().sum()) for t in model.state_dict().values()))
"""


@pytest.mark.slow
def test_two_processes_on_one_cache_train_a_model_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "ready").mkdir()
    args = [str(tmp_path / "cache"), str(tmp_path / "log"), str(tmp_path / "ready")]
    root = Path(__file__).resolve().parents[1]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_TRAINER, *args],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert (tmp_path / "log").read_text().splitlines() == ["trained"]
    assert outputs[0] == outputs[1]  # the second process loaded the first one's model


def test_checkpoints_are_cached_by_config(digits, tmp_path, monkeypatch):
    args = (build(digits), digits.train_images, digits.train_labels)
    cfg = replace(CONFIG, epochs=1)
    first, _, _ = train_or_load("old", {"k": 1}, *args, cfg, tmp_path)

    def no_training(*a, **k):
        raise AssertionError("a cached configuration was retrained")

    monkeypatch.setattr("backfill_lib.training.fit", no_training)
    again, _, _ = train_or_load("old", {"k": 1}, *args, cfg, tmp_path)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="retrained"):
        train_or_load("old", {"k": 2}, *args, cfg, tmp_path)  # another config trains


def test_an_interrupted_run_resumes_to_the_same_weights(digits, tmp_path):
    images, labels = digits.train_images[:256], digits.train_labels[:256]
    cfg = replace(CONFIG, epochs=3)
    reference, objective = build(digits)()
    fit(reference, objective, images, labels, cfg)

    class Interrupt(ClassifierObjective):
        calls = 0

        def forward(self, *args):
            Interrupt.calls += 1
            if Interrupt.calls > 6:  # 4 steps per epoch: dies in the second epoch
                raise KeyboardInterrupt
            return super().forward(*args)

    ckpt = tmp_path / "run.pt"
    model, _ = build(digits)()
    with pytest.raises(KeyboardInterrupt):
        fit(model, Interrupt(), images, labels, cfg, ckpt, {"run": 1})
    partial = tmp_path / "run.partial.pt"
    assert load_torch(partial)["epoch"] == 1
    resumed, objective = build(digits)()
    fit(resumed, objective, images, labels, cfg, ckpt, {"run": 1})
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


@pytest.fixture
def other_thread_count():
    """Run the test body under another torch thread count than the checkpoints it makes."""
    before = torch.get_num_threads()
    yield lambda: torch.set_num_threads(1 if before != 1 else 2)
    torch.set_num_threads(before)


def test_checkpoints_record_how_they_were_computed(digits, tmp_path, other_thread_count):
    args = (build(digits), digits.train_images[:256], digits.train_labels[:256])
    cfg = replace(CONFIG, epochs=1)
    train_or_load("old", {"k": 1}, *args, cfg, tmp_path)
    path = next((tmp_path / "checkpoints").glob("old-*.pt"))
    assert load_torch(path)["trained_with"] == numerics()
    assert set(numerics()) == {"device", "threads", "processes", "torch"}
    other_thread_count()
    with pytest.warns(UserWarning, match=rf"{path.name} was computed with threads .*delete"):
        train_or_load("old", {"k": 1}, *args, cfg, tmp_path)  # loaded, not retrained


def test_resuming_under_another_thread_count_warns(digits, tmp_path, other_thread_count):
    images, labels = digits.train_images[:256], digits.train_labels[:256]
    ckpt, partial = tmp_path / "run.pt", tmp_path / "run.partial.pt"
    model, objective = build(digits)()
    fit(model, objective, images, labels, replace(CONFIG, epochs=1), ckpt, {"run": 1})
    state = load_torch(partial)
    assert state["trained_with"] == numerics()
    save_torch(state | {"config": {"run": 2}}, partial)  # the first epoch of a 2-epoch run
    other_thread_count()
    model, objective = build(digits)()
    with pytest.warns(UserWarning, match="threads .* not be bit-identical"):
        fit(model, objective, images, labels, replace(CONFIG, epochs=2), ckpt, {"run": 2})


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    save_torch({"config": {"arch": "resnet20", "epochs": 30}, "model": {}}, tmp_path / "c.pt")
    with pytest.raises(ConfigMismatchError, match="epochs"):
        load_torch(tmp_path / "c.pt", {"arch": "resnet20", "epochs": 10})


def test_divergence_is_reported(digits):
    class NaNObjective(ClassifierObjective):
        def forward(self, *args):
            return super().forward(*args) * float("nan")

    model, _ = build(digits)()
    with pytest.raises(TrainingDivergedError, match="learning rate"):
        fit(model, NaNObjective(), digits.train_images[:128], digits.train_labels[:128], CONFIG)


def test_reverse_transformation_reduces_held_out_regression_error():
    # old = a fixed nonlinear function of new: psi must learn it from 800 pairs
    new = unit(1000, 12, 0)
    mix = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    old = torch.nn.functional.normalize(torch.tanh(new @ mix), dim=1)
    labels = torch.arange(1000) % 5
    untrained = fit_transformation(new[:800], old[:800], labels[:800], TransformConfig(epochs=0))
    trained = fit_transformation(new[:800], old[:800], labels[:800], TransformConfig(epochs=30))

    def error(t):
        return ((t.transform(new[800:]) - old[800:]) ** 2).sum(1).mean().item()

    assert error(trained) < 0.25 * error(untrained)
    with pytest.raises(ValueError, match="NaN"):
        bad = new.clone()
        bad[0, 0] = float("nan")
        fit_transformation(bad, old, labels)


def test_a_run_that_does_not_learn_is_flagged(digits):
    model, objective = build(digits)()
    frozen = replace(CONFIG, lr=0.0, epochs=2, augment=False, batch_size=128)  # one full batch
    with pytest.warns(UserWarning, match="did not fall"):
        fit(model, objective, digits.train_images[:128], digits.train_labels[:128], frozen)
    with pytest.raises(ValueError, match="epochs >= 1"):
        fit(
            model,
            objective,
            digits.train_images[:128],
            digits.train_labels[:128],
            replace(CONFIG, epochs=0),
        )


def colour_blobs(n: int, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy 32x32 colour images whose class is a bright square's corner and hue."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.randint(0, 120, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    for i, y in enumerate(labels.tolist()):
        r, c = divmod(y, 2)
        images[i, y % 3, 16 * r : 16 * r + 12, 16 * c : 16 * c + 12] = 250
    return images, labels


def test_whitening_filters_decorrelate_image_patches():
    images = colour_blobs(64)[0].float() / 255
    images = images + 0.5 * images.roll(1, dims=1)  # correlated channels
    net = AirbenchNet((8, 8, 8))
    net.init_whitening(images, eps=0.0)
    half = net.whiten.weight.shape[0] // 2  # the second half is the first, negated
    assert torch.equal(net.whiten.weight[half:], -net.whiten.weight[:half])
    out = torch.nn.functional.conv2d(images, net.whiten.weight[:half])
    flat = out.transpose(0, 1).flatten(1)
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(half), atol=1e-3)
    assert not net.whiten.weight.requires_grad  # frozen: only its bias trains


def test_bf16_one_cycle_training_of_airbench_learns_and_embeds_in_fp32():
    images, labels = colour_blobs(512)
    profile = default_config("cifar10", "cpu").new  # the shipped recipe, on a tiny budget
    config = replace(
        profile, arch="airbench-half", embed_dim=16, epochs=4, batch_size=64, precision="bf16"
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


@pytest.mark.parametrize("native", [True, False])
def test_the_cpu_profile_trains_in_bf16_only_where_it_is_native(monkeypatch, native):
    monkeypatch.setattr("backfill_lib.config.bf16_is_native", lambda: native)
    expected = "bf16" if native else "fp32"  # emulated bf16 ran 18x slower than fp32
    assert default_config("cifar10", "cpu").new.precision == expected
    assert default_config("cifar10", "cpu").old.precision == expected
    assert default_config("digits").new.precision == "fp32"


def test_bf16_is_native_on_a_gpu(monkeypatch):
    assert isinstance(bf16_is_native(), bool)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bf16_is_native()


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
