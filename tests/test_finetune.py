"""The fine-tuning layer: modes, frozen BatchNorm, cached heads, discriminative rates, resume,
strategies and precision, on tiny image folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from finetune import runtime
from finetune.training import modeling, precision
from finetune.training.config import FinetuneConfig
from finetune.training.classification import finetune

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}


def make_folder(root: Path, per_class: int = 16, size: int = 36, seed: int = 0) -> Path:
    """Class-per-subfolder PNGs whose class is the colour of a square on a noisy background."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            top, left = rng.integers(0, size // 2, 2)
            image[top : top + size // 2, left : left + size // 2] = colour
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("shapes"))


def config_for(folder, **overrides):
    settings = dict(model="lenet5", data=str(folder), epochs=2, batch_size=8, lr=3e-3, image_size=32, channels=3,
                    model_options={"variant": "modern"}, validation_fraction=0.25, seed=1)
    settings.update(overrides)
    return FinetuneConfig(**settings)


def test_full_mode_learns_and_leaves_a_run_folder(folder, tmp_path):
    out = tmp_path / "run"
    result = finetune(config_for(folder, epochs=6), out=out, verbose=0)
    for name in ("config.json", "classes.json", "best.keras", "last.keras", "history.csv", "metrics.json",
                 "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    assert any((out / "logs" / "train").iterdir())
    history = list(csv.DictReader((out / "history.csv").open()))
    assert [int(row["epoch"]) for row in history] == list(range(1, 7))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.8, metrics
    assert float(history[-1]["loss"]) < float(history[0]["loss"])
    assert FinetuneConfig.load(out) == config_for(folder, epochs=6)
    assert result.class_names == sorted(COLOURS)


def test_head_mode_freezes_backbone_and_batchnorm(folder):
    config = config_for(folder, model="resnet18", model_options={}, mode="head", augment="light", epochs=1)
    keras.utils.set_random_seed(0)
    result = finetune(config, verbose=0)
    backbone = modeling.backbone_of(result.model)
    assert not backbone.trainable and not backbone.trainable_weights
    # same seed, same initial backbone: the head-mode run must have left every backbone weight,
    # BatchNorm's moving statistics included, as it was built
    keras.utils.set_random_seed(config.seed)
    fresh = modeling.build(config, result.model.output_shape[-1], (32, 32, 3))
    for trained, initial in zip(backbone.weights, modeling.backbone_of(fresh).weights):
        np.testing.assert_array_equal(trained.numpy(), initial.numpy(), err_msg=trained.path)


def test_cached_head_training_equals_running_the_backbone_every_epoch(folder):
    common = dict(model="resnet18", model_options={}, mode="head", epochs=3, shuffle=False, dropout=0.0)
    cached = finetune(config_for(folder, cache_features=True, **common), verbose=0)
    uncached = finetune(config_for(folder, cache_features=False, **common), verbose=0)
    for first, second in zip(cached.history, uncached.history):
        np.testing.assert_allclose(float(first["loss"]), float(second["loss"]), rtol=1e-4)
    np.testing.assert_allclose(cached.model.get_layer("predictions").kernel.numpy(),
                               uncached.model.get_layer("predictions").kernel.numpy(), atol=1e-5)


def _relative_change(before, after):
    return np.mean([np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-12) for a, b in zip(after, before)])


def test_discriminative_learning_rates_move_the_backbone_less(folder, tmp_path):
    pretrained = tmp_path / "pretrained.keras"
    zoo.create("lenet5", variant="modern", input_shape=(32, 32, 3), num_classes=3).save(pretrained)
    changes = {}
    for scale in (1.0, 0.01):
        config = config_for(folder, weights=str(pretrained), mode="full", epochs=1, backbone_lr_scale=scale,
                            optimizer="sgd", schedule="constant")
        keras.utils.set_random_seed(0)
        initial = modeling.build(config, 3, (32, 32, 3))
        before = [weight.numpy() for weight in modeling.backbone_of(initial).trainable_weights]
        result = finetune(config, verbose=0)
        after = [weight.numpy() for weight in modeling.backbone_of(result.model).trainable_weights]
        changes[scale] = _relative_change(before, after)
    assert changes[0.01] < changes[1.0] / 20, changes


