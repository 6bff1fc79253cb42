"""Processes that share a disk: the two workers of a multi-worker run, and two runs started together,
each on an empty data folder that the built-in data is generated into once, under a lock. All the
processes start at once (a module fixture); each test waits for its own."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

import layouts

TINY_RUN = ["--data", "builtin:zoo_shapes/tiny", "--epochs", "1", "--batch-size", "32", "--quiet"]
TIMEOUT = 300


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def zoo(*args, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "finetune", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def workers(out, data_dir, worker_args: list[list[str]]) -> list[subprocess.Popen]:
    """The workers of one `--strategy multiworker` run on loopback, worker i with worker_args[i]."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(worker_args))]}
    return [zoo("finetune", "lenet5", "--strategy", "multiworker", "--out", out, *args,
                env={"ZOO_DATA_DIR": str(data_dir),
                     "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})})
            for index, args in enumerate(worker_args)]


def finished(processes) -> list[tuple[int, str]]:
    """(exit code, stderr) of each process, once all have ended."""
    results = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        results.append((process.returncode, stderr))
    return results


@pytest.fixture(scope="module")
def started_together(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    folders = {name: root / name for name in ("multiworker_data", "plain_data", "failing_data")}
    colours = layouts.class_folders(root / "colours", count=6)
    for folder in folders.values():
        folder.mkdir()
    # What a preparation killed midway leaves: TFDS's temporary folder, never renamed into place.
    leftover = folders["plain_data"] / "zoo_shapes" / "tiny" / "incomplete.KILLED_1.2.0"
    leftover.mkdir(parents=True)
    (leftover / "zoo_shapes-train.tfrecord-00000-of-00001").write_bytes(b"half")
    processes = {
        "multiworker": workers(root / "multiworker_run", folders["multiworker_data"], [TINY_RUN, TINY_RUN]),
        "plain": [zoo("finetune", "lenet5", "--out", root / f"plain_run_{index}", *TINY_RUN,
                      env={"ZOO_DATA_DIR": str(folders["plain_data"])}) for index in range(2)],
        # worker 1 is given a data folder that is not there: worker 0 must stop too, and say why
        "failing": workers(root / "failing_run", folders["failing_data"],
                           [[*TINY_RUN, "--data", colours], [*TINY_RUN, "--data", root / "not_here"]]),
    }
    yield root, processes, leftover
    for group in processes.values():
        for process in group:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_two_multiworker_workers_on_an_empty_data_dir_both_finish(started_together):
    root, processes, _ = started_together
    for code, stderr in finished(processes["multiworker"]):
        assert code == 0, stderr[-3000:]
    rows = list(csv.DictReader((root / "multiworker_run" / "history.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [1]
    assert not list((root / "multiworker_run").glob(".worker-*")), "non-chief workers must not leave files behind"
    prepared = root / "multiworker_data" / "zoo_shapes" / "tiny"
    assert [path.name for path in prepared.iterdir() if not path.name.startswith(".")] == ["1.2.0"]


def test_two_runs_started_together_on_an_empty_data_dir_both_finish(started_together):
    root, processes, leftover = started_together
    for code, stderr in finished(processes["plain"]):
        assert code == 0, stderr[-3000:]
    for index in range(2):
        metrics = json.loads((root / f"plain_run_{index}" / "metrics.json").read_text())
        assert metrics["epochs_completed"] == 1 and metrics["train_examples"] == 192
    assert not leftover.exists(), "the interrupted preparation's folder is removed, not read"


def test_a_failing_worker_stops_the_other_with_one_message_naming_it(started_together):
    root, processes, _ = started_together
    (chief_code, chief_stderr), (failed_code, failed_stderr) = finished(processes["failing"])
    assert failed_code == 1 and f"Error: no such folder: {root / 'not_here'}" in failed_stderr
    assert chief_code == 1 and "Traceback" not in chief_stderr
    errors = [line for line in chief_stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: worker 1 of this multi-worker run failed: no such folder: {root / 'not_here'}; "
                      f"worker 0 stopped too. Fix what that worker's message says and start every worker again"]
