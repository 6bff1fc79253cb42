"""Feeding one trainer from many machines: the training stream on tf.data service workers.

The tf.data service (`tf.data.experimental.service`) runs a dataset's graph on worker processes,
each on any machine that reaches a dispatcher; the trainer reads the elements they produce. The kit
sends it the training stream up to decoding: reading files, checking them, random-resized-crops
and flips, decoding. Batching, colour augmentation and preprocessing stay on the trainer, so that
every batch is full-sized whatever the number of workers, and what crosses the network is uint8
images at the model's size.

Sharding policy: `distributed_epoch`. The dispatcher hands the file list out to the workers in
pieces as they ask for more, so each example is read by exactly one worker and seen once per
epoch; a faster worker simply reads more of it. Each epoch is a new job. Because the workers split
the list of files, the kit carves validation splits and caps the number of examples on that list
before it is sent (`finetune.data.source`), never by position in the stream.

Start a dispatcher and workers, then pass the dispatcher's address to the trainer:

    python -m finetune.data.service dispatcher --port 5050            # on any machine
    python -m finetune.data.service worker --dispatcher HOST:5050     # on each machine that decodes
    zoo finetune resnet50 --data /shared/photos --data-service grpc://HOST:5050

Workers run TensorFlow graphs only (the same TensorFlow version as the trainer) and read the files
at the paths the trainer sees, so the data must be at the same path on every machine (a shared or
copied folder).
"""

from __future__ import annotations

import argparse
import socket

import tensorflow as tf

from finetune.data.source import Source
from zoo.errors import ZooError

PROTOCOL = "grpc"
SHARDING = tf.data.experimental.service.ShardingPolicy.DYNAMIC  # "distributed_epoch": each example once an epoch


def check_address(address: str) -> str:
    """A dispatcher address as the service takes it: grpc://host:port (the scheme may be left out)."""
    text = str(address).strip()
    if "://" not in text:
        text = f"{PROTOCOL}://{text}"
    scheme, rest = text.split("://", 1)
    host, _, port = rest.rpartition(":")
    if scheme != PROTOCOL or not host or not port.isdigit():
        raise ZooError(f"--data-service takes a dispatcher address such as grpc://trainer-host:5050, not {address!r}")
    return text


def refuse_balance(balance: str | None) -> None:
    """Balanced sampling draws from endless per-class streams, which no worker could split into epochs."""
    if balance is not None:
        raise ZooError("--balance cannot be used with --data-service: leave one out (--class-weights also "
                       "corrects for imbalance)")


def check_usable(source: Source, balance: str | None, carved: bool) -> None:
    """Refuses what the service cannot run faithfully: balanced sampling (endless per-class streams,
    which no worker could split into epochs), and splits carved by position in a stream (a TFDS
    dataset without a validation split, or capped)."""
    refuse_balance(balance)
    if carved and not source.arrays:
        raise ZooError(f"{source.description}: --data-service needs a data set with its own validation split, and no "
                       f"--max-examples or --folds, unless it is a folder of images")


def distribute(images: tf.data.Dataset, address: str) -> tf.data.Dataset:
    """`images` produced by the service's workers, each element once per pass (a new job each time
    the stream is iterated)."""
    return images.apply(tf.data.experimental.service.distribute(processing_mode=SHARDING,
                                                                service=check_address(address)))


def serve(argv: list[str] | None = None) -> None:
    """`python -m finetune.data.service dispatcher|worker`: a dispatcher, or a worker of one, until stopped."""
    parser = argparse.ArgumentParser(prog="python -m finetune.data.service", description=serve.__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    dispatcher = roles.add_parser("dispatcher", help="the service's dispatcher: give its address to --data-service")
    dispatcher.add_argument("--port", type=int, default=5050)
    worker = roles.add_parser("worker", help="a worker that runs the training stream's reading and decoding")
    worker.add_argument("--dispatcher", required=True, help="HOST:PORT of the dispatcher")
    worker.add_argument("--port", type=int, default=5051)
    worker.add_argument("--host", default=socket.getfqdn(), help="this machine's name as the trainer reaches it")
    args = parser.parse_args(argv)
    service = tf.data.experimental.service
    if args.role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(port=args.port))
        print(f"tf.data service dispatcher at grpc://{socket.getfqdn()}:{args.port}", flush=True)
    else:
        dispatcher_address = check_address(args.dispatcher).split("://", 1)[1]
        server = service.WorkerServer(service.WorkerConfig(dispatcher_address=dispatcher_address, port=args.port,
                                                           worker_address=f"{args.host}:{args.port}"))
        print(f"tf.data service worker at {args.host}:{args.port}, dispatcher {dispatcher_address}", flush=True)
    server.join()


if __name__ == "__main__":
    serve()
