"""Learning-rate schedules and optimizers."""

import keras
import numpy as np
import pytest

from finetune.training import optim
from finetune.training.config import FinetuneConfig
from zoo.errors import ZooError


def values(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_cosine_with_linear_warmup():
    schedule = optim.schedule("cosine", 0.1, steps_per_epoch=10, epochs=10, warmup_epochs=1)
    warm = values(schedule, range(10))
    np.testing.assert_allclose(warm, 0.1 * np.arange(1, 11) / 10, rtol=1e-5)
    after = values(schedule, [10, 55, 99])
    np.testing.assert_allclose(after, [optim.cosine_value(0.1, step, 90) for step in (0, 45, 89)], rtol=1e-4)


def test_step_and_exponential_decay():
    step = optim.schedule("step", 1.0, steps_per_epoch=5, epochs=30, step_every=10, decay_rate=0.1)
    np.testing.assert_allclose(values(step, [0, 49, 50, 100]), [1.0, 1.0, 0.1, 0.01], rtol=1e-6)
    exponential = optim.schedule("exponential", 1.0, steps_per_epoch=5, epochs=30, step_every=10, decay_rate=0.1)
    np.testing.assert_allclose(values(exponential, [50]), [0.1], rtol=1e-4)
    constant = optim.schedule("constant", 0.3, steps_per_epoch=5, epochs=3)
    np.testing.assert_allclose(values(constant, [0, 100]), [0.3, 0.3])


def test_optimizers_and_their_options():
    sgd = optim.optimizer("sgd", 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4, clip_norm=1.0)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9 and sgd.clipnorm == 1.0
    assert isinstance(optim.optimizer("adamw", 1e-3, weight_decay=0.05), keras.optimizers.AdamW)
    assert optim.optimizer("adam", 1e-3, ema=0.99).use_ema
    assert isinstance(optim.optimizer("rmsprop", 1e-3), keras.optimizers.RMSprop)
    with pytest.raises(ZooError):
        optim.optimizer("lamb", 1e-3)


def test_warmup_schedule_serializes():
    schedule = optim.schedule("cosine", 0.1, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    np.testing.assert_allclose(values(restored, [3, 30]), values(schedule, [3, 30]))


def test_config_rejects_bad_settings_and_round_trips(tmp_path):
    with pytest.raises(ZooError, match="mode"):
        FinetuneConfig(mode="partial").validate()
    with pytest.raises(ZooError, match="head-epochs"):
        FinetuneConfig(mode="head", head_epochs=2).validate()
    config = FinetuneConfig(model="resnet18", lr=0.05, augment="standard", model_options={"config": "resnet18"})
    config.save(tmp_path / "config.json")
    assert FinetuneConfig.load(tmp_path) == config
    (tmp_path / "bad.json").write_text('{"learning_rate": 1}')
    with pytest.raises(ZooError, match="unknown settings"):
        FinetuneConfig.load(tmp_path / "bad.json")
