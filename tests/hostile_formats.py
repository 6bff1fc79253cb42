"""Hostile safetensors, Caffe, `.keras`, `.h5` and `.weights.h5` files: headers and wire formats
that lie, archives with bombs, lying entries and escaping names, Keras configs that name code,
HDF5 files that point at other files or hold huge fill values, weights records of wrong types
(`format_cases`).
"""

from __future__ import annotations

import functools
import io
import json
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import keras
import numpy as np
import safetensors.numpy

import zoo
from hostile_files import Case, patch_member, resnet18_arrays, write, zeros_member
from source_weights import write_caffemodel

# -- Keras files ----------------------------------------------------------------------------------------------
@functools.cache
def lenet5_file(suffix: str) -> bytes:
    """The bytes of a lenet5 (3 classes) saved as a `.keras` model or `.weights.h5` weights, made once."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"lenet5{suffix}"
        model = zoo.create("lenet5", num_classes=3)
        model.save(path) if suffix == ".keras" else model.save_weights(path)
        return path.read_bytes()


def keras_variant(path: Path, edit: Callable[[str, bytes], bytes | None] = lambda name, data: data,
                  extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED) -> Path:
    """The template .keras archive with each member passed through `edit` (None drops it) and
    `extra` members added."""
    with zipfile.ZipFile(io.BytesIO(lenet5_file(".keras"))) as source, zipfile.ZipFile(path, "w", compression) as archive:
        for info in source.infolist():
            data = edit(info.filename, source.read(info))
            if data is not None:
                archive.writestr(info.filename, data)
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
    return path


def edit_config(change: Callable[[dict], None]) -> Callable[[str, bytes], bytes]:
    def edit(member: str, data: bytes) -> bytes:
        if member != "config.json":
            return data
        config = json.loads(data)
        change(config)
        return json.dumps(config).encode()
    return edit


def set_activation(module: str, function: str) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": module, "class_name": "function", "config": function, "registered_name": function}
    return change


def replace_weights(build: Callable[[h5py.File], None]) -> Callable[[str, bytes], bytes]:
    """An edit that rewrites the archive's model.weights.h5 with `build` applied to it."""
    def edit(member: str, data: bytes) -> bytes:
        if member != "model.weights.h5":
            return data
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as file:
            build(file)
        return buffer.getvalue()
    return edit


def lambda_model(path: Path) -> Path:
    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    keras.Model(inputs, outputs, name="lenet5").save(path)
    return path


def vocabulary_model(path: Path, vocabulary: str) -> Path:
    """A model whose StringLookup reads its vocabulary from a file outside the archive."""
    inputs = keras.Input((1,), dtype="string")
    model = keras.Model(inputs, keras.layers.StringLookup(vocabulary=["a", "b"], name="lookup")(inputs), name="lookup")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["vocabulary"] = vocabulary
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def h5_variant(path: Path, build: Callable[[h5py.File], None], template: bytes | None = None) -> Path:
    """The lenet5 .weights.h5 template (or another file's bytes) with `build` applied to it."""
    path.write_bytes(lenet5_file(".weights.h5") if template is None else template)
    with h5py.File(path, "r+") as file:
        build(file)
    return path


FIRST_KERNEL = "layers/conv2d/vars/0"  # the first convolution's kernel in lenet5's Keras 3 weights file


def external_storage(secret: Path) -> Callable[[h5py.File], None]:
    """The first kernel's bytes kept in `secret` (HDF5 external storage)."""
    def build(file: h5py.File) -> None:
        kernel = file[FIRST_KERNEL]
        shape, dtype = kernel.shape, kernel.dtype
        del file[FIRST_KERNEL]
        file.create_dataset(FIRST_KERNEL, shape=shape, dtype=dtype,
                            external=[(str(secret), 0, int(np.prod(shape)) * dtype.itemsize)])
    return build


def external_link(target: Path) -> Callable[[h5py.File], None]:
    def build(file: h5py.File) -> None:
        del file[FIRST_KERNEL]
        file[FIRST_KERNEL] = h5py.ExternalLink(str(target), "/kernel")
    return build


