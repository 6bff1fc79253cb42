"""The Show and Tell captioner: model, text, decoding, BLEU, training run, round trips, export, CLI."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from nltk.translate import bleu_score as nltk_bleu  # a dev dependency: the reference implementation
from PIL import Image

import zoo
from finetune import captioning
from finetune.cli import main
from finetune.captioning import inputs as captioning_inputs
from finetune.captioning import training as captioning_training
from finetune.captioning.bleu import bleu_scores, corpus_bleu
from finetune.training.runfolder import read_history, write_history
from zoo import decoding, text
from zoo.models.captioner import Captioner

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 40)}
IMAGE_SHAPE = (32, 32, 3)
WORDS = ("a", "red", "green", "blue", "square", "circle", "left", "of")
VOCABULARY = [*text.SPECIAL_TOKENS, *WORDS]


def expected_caption(colour):
    return f"a {colour} square filling the picture"


def colour_split(copies, seed):
    """Solid colours with a little noise; two references per image that normalize to the same."""
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for name, rgb in COLOURS.items():
        for _ in range(copies):
            images.append(np.clip(np.array(rgb) + rng.normal(0, 8, IMAGE_SHAPE), 0, 255).astype("float32"))
            captions.append([f"A {name.upper()} square, filling the picture.", expected_caption(name)])
    return tf.data.Dataset.from_tensor_slices((np.stack(images), tf.constant(captions)))


def colour_bundle():
    return types.SimpleNamespace(train=colour_split(4, 0), validation=colour_split(1, 1), test=colour_split(1, 2))


RUN_SETTINGS = dict(backbone="lenet5", image_size=32, batch_size=8, lr=1e-2, lr_schedule="constant",
                    train_encoder=False, units=32, embedding_dim=16, dropout=0.0, num_samples=4, verbose=0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("captioning") / "run"
    metrics = captioning.train_captioner(data=colour_bundle(), epochs=15, out=out, **RUN_SETTINGS)
    return out, metrics


def small_captioner(rnn="lstm", num_layers=1, seed=0):
    keras.utils.set_random_seed(seed)
    return zoo.create("captioner", backbone="lenet5", rnn=rnn, vocabulary=VOCABULARY, input_shape=IMAGE_SHAPE,
                      units=16, embedding_dim=8, num_layers=num_layers, max_caption_length=6)


def random_images(count=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *IMAGE_SHAPE)).astype("float32")


# Text

def test_one_normalization_lowercases_and_strips_punctuation():
    normalized = text.normalize_captions(["A Red-Circle,  LEFT of it!", "  two\tspaces "]).numpy()
    assert list(normalized) == [b"a redcircle left of it", b"two spaces"]
    assert text.caption_words(["The cat's hat."]) == [["the", "cats", "hat"]]


def test_vocabulary_counts_words_with_special_tokens_first():
    captions = ["a red circle", "A red square.", "a blue circle"]
    assert text.build_vocabulary(captions) == [*text.SPECIAL_TOKENS, "a", "circle", "red", "blue", "square"]
    assert text.build_vocabulary(captions, min_count=2) == [*text.SPECIAL_TOKENS, "a", "circle", "red"]
    assert text.build_vocabulary(captions, max_size=6) == [*text.SPECIAL_TOKENS, "a", "circle"]


def test_captions_become_start_words_end_and_padding():
    vectorizer = text.caption_vectorizer(VOCABULARY)
    ids = text.encode_captions(vectorizer, tf.constant(["A red square!", "a purple square of a circle"]), 4).numpy()
    start, end, unknown = text.START_ID, text.END_ID, text.UNKNOWN_ID
    word = {token: index for index, token in enumerate(VOCABULARY)}
    assert ids.tolist() == [
        [start, word["a"], word["red"], word["square"], end, 0],
        [start, word["a"], unknown, word["square"], word["of"], end],  # cut to 4 words, end kept
    ]
    assert text.ids_to_text(VOCABULARY, ids[0, 1:]) == "a red square"


# Model

@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_shapes_through_the_model(rnn):
    model = small_captioner(rnn, num_layers=2)
    tokens = np.array([[2, 4, 5, 0], [2, 4, 0, 0]])
    logits = model([random_images(2), tokens])
    assert tuple(logits.shape) == (2, 4, len(VOCABULARY))
    assert model.encoder.output_shape == (None, 120)
    assert model.decoder.get_layer(f"{rnn}_2") is not None
    assert not model.encoder.trainable_weights, "the encoder is frozen by default"
    headless = zoo.create("captioner", backbone="lenet5", include_top=False, pooling="avg", input_shape=IMAGE_SHAPE)
    assert headless.output_shape == (None, 120)
    flat = zoo.create("captioner", backbone="lenet5", vocabulary=VOCABULARY, input_shape=(36, 36, 3),
                      encoder_pooling="flatten")
    assert flat.encoder.output_shape == (None, 2 * 2 * 120)  # lenet5's last map at 36x36 is 2x2


def test_default_captioner_matches_its_spec():
    model = zoo.create("captioner")
    spec = zoo.info("captioner")
    assert model.count_params() == spec.num_params
    assert model.image_shape == spec.default_input_shape
    with pytest.raises(zoo.ZooError, match="rnn must be"):
        zoo.create("captioner", backbone="lenet5", rnn="transformer", input_shape=IMAGE_SHAPE)
    keras.backend.clear_session()


def test_padding_does_not_change_the_loss():
    model = small_captioner()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    images = random_images(2)
    inputs = np.array([[2, 4, 5, 6], [2, 4, 0, 0]])
    targets = np.array([[4, 5, 6, 3], [4, 3, 0, 0]])
    padded_inputs = np.pad(inputs, ((0, 0), (0, 5)))
    padded_targets = np.pad(targets, ((0, 0), (0, 5)))
    short = float(loss(targets, model([images, inputs])))
    long = float(loss(padded_targets, model([images, padded_inputs])))
    assert short == pytest.approx(long, rel=1e-6)
    # and the padding really is left out: the mean over the 6 real tokens, not the 8 slots
    logits = model([images, inputs]).numpy()
    per_token = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True).numpy()
    assert short == pytest.approx(per_token[targets > 0].mean(), rel=1e-5)


def test_step_decoding_matches_teacher_forcing():
    model = small_captioner("gru", num_layers=2)
    images = random_images(2)
    tokens = np.array([[2, 4, 5], [2, 6, 7]])
    full = model([images, tokens]).numpy()
    states = model.initial_states(images)
    for step in range(tokens.shape[1]):
        logits, states = model.next_word_logits(tf.constant(tokens[:, step]), states)
        np.testing.assert_allclose(logits.numpy(), full[:, step], atol=1e-5)


# Decoding

@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_greedy_equals_beam_search_of_width_one(rnn):
    model = small_captioner(rnn, num_layers=2, seed=3)
    images = random_images(6, seed=1)
    greedy = decoding.greedy_search(model, images).numpy()
    np.testing.assert_array_equal(decoding.beam_search(model, images, beam_width=1).numpy(), greedy)
    np.testing.assert_array_equal(
        decoding.beam_search(model, images, beam_width=1, length_penalty=0.0).numpy(), greedy)


def test_captions_never_hold_special_tokens():
    model = small_captioner(seed=5)
    images = random_images(6, seed=2)
    for ids in (decoding.greedy_search(model, images), decoding.beam_search(model, images, beam_width=4)):
        ids = ids.numpy()
        assert ids.shape == (6, model.max_caption_length)
        assert not np.isin(ids, [text.UNKNOWN_ID, text.START_ID, text.END_ID]).any()
        for row in ids:  # padding only after the caption, and never an empty caption
            words = np.flatnonzero(row)
            assert len(words) > 0 and words.tolist() == list(range(len(words)))
    for caption in decoding.CaptionGenerator(model)(images, beam_width=3):
        assert caption and not set(caption.split()) & set(text.SPECIAL_TOKENS)


# BLEU

def test_corpus_bleu_matches_nltk():
    rng = random.Random(0)
    words = "a the red blue circle square left of to small".split()
    for _ in range(50):
        size = rng.randint(1, 5)
        references = [[[rng.choice(words) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 4))]
                      for _ in range(size)]
        hypotheses = [[rng.choice(words) for _ in range(rng.randint(0, 9))] for _ in range(size)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nltk warns when an order has no match
            expected = nltk_bleu.corpus_bleu(references, hypotheses,
                                             weights=[(1.0,), (1 / 2,) * 2, (1 / 3,) * 3, (1 / 4,) * 4])
        assert corpus_bleu(references, hypotheses) == pytest.approx(expected, abs=1e-12)


def test_bleu_known_values():
    references = [["a red circle left of a blue square", "A red circle beside a blue square."]]
    assert bleu_scores(references, ["a red circle left of a blue square"]) == {f"bleu{n}": 1.0 for n in (1, 2, 3, 4)}
    assert bleu_scores(references, ["green triangles everywhere"])["bleu1"] == 0.0
    # 4 of 4 unigrams match, but the closest reference has 7 words: brevity penalty exp(1 - 7/4)
    short = bleu_scores(references, ["a red blue square"])
    assert short["bleu1"] == pytest.approx(math.exp(1 - 7 / 4))
    # corpus statistic, not a mean of sentence scores: counts are pooled over images
    pooled = corpus_bleu([[["a", "b"]], [["c", "d", "e", "f"]]], [["a", "b"], ["c", "x", "y", "z"]], max_order=1)
    assert pooled == [pytest.approx(3 / 6)]


# The training run

def test_tiny_set_is_overfit_to_its_exact_captions(trained_run):
    out, metrics = trained_run
    assert metrics["greedy"]["bleu4"] == 1.0 and metrics["beam"]["bleu4"] == 1.0
    model = captioning.load_captioner(out)
    images = np.stack([image for image, _ in colour_split(1, 7).as_numpy_iterator()])
    expected = [expected_caption(name) for name in COLOURS]
    generator = decoding.CaptionGenerator(model)
    assert generator(images, beam_width=1) == expected
    assert generator(images, beam_width=3) == expected


def test_run_folder_holds_every_artifact(trained_run):
    out, metrics = trained_run
    for name in ("config.json", "captioner.json", "history.csv", "metrics.json", "best.keras", "last.keras",
                 "samples.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "captioning" and config["rnn"] == "lstm" and config["epochs"] == 15
    rows = read_history(out / "history.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(1, 16))  # epochs completed, as classifiers count
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((out / "logs" / "validation").glob("events.out.tfevents.*"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["split"] == "test" and saved["images"] == len(COLOURS)
    assert set(saved["greedy"]) == set(saved["beam"]) == {"bleu1", "bleu2", "bleu3", "bleu4"}
    assert len(saved["samples"]) == 4 and saved["samples"][0]["references"]


def test_keras_file_round_trip_in_safe_mode(trained_run, tmp_path):
    out, _ = trained_run
    model = keras.saving.load_model(out / "best.keras", safe_mode=True)
    assert isinstance(model, Captioner) and model.vocabulary[:4] == list(text.SPECIAL_TOKENS)
    model.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)
    images, tokens = random_images(2), np.array([[2, 4, 5], [2, 6, 0]])
    np.testing.assert_array_equal(model.predict([images, tokens], verbose=0),
                                  again.predict([images, tokens], verbose=0))
    assert again.get_config() == model.get_config()


def test_resume_continues_after_the_last_completed_epoch(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    finished = read_history(out / "history.csv")
    # killed after epoch 15's checkpoint, before its history row: the checkpoint holds the row
    write_history(out / "history.csv", finished[:-1])
    with pytest.raises(zoo.ZooError, match="units=64 \\(the run has 32\\)"):
        captioning.train_captioner(data=colour_bundle(), epochs=17, out=out, resume=True,
                                   **{**RUN_SETTINGS, "units": 64})
    with pytest.raises(zoo.ZooError, match="already holds a run"):
        captioning.train_captioner(data=colour_bundle(), epochs=17, out=out, **RUN_SETTINGS)
    metrics = captioning.train_captioner(data=colour_bundle(), epochs=17, out=out, resume=True, **RUN_SETTINGS)
    rows = read_history(out / "history.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(1, 18))
    assert rows[:15] == finished
    assert metrics["epochs_completed"] == 17 and metrics["greedy"]["bleu4"] == 1.0


def test_a_trained_encoder_sees_each_image_once_for_all_its_captions():
    keras.utils.set_random_seed(0)
    model = zoo.create("captioner", backbone="lenet5", vocabulary=VOCABULARY, input_shape=IMAGE_SHAPE,
                       units=16, embedding_dim=8, max_caption_length=6, train_encoder=True)
    assert model.encoder.trainable_weights
    vectorizer = text.caption_vectorizer(VOCABULARY)
    images = random_images(2)
    captions = [["a red square", "a blue circle left of a square"], ["a green circle", ""]]
    dataset = tf.data.Dataset.from_tensor_slices((images, tf.ragged.constant(captions).to_tensor()))
    dataset = dataset.map(lambda image, refs: (image, tf.boolean_mask(refs, tf.strings.length(refs) > 0)))
    (batch_images, inputs), targets = next(iter(
        captioning_inputs.images_with_captions(dataset, vectorizer, model, images_per_step=2, seed=0)))
    assert inputs.shape[:2] == (2, 2) and targets.shape[0] == 4  # the second image's second row is padding
    trainer = captioning_training.EveryCaptionOfEachImage(model)
    logits = trainer([batch_images, inputs]).numpy()
    for row, (image, reference) in enumerate([(0, 0), (0, 1), (1, 0)]):  # the same as (image, caption) pairs
        pair = model([batch_images[image:image + 1], inputs[image, reference:reference + 1]]).numpy()
        np.testing.assert_allclose(logits[row], pair[0], atol=1e-5)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    without_padding = loss(tf.gather(targets, [0, 1, 2]), model.decoder(
        [tf.repeat(model.encoder(batch_images), [2, 1], axis=0), tf.reshape(inputs, [4, -1])[:3]]))
    assert float(loss(targets, trainer([batch_images, inputs]))) == pytest.approx(float(without_padding), rel=1e-5)


def test_backbone_weights_load_into_the_encoder(tmp_path):
    keras.utils.set_random_seed(1)
    pretrained = zoo.create("lenet5", input_shape=IMAGE_SHAPE)
    pretrained.save(tmp_path / "lenet5.keras")
    model = small_captioner()
    captioning_training._load_backbone_weights(model, str(tmp_path / "lenet5.keras"))
    np.testing.assert_array_equal(model.encoder.get_layer("lenet5").get_layer("c1").kernel.numpy(),
                                  pretrained.get_layer("c1").kernel.numpy())


# Serving

def write_images(folder):
    paths = []
    for name in ("red", "blue"):
        path = folder / f"{name}.png"
        Image.fromarray(np.full((40, 50, 3), COLOURS[name], np.uint8)).save(path)
        paths.append(path)
    return paths


def test_export_round_trip_in_a_fresh_tensorflow_process(trained_run, tmp_path):
    out, _ = trained_run
    target = captioning.export_captioner(out, tmp_path / "serving", "colours", 3)
    assert target == tmp_path / "serving" / "colours" / "3" and (target / "saved_model.pb").is_file()
    assert not [child for child in target.parent.iterdir() if child.name.startswith(".")]
    with pytest.raises(zoo.ZooError, match="already exists"):
        captioning.export_captioner(out, tmp_path / "serving", "colours", 3)
    paths = write_images(tmp_path)
    program = (
        "import sys\n"
        "sys.modules.update(keras=None, tf_keras=None, zoo=None, finetune=None)  # TensorFlow alone\n"
        "import tensorflow as tf\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "images = tf.constant([open(path, 'rb').read() for path in sys.argv[2:]])\n"
        "for name in ('serving_default', 'greedy'):\n"
        "    print(*[c.decode() for c in loaded.signatures[name](images=images)['captions'].numpy()], sep='|')\n"
    )
    result = subprocess.run([sys.executable, "-c", program, str(target), *map(str, paths)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    expected = "|".join(expected_caption(name) for name in ("red", "blue"))
    assert result.stdout.split("\n")[:2] == [expected, expected]


def test_cli_captions_with_an_export(trained_run, tmp_path, capsys):
    captioning.export_captioner(trained_run[0], tmp_path / "serving", "colours", 1, beam_width=2)
    red, _ = write_images(tmp_path)
    for beam in ([], ["--beam", "1"], ["--beam", "2"]):  # the folder of versions: its latest
        assert main(["caption", str(tmp_path / "serving" / "colours"), str(red), *beam]) == 0
        assert capsys.readouterr().out.strip() == f"{red}: {expected_caption('red')}"
    assert main(["caption", str(tmp_path / "serving" / "colours" / "1"), str(red), "--beam", "5"]) == 1
    assert "beam width 2" in capsys.readouterr().err


def test_cli_captions_images_and_reports_bad_paths(trained_run, tmp_path, capsys):
    out, _ = trained_run
    red, blue = write_images(tmp_path)
    assert main(["caption", str(out), str(red), str(blue), "--beam", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{red}: {expected_caption('red')}",
                                                    f"{blue}: {expected_caption('blue')}"]
    assert main(["caption", str(out / "best.keras"), str(red)]) == 0
    assert capsys.readouterr().out.strip() == f"{red}: {expected_caption('red')}"
    for arguments in ([str(tmp_path / "missing"), str(red)], [str(out), str(tmp_path / "missing.png")],
                      [str(out), str(out / "config.json")], [str(tmp_path), str(red)]):
        assert main(["caption", *arguments]) == 1
        error = capsys.readouterr().err
        assert error.startswith("Error: ") and len(error.strip().splitlines()) == 1 and "Traceback" not in error


def test_zoo_export_of_a_captioning_run_gives_a_captioning_saved_model(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run[0]), "--out", str(tmp_path / "serving"), "--name", "captions"]) == 0
    assert "captions (beam search)" in capsys.readouterr().out
    red, _ = write_images(tmp_path)
    assert main(["caption", str(tmp_path / "serving" / "captions"), str(red)]) == 0
    assert capsys.readouterr().out.strip() == f"{red}: {expected_caption('red')}"