def test_two_phase_schedule_trains_head_first_then_everything(folder):
    config = config_for(folder, mode="full", head_epochs=1, epochs=2)
    result = finetune(config, verbose=0)
    assert len(result.history) == 2
    assert modeling.backbone_of(result.model).trainable


def test_mixed_bfloat16_on_cpu_trains(folder):
    result = finetune(config_for(folder, precision="mixed", epochs=1), verbose=0)
    assert result.model.get_layer("backbone").get_layer("c1").dtype_policy.name == "mixed_bfloat16"
    assert np.isfinite(float(result.history[-1]["loss"]))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run


def test_cpu_kinds_go_by_what_multiplies_bfloat16():
    kinds = {"amx": {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "avx512_bf16": {"avx2", "avx512f", "avx512_bf16"},
             "avx512": {"avx2", "avx512f"}, "avx2": {"avx2", "fma"}, "arm_bf16": {"asimd", "bf16"}, "other": {"sse2"}}
    for kind, flags in kinds.items():
        assert runtime.cpu_kind(flags)[0] == kind


def test_auto_precision_picks_per_device(monkeypatch):
    strategy = tf.distribute.get_strategy()
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.precision_policy("auto", strategy) == "float32"  # bfloat16 would be emulated
    assert precision.precision_policy("mixed", strategy) == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    monkeypatch.setattr(precision, "cpu_kind", lambda: ("avx512_bf16", "x86 with AVX512-BF16"))
    assert precision.precision_policy("auto", strategy) == "mixed_bfloat16"
    # Native bfloat16 where it was measured faster on the kind: not LeNet-5's step at 32x32 (a tie),
    # but ResNet-18's at 64x64 and ResNet-50's at 224x224.
    lenet = precision.training_step_flops("lenet5", (32, 32, 1), 32)
    resnet = precision.training_step_flops("resnet18", (64, 64, 3), 32)
    resnet50 = precision.training_step_flops("resnet50", (224, 224, 3), 32)
    assert lenet < precision.BFLOAT16_MIN_STEP_FLOPS < resnet
    assert resnet == pytest.approx(3 * zoo.info("resnet18").flops * (64 / 224) ** 2 * 32)
    assert precision.precision_policy("auto", strategy, lenet) == "float32"
    assert precision.precision_policy("auto", strategy, resnet) == "mixed_bfloat16"
    assert precision.precision_policy("mixed", strategy, lenet) == "mixed_bfloat16"  # asked for: given
    monkeypatch.setattr(precision, "cpu_kind", lambda: ("amx", "x86 with AMX"))
    assert precision.precision_policy("auto", strategy, resnet50) == "mixed_bfloat16"
    assert precision.precision_policy("auto", strategy, lenet) == "float32"
    # a native kind not measured yet: by step size; an emulating one never
    assert not precision.bfloat16_trains_faster("arm_bf16", lenet) and precision.bfloat16_trains_faster("arm_bf16", resnet)
    assert not precision.bfloat16_trains_faster("avx2", resnet50)
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(8, 0), (9, 0)])
    assert precision.precision_policy("auto", strategy) == "mixed_float16"
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(8, 0), (6, 1)])  # one without tensor cores
    assert precision.precision_policy("auto", strategy) == "float32"
    assert precision.precision_policy("mixed", strategy) == "mixed_float16"
    assert precision.precision_policy("float32", strategy) == "float32"
    assert FinetuneConfig().precision == "auto"