def soft_link(file: h5py.File) -> None:
    del file[FIRST_KERNEL]
    file[FIRST_KERNEL] = h5py.SoftLink("/layers/conv2d_1/vars/0")


def virtual_dataset(target: Path) -> Callable[[h5py.File], None]:
    def build(file: h5py.File) -> None:
        kernel = file[FIRST_KERNEL]
        layout = h5py.VirtualLayout(shape=kernel.shape, dtype=kernel.dtype)
        layout[...] = h5py.VirtualSource(str(target), "kernel", shape=kernel.shape)
        del file[FIRST_KERNEL]
        file.create_virtual_dataset(FIRST_KERNEL, layout)
    return build


def fill_value_bomb(file: h5py.File) -> None:
    """A 1 GiB kernel stored as nothing but its fill value (chunked, never written)."""
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, shape=(2**28,), dtype="f4", chunks=(2**18,), fillvalue=1.0)


def wrong_shape_kernel(file: h5py.File) -> None:
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, data=np.ones(3, "float32"))


def integer_kernel(file: h5py.File) -> None:
    kernel = np.asarray(file[FIRST_KERNEL])
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, data=(kernel * 100).astype("int8"))


def write_external_target(path: Path, shape=(5, 5, 1, 6)) -> Path:
    with h5py.File(path, "w") as file:
        file.create_dataset("kernel", data=np.full(shape, 7.0, "float32"))
    return path


