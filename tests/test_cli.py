"""Every user error in the CLI ends in exit code 2 and one error line, before any work."""

import io
import json
import os
import pickle
import re
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backfill_lib.cli import main
from backfill_lib.pipeline.options import OPTIONS_FORMAT
from backfill_lib.storage import load_torch

# (arguments, a fragment of the error line). {tmp} is the test's folder, {file} a plain
# file in it, {broken} an image folder with a corrupt image, {cifar} an empty folder.
BAD_INPUTS = [
    (["demo", "--steps", "0"], "below the minimum 1"),
    (["demo", "--steps", "-3"], "below the minimum 1"),
    (["demo", "--steps", "ten"], "'ten' is not an integer"),
    (["demo", "--epochs", "0"], "below the minimum 1"),
    (["train", "--model", "new", "--epochs", "0"], "below the minimum 1"),
    (["reproduce", "--epochs", "0"], "below the minimum 1"),
    (["reproduce", "--seeds", "-1"], "below the minimum 0"),
    (["reproduce", "--seeds", "0", "0"], "distinct non-negative seeds"),
    (["reproduce", "--settings", "sideways"], "invalid choice: 'sideways'"),
    (["demo", "--methods", "magic"], "unknown method 'magic'"),
    (["demo", "--orders", "sideways"], "unknown backfill order 'sideways'"),
    (["demo", "--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["demo", "--dataset", "cifar10"], "--data-root"),
    (["demo", "--dataset", "cifar10", "--data-root", "{cifar}"], "pass --download"),
    (["demo", "--dataset", "imagefolder:{tmp}/nowhere"], "nowhere"),
    (["demo", "--dataset", "tinyimagenet:{tmp}/nowhere"], "nowhere"),
    (["demo", "--dataset", "imagefolder:{broken}"], "bad.png: cannot decode this image"),
    (["demo", "--profile", "tpu"], "invalid choice: 'tpu'"),
    (["demo", "--setting", "sideways"], "invalid choice: 'sideways'"),
    (["demo", "--out", "{file}"], "is a file, not a folder"),
    (["demo", "--out", "{file}/below"], "is a file, not a folder"),
    (["demo", "--cache", "{file}"], "is a file, not a folder"),
    (["reproduce", "--out", "{file}"], "is a file, not a folder"),
    (["train", "--model", "magic"], "invalid choice: 'magic'"),
    (["train", "--model", "bct"], "backfill train --model old"),
    (["train", "--model", "old", "--limit-images", "1"], "below the minimum 2"),
    (["backfill-job", "--batch-size", "0"], "below the minimum 1"),
    (["backfill-job", "--save-every", "-1"], "below the minimum 1"),
    (["backfill-job", "--order", "sideways"], "invalid choice: 'sideways'"),
    (["backfill-job", "--max-batches", "0"], "below the minimum 1"),
    (["backfill-job", "--index", "{file}/index.npz"], "is a file, not a folder"),
    (["explain"], "invalid choice: 'explain'"),
    # checked before any work (the second reliability pass)
    (["demo", "--steps", "100000"], "100000 is above the maximum 65,533"),
    (["demo", "--epochs", "100000000000000000000"], "is above the maximum 10,000"),
    (["reproduce", "--seeds", "0", "1000000000000"], "is above the maximum 2,147,483,647"),
    (["backfill-job", "--index", "{tmp}"], "is a folder: give the index file"),
    (["backfill-job", "--factory", "Bogus99"], "faiss cannot build a 'Bogus99' index"),
    (["backfill-job", "--index", "{badjob}/index.npz"], "index.npz.job.json is not valid JSON"),
    (["demo", "--dataset", "stream:{broken}"], "bad.png: cannot decode this image"),
    (["reproduce", "--out", "{badout}"], "sections.json holds a JSON list"),
    # datasets that name files outside them, damaged archives and images, malformed layouts
    (["demo", "--dataset", "tinyimagenet:{escape}"], "points outside the dataset folder"),
    (["demo", "--dataset", "tinyimagenet:{notab}"], "val_annotations.txt, line 2: expected"),
    (["demo", "--dataset", "tinyimagenet:{evil}"], "evil.tar cannot be extracted"),
    (["demo", "--dataset", "tinyimagenet:{cut}"], "cut.tar"),
    (["demo", "--dataset", "imagefolder:{bomb}"], "bomb.png: more than 67,108,864 pixels"),
    (["demo", "--dataset", "imagefolder:{oneclass}"], "has 1 class(es)"),
    (["demo", "--dataset", "imagefolder:{noclasses}"], "holds no class folders"),
    (["demo", "--dataset", "cifar10", "--data-root", "{badcifar}"], "has no 'labels'"),
    # options files (`backfill tune`) and the search itself
    (["demo", "--options", "{tmp}/none.json"], "none.json does not exist"),
    (["demo", "--options", "{options}/format.json"], "is not an options file"),
    (["reproduce", "--options", "{options}/list.json"], "holds a JSON list"),
    (["train", "--model", "old", "--options", "{options}/method.json"], "unknown method 'magic'"),
    (["backfill-job", "--options", "{options}/family.json"], "rt under 'compatible_losses'"),
    (["demo", "--options", "{options}/option.json"], "bct has no option 'gamma'"),
    (["demo", "--options", "{options}/type.json"], "a value like 1.0 is expected"),
    (["tune", "--budget", "0"], "below the minimum 1"),
    (["tune", "--methods", "drm"], "invalid choice: 'drm'"),
    (["tune", "--out", "{tmp}"], "is a folder: give the options file"),
    (["tune", "--out", "{file}/options.json"], "is a file, not a folder"),
    (["redraw", "{tmp}/nowhere"], "nowhere: not a folder"),
    (["redraw", "{cifar}"], "no results.json in it or below"),
]


def png_header(width: int, height: int) -> bytes:
    """A PNG file that declares ``width x height`` 8-bit grey pixels and holds none: what a
    decompression bomb looks like to a reader of its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def image_folder(root: Path, classes: tuple[str, ...]) -> Path:
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), "red").save(root / split / name / "good.png")
    return root


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "cifar").mkdir()
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = tmp_path / "broken" / split / name
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8), "red").save(folder / "good.png")
    (tmp_path / "broken" / "train" / "dog" / "bad.png").write_bytes(b"\x89PNG not really")
    bomb = image_folder(tmp_path / "bomb", ("cat", "dog"))
    (bomb / "train" / "cat" / "bomb.png").write_bytes(png_header(100_000, 100_000))
    escape = image_folder(tmp_path / "escape", ("n01", "n02"))
    shutil.rmtree(escape / "test")
    (escape / "val" / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(escape / "val" / "images" / "v0.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.png")
    notab = image_folder(tmp_path / "notab", ("n01", "n02"))
    shutil.copytree(escape / "val", notab / "val")
    (escape / "val" / "val_annotations.txt").write_text("v0.png\tn01\n../../../secret.png\tn02\n")
    (notab / "val" / "val_annotations.txt").write_text("v0.png\tn01\nv0.png n02\n")
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        tar.addfile(info, io.BytesIO(b""))
    with tarfile.open(tmp_path / "full.tar", "w") as tar:
        tar.add(bomb / "test", arcname="dev/test")
    (tmp_path / "cut.tar").write_bytes((tmp_path / "full.tar").read_bytes()[:1500])
    image_folder(tmp_path / "oneclass", ("cat",))
    (tmp_path / "noclasses" / "train").mkdir(parents=True)
    (tmp_path / "noclasses" / "test").mkdir()
    batches = tmp_path / "badcifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(batches / name, "wb") as fh:
            pickle.dump({"data": np.zeros((2, 3072), np.uint8)}, fh)  # no labels
    with open(batches / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    (tmp_path / "badjob").mkdir()
    (tmp_path / "badjob" / "index.npz.job.json").write_text("{not json")
    (tmp_path / "badout").mkdir()
    (tmp_path / "badout" / "sections.json").write_text("[1, 2]")
    options = tmp_path / "options"
    options.mkdir()
    valid = {"format": OPTIONS_FORMAT, "dataset": "digits", "profile": "cpu", "fingerprint": "0"}
    for name, extra in {
        "format": {"format": "backfill-options/0"},
        "method": {"compatible_losses": {"magic": {}}},
        "family": {"compatible_losses": {"rt": {}}},
        "option": {"compatible_losses": {"bct": {"gamma": 2.0}}},
        "type": {"compatible_losses": {"bct": {"weight": "heavy"}}},
    }.items():
        (options / f"{name}.json").write_text(json.dumps(valid | extra))
    (options / "list.json").write_text("[]")
    return {
        "tmp": tmp_path,
        "file": tmp_path / "a-file",
        "broken": tmp_path / "broken",
        "cifar": tmp_path / "cifar",
        "bomb": bomb,
        "escape": escape,
        "notab": notab,
        "evil": tmp_path / "evil.tar",
        "cut": tmp_path / "cut.tar",
        "oneclass": tmp_path / "oneclass",
        "noclasses": tmp_path / "noclasses",
        "badcifar": tmp_path / "badcifar",
        "badjob": tmp_path / "badjob",
        "badout": tmp_path / "badout",
        "options": options,
    }


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_a_user_error_is_one_line_exit_2_and_writes_nothing(
    args, message, folders, capsys, monkeypatch
):
    monkeypatch.delenv("BACKFILL_DATA_ROOT", raising=False)
    args = [a.format(**folders) for a in args]
    out, cache = folders["tmp"] / "out", folders["tmp"] / "cache"
    if args[0] == "backfill-job" and "--index" not in args:
        args += ["--index", str(out / "index.npz")]
    elif "--out" not in args and args[0] not in ("train", "backfill-job", "redraw"):
        args += ["--out", str(out)]
    if "--cache" not in args and args[0] not in ("explain", "redraw"):
        args += ["--cache", str(cache)]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert not out.exists()
    written = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert all("data" in p.parts for p in written), written  # decoded images at most


def test_a_read_only_out_folder_fails_before_any_work(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != locked and real_access(path, mode))
    code = main(["demo", "--out", str(locked / "demo"), "--cache", str(tmp_path / "cache")])
    assert code == 2 and "locked is not writable" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_train_trains_once_then_loads_and_reports_accuracy(tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["train", "--dataset", "digits", "--epochs", "2", "--cache", str(cache)]
    assert main([*args, "--model", "old"]) == 0
    out = capsys.readouterr().out
    assert "old: trained" in out
    checkpoint, accuracy = re.search(
        r"old: (\S+\.pt)\ntop-1 ([\d.]+)% on the \d+ test images of its 5 classes", out
    ).groups()
    assert Path(checkpoint).is_file() and float(accuracy) > 40  # chance: 20%
    assert main([*args, "--model", "bct"]) == 0  # a compatible recipe against the cached old
    assert "bct: trained" in capsys.readouterr().out
    assert main([*args, "--model", "old"]) == 0
    again = capsys.readouterr().out
    assert f"old: loaded from {checkpoint}" in again and f"top-1 {accuracy}%" in again


def test_limit_images_trains_a_smoke_test_model_under_its_own_key(tmp_path, capsys):
    args = ["train", "--dataset", "digits", "--epochs", "1", "--cache", str(tmp_path)]
    assert main([*args, "--model", "old", "--limit-images", "64"]) == 0
    out = capsys.readouterr().out
    tested = int(re.search(r"on the (\d+) test images of its 5 classes", out).group(1))
    assert 0 < tested < 64  # the old model's classes among the 64 kept test images
    (checkpoint,) = (tmp_path / "checkpoints").glob("old-*.pt")
    assert len(load_torch(checkpoint)["history"]) == 1
    assert main([*args, "--model", "old"]) == 0  # the full run is another model
    assert "old: trained" in capsys.readouterr().out
    assert len(list((tmp_path / "checkpoints").glob("old-*.pt"))) == 2


@pytest.mark.slow
def test_backfill_job_fills_the_gallery_then_finds_nothing_left(tmp_path, capsys):
    index = tmp_path / "job" / "index.npz"
    args = ["backfill-job", "--epochs", "2", "--cache", str(tmp_path / "cache")]
    assert main([*args, "--index", str(index), "--batch-size", "300"]) == 0
    assert f"{index}: 899 of 899 items backfilled (this run: from 0, 3 batches, 3 saves)" in (
        capsys.readouterr().out
    )
    assert main([*args, "--index", str(index), "--batch-size", "300"]) == 0
    assert "(this run: from 899, 0 batches, 0 saves)" in capsys.readouterr().out
