"""Published weight files through the Keras cache: found there, else downloaded by get_file, and
checked against their hash either way."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse

import keras

from zoo.errors import ZooError

CACHE_SUBDIR = "models"  # keras.utils.get_file's folder for model files, under the cache folder


def keras_cache_dir() -> str:
    """The folder keras.utils.get_file keeps its downloads under (files go to its `models/`).

    $KERAS_HOME is read at each call (Keras reads it once, at import), else ~/.keras. It is created
    as Keras does at import, since get_file, like this, falls back to /tmp/.keras when it is not writable.
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    try:
        os.makedirs(home, exist_ok=True)
    except OSError:
        pass  # not ours to create: the fallback below applies
    if not os.access(home, os.W_OK):
        home = os.path.join(tempfile.gettempdir(), ".keras")
    return home


def file_hash_matches(path: str, expected: str) -> bool:
    """Whether a file has the hash `expected`: "ALGORITHM:HEX" names its algorithm ("sha1:...", as
    Caffe's model zoo publishes them); else MD5 for 32 hex digits (Keras Applications' files), else
    SHA-256, whose leading digits suffice (torchvision names its files by the first 8)."""
    algorithm, _, digits = expected.rpartition(":")
    if algorithm:
        hasher, expected = hashlib.new(algorithm), digits
    else:
        hasher = hashlib.md5() if len(expected) == 32 else hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest().startswith(expected.lower())


def cached_path(url: str, file_name: str | None = None) -> str:
    """Where the Keras cache keeps the file of `url` (it may not be there yet), under `file_name`
    where given (files of different URLs share a name on the Hugging Face Hub: model.safetensors)."""
    file_name = file_name or os.path.basename(urllib.parse.urlsplit(url).path)
    return os.path.join(keras_cache_dir(), CACHE_SUBDIR, file_name)


def fetch_keras_file(url: str, file_hash: str | None, what: str, file_name: str | None = None) -> str:
    """The local path of a published file: from the Keras cache, else downloaded by get_file.

    Raises ZooError, naming the file and the folder to put it in, when it is neither cached nor
    downloadable (offline); and when a cached copy does not match its hash.
    """
    cached = cached_path(url, file_name)
    file_name = os.path.basename(cached)
    if os.path.exists(cached):
        # get_file would delete a mismatching copy and download it again; a user's file gets a word instead
        if file_hash and not file_hash_matches(cached, file_hash):
            raise ZooError(
                f"{cached} is not the expected {what} (its hash is not {file_hash}); delete it to "
                f"download it again, or replace it with the file from {url}"
            )
        return cached
    try:
        path = keras.utils.get_file(file_name, url, cache_dir=keras_cache_dir(), cache_subdir=CACHE_SUBDIR)
    except Exception as error:  # get_file raises bare Exceptions for network failures
        raise ZooError(
            f"could not download the {what} {file_name} ({error}). Without network, fetch {url} "
            f"elsewhere and put it at {cached} (set KERAS_HOME to use another cache folder)"
        ) from None
    if file_hash and not file_hash_matches(path, file_hash):
        os.remove(path)
        raise ZooError(f"the download of {url} does not have the hash {file_hash}; it was removed. Try again, "
                       f"or fetch the file elsewhere and put it at {cached}")
    return path


def fetch_pretrained(pretrained, include_top: bool) -> str:
    """The local path of a pretrained weights file (a `PretrainedWeights`), with or without the
    classifier top."""
    url, file_hash = (pretrained.top_url, pretrained.top_hash) if include_top else (
        pretrained.notop_url, pretrained.notop_hash)
    if url is None:
        top = "with" if include_top else "without"
        raise ZooError(f"the {pretrained.tag} weights have no file {top} the classifier top")
    return fetch_keras_file(url, file_hash, f"{pretrained.tag} weights file", pretrained.file_name)