def legacy_h5(path: Path, layer_names, groups: Callable[[h5py.File], None] = lambda file: None) -> Path:
    """A legacy (Keras Applications) weights file whose layer_names attribute lists `layer_names`."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = layer_names
        groups(file)
    return path

# -- Caffe files ----------------------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number_: int, wire_type: int, payload: bytes) -> bytes:
    key = varint(number_ << 3 | wire_type)
    return key + (varint(len(payload)) + payload if wire_type == 2 else payload)


def caffe_layer(name_: str, blobs: list[bytes], kind: str = "Convolution") -> bytes:
    """A LayerParameter (field 100 of NetParameter) with the given BlobProto messages."""
    body = field(1, 2, name_.encode()) + field(2, 2, kind.encode()) + b"".join(field(7, 2, blob) for blob in blobs)
    return field(100, 2, body)


def caffe_blob(shape, data: bytes) -> bytes:
    return field(7, 2, field(1, 2, b"".join(varint(side) for side in shape))) + field(5, 2, data)


def unpacked_floats(count: int) -> bytes:
    """A blob of `count` floats written one field each (5 bytes on the wire per float)."""
    return field(7, 2, field(1, 2, varint(count))) + (varint(5 << 3 | 5) + struct.pack("<f", 1.0)) * count


def safetensors_file(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return write(path, struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def tensor_entry(dtype: str, shape, start: int, end: int) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [start, end]}


def _safetensors_cases() -> list[Case]:
    entry = {"conv1.weight": tensor_entry("F32", (2,), 0, 8)}
    resnet18_int8 = lambda folder: _resnet18_safetensors(folder / "resnet18-int8.safetensors", np.int8)  # noqa: E731
    return [
        Case("safetensors: a header length of 2**63", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", entry, bytes(8), length=2**63),
             r"is a truncated or damaged safetensors file: its first 8 bytes declare a header of 9,223,372,036,854,775,808"),
        Case("safetensors: a header of 200 MB declared in a 200 MB file", "safetensors",
             lambda folder: _sparse_safetensors(folder / "m.safetensors", 200 * 2**20),
             r"its header declares 209,715,200 bytes, more than the 16,777,216"),
        Case("safetensors: offsets past the file", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F32", (200,), 0, 800)}, bytes(8)),
             r"is not a readable safetensors file \(Error while deserializing header: incomplete metadata, file not "
             r"fully covered"),
        Case("safetensors: overlapping tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F32", (2,), 0, 8),
                                                                        "b": tensor_entry("F32", (2,), 0, 8)}, bytes(8)),
             r"is not a readable safetensors file \(Error while deserializing header: invalid offset"),
        Case("safetensors: an unknown dtype", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("XYZ", (2,), 0, 8)}, bytes(8)),
             r"unknown variant `XYZ`"),
        Case("safetensors: F8_E4M3 tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F8_E4M3", (8,), 0, 8)}, bytes(8)),
             r"its tensor a is F8_E4M3, which numpy cannot represent"),
        Case("safetensors: BF16 tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("BF16", (4,), 0, 8)}, bytes(8)),
             r"its tensor a is BF16, which numpy cannot represent"),
        Case("safetensors: a header that is not JSON", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", b"{not json at all}"),
             r"its header is not JSON"),
        Case("safetensors: a header nested 100,000 deep", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
             r"its header nests too deep"),
        Case("safetensors: a header entry that is a number", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"conv1.weight": 5}),
             r"is not a readable safetensors file \(Error while deserializing header: invalid JSON"),
        Case("safetensors: a .safetensors file of something else", "safetensors",
             lambda folder: write(folder / "m.safetensors", b"[1, 2, 3]" * 10),
             r"is not a safetensors file: it does not start with a header's length"),
        Case("safetensors: a tensor name with a newline", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"conv1.weight\nError: injected": tensor_entry(
                 "F32", (2,), 0, 8)}, bytes(8)),
             r"has a tensor name of 28 characters that is not a plain one-line name"),
        Case("safetensors: a truncated file", "safetensors",
             lambda folder: write(folder / "m.safetensors", _small_safetensors(folder / "full.safetensors").read_bytes()[:1000]),
             r"is not a readable safetensors file \(Error while deserializing header: incomplete metadata"),
        Case("silently wrong: a resnet18 safetensors file of int8", "safetensors", resnet18_int8,
             r"conv1\.weight holds int8 values where layer 'conv1_conv' of resnet18 takes float weights",
             commands=("import", "finetune")),
    ]


def _resnet18_safetensors(path: Path, dtype=np.float32) -> Path:
    arrays = {key: np.array(value if key.endswith("num_batches_tracked") else value.astype(dtype), order="C")
              for key, value in resnet18_arrays().items()}
    safetensors.numpy.save_file(arrays, str(path))
    return path


def _small_safetensors(path: Path) -> Path:
    safetensors.numpy.save_file({f"layer{index}.weight": np.ones(1000, "float32") for index in range(4)}, str(path))
    return path


def _sparse_safetensors(path: Path, header_size: int) -> Path:
    """A file of `header_size` + 8 bytes (sparse on disk) whose header would take all of it."""
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", header_size) + b'{"')
        file.truncate(header_size + 8)
    return path

def _caffe_cases() -> list[Case]:
    good_blob = caffe_blob((2, 2), struct.pack("<4f", 1, 2, 3, 4))

    def valid(folder: Path) -> Path:
        rng = np.random.default_rng(0)
        layers = [("conv1", "Convolution", [rng.normal(size=(96, 3, 11, 11)), rng.normal(size=96)])]
        return write_caffemodel(folder / "full.caffemodel", layers)

    return [
        Case("caffe: a length field of 2**40", "caffe",
             lambda folder: write(folder / "m.caffemodel", varint(100 << 3 | 2) + varint(2**40) + b"x" * 100),
             r"is not a Caffe model \(a field runs past the end\)", model="alexnet"),
        Case("caffe: messages nested 10,000 deep", "caffe",
             lambda folder: write(folder / "m.caffemodel", functools.reduce(lambda inner, _: field(100, 2, inner),
                                                                            range(10_000), good_blob)),
             r"is not a Caffe model with weights \(no layer holds blobs\)", model="alexnet"),
        Case("caffe: a blob of 10**6 x 10**6 with 4 values", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((10**6, 10**6), bytes(16))])),
             r"a blob of shape \[1000000, 1000000\] holds 4 values", model="alexnet", commands=("import", "finetune")),
        Case("caffe: a shape whose int64 product wraps to 0", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((2**32, 2**32), b"")])),
             r"a blob of shape \[4294967296, 4294967296\] holds 0 values", model="alexnet"),
        Case("caffe: a dimension of 2**63", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((2**63, 0), b"")])),
             r"a blob shape has more than 32 dimensions or one of 9,223,372,036,854,775,808", model="alexnet"),
        Case("caffe: blob data of 5 bytes", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((1,), bytes(5))])),
             r"a blob's data is 5 bytes, not a whole number of 4-byte values", model="alexnet"),
        Case("caffe: a layer type that is a varint of 2**40", "caffe",
             lambda folder: write(folder / "m.caffemodel", field(100, 2, field(1, 2, b"conv1") + field(2, 0, varint(2**40))
                                                                  + field(7, 2, good_blob))),
             r"keeps only the layers with weights, so it does not say whether it is BVLC's AlexNet", model="alexnet"),
        Case("caffe: a truncated file", "caffe",
             lambda folder: write(folder / "m.caffemodel", valid(folder).read_bytes()[:20_000]),
             r"is not a Caffe model \(a field runs past the end\)", model="alexnet"),
        Case("caffe: 64 KiB of random bytes", "caffe",
             lambda folder: write(folder / "m.caffemodel", np.random.default_rng(0).bytes(2**16)),
             r"is not a Caffe model", model="alexnet"),
        Case("caffe: 4 MB of unpacked floats", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [unpacked_floats(800_000)])),
             r"keeps only the layers with weights, so it does not say whether it is BVLC's AlexNet", model="alexnet"),
        Case("caffe: 300,000 empty layers", "caffe",
             lambda folder: write(folder / "m.caffemodel", field(100, 2, b"") * 300_000),
             r"is not a Caffe model \(it has more than 100,000 layers\)", model="alexnet"),
        Case("caffe: a layer name of 2 MB", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("n" * 2**21, [good_blob])),
             r"has a tensor or layer name of 2,097,159 characters that is not a plain one-line name", model="alexnet"),
    ]

def _keras_cases() -> list[Case]:
    serving = ("import", "predict", "evaluate")

    def zip_bomb(folder: Path) -> Path:
        path = keras_variant(folder / "bomb.keras", lambda member, data: None if member == "model.weights.h5" else data)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            zeros_member(archive, "model.weights.h5", 2**28)
        return path

    def huge_config(folder: Path) -> Path:
        return patch_member(keras_variant(folder / "config.keras"), "config.json", file_size=2**32 - 2)

    def in_keras(build: Callable[[h5py.File], None]) -> Callable[[Path], Path]:
        return lambda folder: keras_variant(folder / "model.keras", replace_weights(build))

    return [
        Case("keras: a .keras member named ../../escape.txt", "keras",
             lambda folder: keras_variant(folder / "traversal.keras", extra={"../../escape.txt": b"x"}),
             r"its member '\.\./\.\./escape\.txt' points outside the archive", model="lenet5", commands=serving),
        Case("keras: a .keras member with an absolute name", "keras",
             lambda folder: keras_variant(folder / "absolute.keras", extra={"/tmp/escape.txt": b"x"}),
             r"its member '/tmp/escape\.txt' points outside the archive", model="lenet5"),
        Case("keras: a Lambda layer", "keras", lambda folder: lambda_model(folder / "lambda.keras"),
             r"refusing to load .*: it contains Python code \(a Lambda layer", model="lenet5", commands=serving),
        Case("keras: a config naming os.system", "keras",
             lambda folder: keras_variant(folder / "system.keras", edit_config(set_activation("os", "system"))),
             r"cannot load .* as a Keras model: Could not locate function 'system'", model="lenet5", commands=serving),
        Case("keras: a config naming builtins.eval", "keras",
             lambda folder: keras_variant(folder / "eval.keras", edit_config(set_activation("builtins", "eval"))),
             r"cannot load .* as a Keras model: Could not locate function 'eval'", model="lenet5"),
        Case("keras: a config naming the class os.system", "keras",
             lambda folder: keras_variant(folder / "class.keras", edit_config(
                 lambda config: config["config"]["layers"][1].update(module="os", class_name="system"))),
             r"Could not locate class 'system'", model="lenet5"),
        Case("keras: a StringLookup reading /etc/passwd", "keras",
             lambda folder: vocabulary_model(folder / "vocabulary.keras", "/etc/passwd"),
             r"Keras's safe mode refuses it \(Requested the loading of a vocabulary file outside of the model archive\. ",
             model="lenet5", commands=serving),
        Case("keras: a 256 MiB zip bomb inside a .keras", "keras", zip_bomb,
             r"its member model\.weights\.h5 declares 268,435,456 bytes", model="lenet5", commands=("import", "finetune", "predict", "evaluate")),
        Case("keras: a config.json declaring 4 GiB", "keras", huge_config,
             r"its member config\.json declares 4,294,967,294 bytes, more than the 16,777,216", model="lenet5",
             commands=serving),
        Case("keras: a config.json nested 100,000 deep", "keras",
             lambda folder: keras_variant(folder / "deep.keras", lambda member, data: b"[" * 100_000 + b"]" * 100_000
                                          if member == "config.json" else data),
             r"its config nests deeper than any model's does", model="lenet5", commands=serving),
        Case("keras: a bad CRC in config.json", "keras",
             lambda folder: patch_member(keras_variant(folder / "crc.keras"), "config.json", corrupt=True),
             r"is damaged: its member config\.json cannot be read \(Bad CRC-32", model="lenet5", commands=serving),
        Case("keras: an encrypted member", "keras",
             lambda folder: patch_member(keras_variant(folder / "encrypted.keras"), "config.json", flag_bits=1),
             r"its member config\.json is encrypted", model="lenet5", commands=serving),
        Case("keras: a member of an unknown compression method", "keras",
             lambda folder: patch_member(keras_variant(folder / "method.keras"), "model.weights.h5", compress_type=99),
             r"its member model\.weights\.h5 is compressed with method 99", model="lenet5", commands=serving),
        Case("keras: a weights record with wrong types", "keras",
             lambda folder: keras_variant(folder / "record.keras", extra={"zoo_weights.json": json.dumps(
                 {"model": "lenet5", "weights": "x", "options": 5}).encode()}),
             r"its weights record \(zoo_weights\.json\) has options = 5", model="lenet5", commands=("import", "predict")),
        Case("keras: a weights record with an option the model lacks", "keras",
             lambda folder: keras_variant(folder / "option.keras", extra={"zoo_weights.json": json.dumps(
                 {"model": "lenet5", "weights": "x", "options": {"evil": 1}}).encode()}),
             r"gives lenet5 the option 'evil'=1, which it does not take", model="lenet5"),
        Case("keras: a weights record nested 100,000 deep", "keras",
             lambda folder: keras_variant(folder / "deep-record.keras", extra={"zoo_weights.json": b"[" * 100_000 + b"]" * 100_000}),
             r"its zoo_weights\.json nests deeper than any weights record does", model="lenet5",
             commands=("import", "predict")),
        Case("keras: an external link inside a .keras", "keras",
             lambda folder: keras_variant(folder / "link.keras", replace_weights(external_link(
                 write_external_target(folder / "target.h5")))),
             r"refusing to read .*: its layers/conv2d/vars/0 is an external link to .*target\.h5", model="lenet5",
             commands=serving),
        Case("keras: a kernel of another shape (Keras's own reason)", "keras", in_keras(wrong_shape_kernel),
             r"cannot load .* as a Keras model: The shape of the target variable .* must match\. "
             r"variable\.shape=\(5, 5, 1, 6\), Received: value\.shape=\(3,\)$", model="lenet5", commands=serving),
        Case("keras: a fill-value bomb inside a .keras", "keras", in_keras(fill_value_bomb),
             r"its dataset layers/conv2d/vars/0 of shape \(268435456,\) declares 1,073,741,824 bytes", model="lenet5",
             commands=serving),
        Case("hdf5: a kernel stored in another file (external storage)", "hdf5",
             lambda folder: h5_variant(folder / "external.weights.h5", external_storage(write(folder / "secret.bin", b"SECRET" * 200))),
             r"its dataset layers/conv2d/vars/0 keeps its data in another file \(.*secret\.bin\)", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: an external link to another file", "hdf5",
             lambda folder: h5_variant(folder / "link.weights.h5", external_link(write_external_target(folder / "target.h5"))),
             r"its layers/conv2d/vars/0 is an external link to .*target\.h5", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: an external link to /etc/passwd", "hdf5",
             lambda folder: h5_variant(folder / "passwd.weights.h5", external_link(Path("/etc/passwd"))),
             r"its layers/conv2d/vars/0 is an external link to /etc/passwd", model="lenet5"),
        Case("hdf5: a soft link", "hdf5", lambda folder: h5_variant(folder / "soft.weights.h5", soft_link),
             r"its layers/conv2d/vars/0 is a soft link to /layers/conv2d_1/vars/0", model="lenet5"),
        Case("hdf5: a virtual dataset", "hdf5",
             lambda folder: h5_variant(folder / "virtual.weights.h5", virtual_dataset(write_external_target(folder / "target.h5"))),
             r"its dataset layers/conv2d/vars/0 is virtual", model="lenet5"),
        Case("hdf5: a 1 GiB dataset of fill value in a small file", "hdf5",
             lambda folder: h5_variant(folder / "fill.weights.h5", fill_value_bomb),
             r"its dataset layers/conv2d/vars/0 of shape \(268435456,\) declares 1,073,741,824 bytes", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: integer kernels", "hdf5", lambda folder: h5_variant(folder / "int.weights.h5", integer_kernel),
             r"c1/kernel holds int8 values where layer 'c1' of lenet5 takes float weights", model="lenet5"),
        Case("hdf5: a layer group that is missing", "hdf5",
             lambda folder: legacy_h5(folder / "missing.h5", [b"c1"]),
             r"is not a Keras weights file: /c1 should be a group and is nothing", model="lenet5"),
        Case("hdf5: a dataset where a layer group belongs", "hdf5",
             lambda folder: legacy_h5(folder / "dataset.h5", [b"c1"], lambda file: file.create_dataset("c1", data=[1.0])),
             r"is not a Keras weights file: /c1 should be a group and is a dataset", model="lenet5"),
        Case("hdf5: a weight name that is missing", "hdf5",
             lambda folder: legacy_h5(folder / "weight.h5", [b"c1"], lambda file: file.create_group("c1").attrs.create(
                 "weight_names", [b"c1/kernel:0"])),
             r"/c1/c1/kernel:0 should be a dataset and is nothing", model="lenet5"),
        Case("hdf5: layer names that are numbers", "hdf5",
             lambda folder: legacy_h5(folder / "numbers.h5", np.arange(3)),
             r"has a name in layer_names that is a int64, not a string", model="lenet5"),
        Case("hdf5: a 'layers' dataset in a Keras 3 file", "hdf5",
             lambda folder: h5_variant(folder / "layers.weights.h5", lambda file: (file.__delitem__("layers"),
                                                                                   file.create_dataset("layers", data=[1]))),
             r"is not a Keras weights file: /layers should be a group and is a dataset", model="lenet5"),
        Case("hdf5: variables that are not numbered", "hdf5",
             lambda folder: h5_variant(folder / "vars.weights.h5", lambda file: file.move("layers/conv2d/vars/0",
                                                                                          "layers/conv2d/vars/kernel")),
             r"layers/conv2d/vars holds .*kernel, not numbered variables", model="lenet5"),
        Case("hdf5: a string dataset where weights belong", "hdf5",
             lambda folder: h5_variant(folder / "text.weights.h5", lambda file: (file.__delitem__("layers/conv2d/vars/0"),
                                       file.create_dataset("layers/conv2d/vars/0", data=np.array([b"x"] * 4)))),
             r"its dataset /layers/conv2d/vars/0 holds \|S1 values, not numbers", model="lenet5"),
    ]


def format_cases() -> list[Case]:
    return [*_safetensors_cases(), *_caffe_cases(), *_keras_cases()]
