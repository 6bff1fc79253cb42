"""HDF5 weight files (Keras's `.h5` and `.weights.h5`, the weights inside a `.keras` archive)
opened so that nothing outside them is read and nothing larger than they can hold is allocated.

HDF5 lets a file point elsewhere: external links (to an object in another HDF5 file), soft links,
external storage (a dataset whose bytes are those of any other file, "/etc/passwd" as well) and
virtual datasets (mapped from other files). Keras's loader refuses all four
(`keras.src.saving.saving_lib.safe_get_h5_dataset`); `open_weights` refuses them too, for every
object of the file before any is read, and spends each dataset's declared size from the file's
`Budget`, so that a dataset of a huge shape stored as a fill value in a few kilobytes is refused
unread.
"""

from __future__ import annotations

import contextlib
import math

import h5py
import numpy as np

from zoo.errors import ZooError
from zoo.weights.untrusted import Budget, brief, check_name, reading

NUMERIC_KINDS = "fiubc"  # floats, integers, booleans and complex numbers: what an array of weights can be
MAX_NAMES = 100_000  # entries of a names attribute (a model's layers, a layer's weights)


@contextlib.contextmanager
def open_weights(path: str, file=None, budget: Budget | None = None):
    """The HDF5 file at `path` (or in the file object `file`), every object checked first."""
    try:
        handle = h5py.File(file if file is not None else path, "r")
    except (OSError, ValueError) as error:
        raise ZooError(f"{path} is not a weights file (.keras, .weights.h5 or .h5): {brief(error)}") from None
    with handle, reading(path, "Keras weights file"):
        _check_objects(handle, path, budget or Budget(path))
        yield handle


def _check_objects(file: h5py.File, path: str, budget: Budget) -> None:
    links: list[tuple[str, object]] = []
    file.visititems_links(lambda name, link: links.append((name, link)))  # an exception raised in there is lost
    for name, link in links:
        shown = brief(name)
        if isinstance(link, h5py.ExternalLink):
            raise ZooError(f"refusing to read {path}: its {shown} is an external link to {brief(link.filename)}, "
                           f"which would read another file (Keras refuses such files too)")
        if isinstance(link, h5py.SoftLink):
            raise ZooError(f"refusing to read {path}: its {shown} is a soft link to {brief(link.path)}, which no "
                           f"Keras weights file has (Keras refuses such files too)")
        item = file.get(name)
        if isinstance(item, h5py.Dataset):
            _check_dataset(item, shown, path, budget)


def _check_dataset(dataset: h5py.Dataset, name: str, path: str, budget: Budget) -> None:
    if dataset.external:
        raise ZooError(f"refusing to read {path}: its dataset {name} keeps its data in another file "
                       f"({brief(dataset.external[0][0])}), which would be read into the weights (Keras refuses "
                       f"such files too)")
    if dataset.is_virtual:
        raise ZooError(f"refusing to read {path}: its dataset {name} is virtual (mapped from other files), which "
                       f"would read them (Keras refuses such files too)")
    shape = dataset.shape or ()
    budget.spend(math.prod(shape) * dataset.dtype.itemsize, f"its dataset {name} of shape {shape}")


def child(group, name: str, path: str, kind=h5py.Group):
    """The group (or dataset, with kind=h5py.Dataset) `name` of `group`, or a ZooError saying what is there."""
    item = group.get(name) if name else None
    if not isinstance(item, kind):
        wanted = "dataset" if kind is h5py.Dataset else "group"
        found = "nothing" if item is None else f"a {type(item).__name__.lower()}"
        raise ZooError(f"{path} is not a Keras weights file: {brief(group.name.rstrip('/') + '/' + name)} should be a "
                       f"{wanted} and is {found}")
    return item


def read_array(dataset: h5py.Dataset, path: str) -> np.ndarray:
    """A dataset of numbers as an array (its declared size was checked when the file was opened)."""
    if dataset.dtype.kind not in NUMERIC_KINDS or dataset.dtype.names:
        raise ZooError(f"{path}: its dataset {brief(dataset.name)} holds {brief(dataset.dtype)} values, not numbers: "
                       f"it is not a weights file")
    return np.asarray(dataset[()])


def names_attribute(group, name: str, path: str) -> list[str]:
    """A list of names stored as an HDF5 attribute; Keras splits long ones into name0, name1, ...
    (an attribute holds at most 64 KiB)."""
    keys = [name] if name in group.attrs else []
    while name not in group.attrs and f"{name}{len(keys)}" in group.attrs:
        keys.append(f"{name}{len(keys)}")
    names: list[str] = []
    for key in keys:
        attribute = group.attrs.get_id(key)
        if attribute.shape is None:  # an empty attribute (HDF5's null dataspace): no names
            continue
        if len(attribute.shape) > 1 or len(names) + math.prod(attribute.shape) > MAX_NAMES:
            raise ZooError(f"{path}: its attribute {brief(group.name)}:{brief(key)} of shape {attribute.shape} is not "
                           f"a list of names")
        values = group.attrs[key]
        for value in np.atleast_1d(values):
            text = value.decode("utf8") if isinstance(value, bytes) else value
            names.append(check_name(text, path, f"a name in {key}"))
    return names
