"""The layer-by-layer table of `zoo info`, read without building the model or starting TensorFlow.

Keras's `model.summary()` needs the built model. The zoo stores each registered model's table at
its default configuration (the cells of Keras's summary: each layer's name and type, output shape,
parameters and inputs, and the totals) in `zoo/specs/layer_tables/NAME.json.gz`, and draws it as
Keras draws it: with rich, the same column positions and the same width (Keras's default, narrowed
to the terminal). `scripts/write_layer_tables.py` writes the files from the built models; the
registry sweep (tests/harness.py) checks that each drawn table equals the model's own summary.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.resources
import io
import json
import os
import shutil

import rich.console
import rich.markup
import rich.table

from zoo.errors import ZooError

TABLES = "layer_tables"  # the folder of `zoo.specs` the tables are stored in
# Keras's layout (keras.src.utils.summary_utils.print_summary): a table with an "inputs" column
# where a layer has several inputs or is called more than once, a narrower one for plain stacks
LAYOUTS = {
    3: {"line_length": 88, "positions": (0.45, 0.80, 1.0), "justify": ("left", "left", "right")},
    4: {"line_length": 108, "positions": (0.3, 0.56, 0.74, 1.0), "justify": ("left", "left", "right", "left")},
}
CAPTURE_WIDTH = 4000  # wide enough that no cell wraps when a summary is read


def read_summary(model) -> dict:
    """The cells of `model.summary()`: its title, column headers, one row per layer and the totals."""
    lines = []
    with _console_width(CAPTURE_WIDTH + 4):
        model.summary(line_length=CAPTURE_WIDTH, print_fn=lambda text, *args, **kwargs: lines.extend(text.splitlines()))
    header = next(line for line in lines if line.startswith("┃"))
    rows = [line for line in lines if line.startswith("│")]
    table_end = max(index for index, line in enumerate(lines) if line.startswith("└"))
    return {
        "title": lines[0],
        "header": _cells(header, "┃"),
        "rows": [_cells(row, "│") for row in rows],
        "footer": [line for line in lines[table_end + 1:] if line.strip()],
    }


def draw(table: dict, line_length: int | None = None) -> str:
    """The table as `model.summary()` prints it at `line_length` (default: Keras's, narrowed to the
    terminal), ending with a newline as Keras's captured summary does."""
    layout = LAYOUTS.get(len(table["header"]))
    if layout is None:
        raise ZooError(f"a stored layer table has {len(table['header'])} columns; rewrite it with "
                       f"scripts/write_layer_tables.py")
    line_length = line_length or min(layout["line_length"], shutil.get_terminal_size().columns - 4)
    columns, current = [], 0
    for name, position, justify in zip(table["header"], layout["positions"], layout["justify"]):
        width = int(position * line_length) - current
        if width < 4:
            raise ZooError("the terminal is too narrow to draw the layer table: widen it or use --no-summary")
        columns.append(rich.table.Column(name, justify=justify, width=width))
        current += width
    drawn = rich.table.Table(*columns, width=line_length, show_lines=True)
    for row in table["rows"]:
        drawn.add_row(*(rich.markup.escape(cell) for cell in row))
    console = rich.console.Console(highlight=False, force_terminal=False, color_system=None)
    console.begin_capture()
    console.print(rich.markup.escape(table["title"]))
    console.print(drawn)
    for line in table["footer"]:
        console.print(rich.markup.escape(line))
    return console.end_capture()


def stored(name: str) -> dict:
    """The stored table of registered model `name` at its default configuration."""
    resource = importlib.resources.files("zoo.specs").joinpath(TABLES, f"{name}.json.gz")
    try:
        return json.loads(gzip.decompress(resource.read_bytes()))
    except FileNotFoundError:
        raise ZooError(f"no layer table is stored for {name}: run scripts/write_layer_tables.py, or use "
                       f"--no-summary") from None


def write(name: str, table: dict, folder) -> None:
    """Stores `table` as `folder/NAME.json.gz`, byte for byte the same for the same table."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        compressed.write(json.dumps(table, indent=0, ensure_ascii=False).encode("utf8"))
    (folder / f"{name}.json.gz").write_bytes(buffer.getvalue())


def _cells(line: str, separator: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip(separator).split(separator)]


@contextlib.contextmanager
def _console_width(columns: int):
    """rich sizes a console that is not a terminal from $COLUMNS: wide, the summary's cells stay whole."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
