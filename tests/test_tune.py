"""zoo tune: random search, coarse to fine, on the validation split; the best config is reusable."""

import csv
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from finetune.practice import tune as tuning  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from test_doctor import image_folder  # noqa: E402
from finetune.cli import main  # noqa: E402
from finetune.cli.jobs.training import build_config  # noqa: E402
from zoo.errors import ZooError  # noqa: E402


def test_log_uniform_samples_every_order_of_magnitude_alike():
    rng = np.random.default_rng(0)
    values = np.array([tuning.LogUniform(1e-5, 1e-1).sample(rng) for _ in range(4000)])
    assert values.min() >= 1e-5 and values.max() <= 1e-1
    per_decade = np.histogram(np.log10(values), bins=4, range=(-5, -1))[0]
    assert per_decade.min() > 0.8 * per_decade.max()


def test_narrowing_shrinks_ranges_around_the_best_and_keeps_their_choices():
    space = {"lr": tuning.LogUniform(1e-4, 1e-1), "dropout": tuning.Uniform(0.0, 0.5),
             "optimizer": tuning.Choice(("adam", "adamw", "sgd"))}
    best = [{"lr": 1e-3, "dropout": 0.1, "optimizer": "sgd"}, {"lr": 2e-3, "dropout": 0.2, "optimizer": "adam"}]
    narrowed = tuning.narrow(space, best)
    assert 1e-4 < narrowed["lr"].low < 1e-3 and 2e-3 < narrowed["lr"].high < 1e-2
    assert narrowed["dropout"].low == pytest.approx(0.1 - 0.0625) and narrowed["dropout"].high == pytest.approx(0.2625)
    assert narrowed["optimizer"].values == ("adam", "sgd")
    edge = tuning.narrow(space, [{"lr": 1e-4, "dropout": 0.0, "optimizer": "adam"}])
    assert edge["lr"].low == pytest.approx(1e-4) and edge["dropout"].low == 0.0  # clipped to the first round's range


def test_trials_split_over_rounds():
    assert tuning.round_sizes(8, 2) == [4, 4]
    assert tuning.round_sizes(7, 2) == [4, 3]
    assert tuning.round_sizes(3, 3) == [1, 1, 1]


def test_ranking_uses_validation_accuracy_then_loss_and_skips_failures():
    rows = [{"trial": 1, "status": "done", "val_accuracy": 0.8, "val_loss": 0.5},
            {"trial": 2, "status": "failed: the loss became nan", "val_accuracy": np.nan, "val_loss": np.nan},
            {"trial": 3, "status": "done", "val_accuracy": 0.9, "val_loss": 0.4},
            {"trial": 4, "status": "done", "val_accuracy": 0.9, "val_loss": 0.3}]
    assert [row["trial"] for row in tuning.ranked(rows)] == [4, 3, 1]
    # The next round narrows around the best third (two of these four), less any far behind the best.
    assert [row["trial"] for row in tuning.best_trials(rows)] == [4, 3]
    rows[2]["val_accuracy"] = rows[3]["val_accuracy"] = 0.45
    assert [row["trial"] for row in tuning.best_trials(rows)] == [1]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A two-round search of three one-epoch trials on a tiny folder."""
    folder = image_folder(tmp_path_factory.mktemp("quadrants"))
    base = FinetuneConfig(model="lenet5", data=str(folder), epochs=4, batch_size=16, validation_fraction=0.25)
    space = {"lr": tuning.LogUniform(3e-4, 1e-2), "batch_size": tuning.Choice((8, 16)),
             "augment": tuning.Choice(("none", "light"))}
    out = tmp_path_factory.mktemp("tune") / "search"
    return base, space, out, tuning.tune(base, out, trials=3, rounds=2, budget_epochs=1, space=space, verbose=0)


def test_search_writes_a_table_a_plot_and_a_reusable_best_config(search):
    base, _, out, result = search
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(row["trial"], row["round"]) for row in rows] == [("1", "1"), ("2", "1"), ("3", "2")]
    assert all(row["status"] == "done" and 0 <= float(row["val_accuracy"]) <= 1 for row in rows)
    assert not any("test" in column for column in rows[0])  # judged on validation only
    assert (out / "results.png").stat().st_size > 1000
    for row in rows:
        trial = FinetuneConfig.load(row["folder"])
        assert trial.epochs == 1 and trial.lr == pytest.approx(float(row["lr"]))

    best = FinetuneConfig.load(out / "best" / "config.json")
    assert best.epochs == base.epochs  # the full run, not the trial's budget
    assert best.lr == pytest.approx(result.best["lr"]) and best.batch_size == result.best["batch_size"]
    assert result.best["val_accuracy"] == max(float(row["val_accuracy"]) for row in rows)
    reused = build_config("lenet5", {"config_file": str(out / "best" / "config.json"), "epochs": 2})
    assert reused.lr == best.lr and reused.epochs == 2


def test_the_second_round_samples_inside_the_narrowed_space(search):
    _, space, _, result = search
    first_round = [row for row in result.results if row["round"] == 1]
    narrowed = tuning.narrow(space, tuning.best_trials(first_round))
    second = [row for row in result.results if row["round"] == 2][0]
    assert narrowed["lr"].low <= second["lr"] <= narrowed["lr"].high
    assert second["augment"] in narrowed["augment"].values and second["batch_size"] in narrowed["batch_size"].values


def test_running_again_continues_instead_of_retraining(search):
    base, space, out, result = search
    stamps = {path: path.stat().st_mtime for path in out.glob("trials/*/metrics.json")}
    again = tuning.tune(base, out, trials=3, rounds=2, budget_epochs=1, space=space, verbose=0)
    assert [row["val_accuracy"] for row in again.results] == [row["val_accuracy"] for row in result.results]
    assert {path: path.stat().st_mtime for path in out.glob("trials/*/metrics.json")} == stamps
    with pytest.raises(ZooError, match="other settings"):
        tuning.tune(base, out, trials=4, rounds=2, budget_epochs=1, space=space, verbose=0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["tune", "lenet5", "--trials", "1", "--rounds", "2", "--out", str(tmp_path / "t")]) == 1
    assert "at least one trial per round" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["tune", "lenet5", "--out", str(tmp_path / "busy")]) == 1
    assert json.dumps("pick another --out")[1:-1] in capsys.readouterr().err