def fake_cpuinfo(monkeypatch, tmp_path, text: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    real_path = runtime.Path
    monkeypatch.setattr(runtime, "Path", lambda path: real_path(cpuinfo) if path == "/proc/cpuinfo" else real_path(path))


def test_cpu_bfloat16_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not precision.cpu_has_bfloat16()
    fake_cpuinfo(monkeypatch, tmp_path, "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert precision.cpu_has_bfloat16()
    fake_cpuinfo(monkeypatch, tmp_path, "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")  # Arm
    assert precision.cpu_has_bfloat16()


def test_onednn_is_turned_on_for_avx2_cpus_unless_the_user_chose(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    environment = {}
    runtime.use_onednn(environment)
    assert environment == {runtime.ONEDNN_ENV: "1"}
    chosen = {runtime.ONEDNN_ENV: "0"}
    runtime.use_onednn(chosen)
    assert chosen == {runtime.ONEDNN_ENV: "0"}
    fake_cpuinfo(monkeypatch, tmp_path, "processor\t: 0\nFeatures\t: fp asimd\n")  # not x86: TensorFlow decides
    environment = {}
    runtime.use_onednn(environment)
    assert environment == {}


def test_auto_augmentation_is_affine_in_full_mode_and_keeps_head_features_cacheable():
    assert FinetuneConfig().augment == "auto" and FinetuneConfig().augment_preset() == "affine"
    assert FinetuneConfig(mode="head").augment_preset() == "none"
    assert FinetuneConfig(augment="light").augment_preset() == "light"


def test_xla_compiled_step_trains_like_the_plain_one(folder):
    # XLA compiles the per-replica step; the loop around the iterator stays outside it.
    # no augmentation: XLA draws its random numbers differently
    plain = finetune(config_for(folder, mode="full", epochs=1, steps_per_execution=2, augment="none"), verbose=0)
    compiled = finetune(config_for(folder, mode="full", epochs=1, steps_per_execution=2, augment="none", jit=True),
                        verbose=0)
    plain_loss, compiled_loss = float(plain.history[-1]["loss"]), float(compiled.history[-1]["loss"])
    assert np.isfinite(compiled_loss)
    assert abs(compiled_loss - plain_loss) <= 0.02 * plain_loss


def test_augmentation_mixup_and_label_smoothing_train(folder):
    result = finetune(config_for(folder, augment="strong", mixup=0.2, label_smoothing=0.1, epochs=1), verbose=0)
    assert np.isfinite(float(result.history[-1]["loss"]))


def run_zoo(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "finetune", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


# no augmentation: each replica of a mirrored run draws its own random shifts
FOLDER_ARGS = ["--image-size", "32", "--channels", "3", "--batch-size", "8", "--seed", "1", "--lr", "3e-3",
               "--augment", "none"]


def test_resume_after_kill_records_each_epoch_once(folder, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "finetune", "finetune", "lenet5", "--data", str(folder), "--epochs", "500", "--out",
            str(out), "--quiet", *FOLDER_ARGS]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        rows = list(csv.DictReader((out / "history.csv").open())) if (out / "history.csv").is_file() else []
        if len(rows) >= 2:
            break
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = list(csv.DictReader((out / "history.csv").open()))
    assert 2 <= len(interrupted) < 500
    total = len(interrupted) + 2
    result = run_zoo("finetune", "lenet5", "--out", str(out), "--resume", "--epochs", str(total), "--quiet")
    assert result.returncode == 0, result.stderr
    history = list(csv.DictReader((out / "history.csv").open()))
    assert [int(row["epoch"]) for row in history] == list(range(1, total + 1))
    # every epoch recorded before the kill stays as it was: a row is written only after its
    # epoch's checkpoint, so none is ever run again
    assert history[: len(interrupted)] == interrupted


def test_mirrored_on_two_cpu_devices_matches_one_device(folder, tmp_path):
    losses = {}
    for strategy, batch, env in (("one", "16", {}), ("mirrored", "8", {"ZOO_CPU_REPLICAS": "2"})):
        out = tmp_path / strategy
        args = ["finetune", "lenet5", "--data", str(folder), "--epochs", "2", "--out", str(out), "--quiet",
                *FOLDER_ARGS, "--strategy", strategy, "--batch-size", batch]
        result = run_zoo(*args, env=env)
        assert result.returncode == 0, result.stderr
        losses[strategy] = [float(row["loss"]) for row in csv.DictReader((out / "history.csv").open())]
    np.testing.assert_allclose(losses["mirrored"], losses["one"], rtol=1e-3)


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = run_zoo("finetune", "lenet5", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Error:" in result.stderr
    result = run_zoo("finetune", "lenett5")
    assert result.returncode != 0 and "Did you mean lenet5" in result.stderr
