"""Writes the layer table `zoo info` prints for every registered model (zoo/specs/layer_tables/),
from the model built at its default configuration (a shapes-only build: nothing allocated).

    python scripts/write_layer_tables.py            # every model
    python scripts/write_layer_tables.py resnet50   # some

Run it after changing a model's layers; the registry sweep (tests/harness.py) fails until then.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402
from zoo import flops, layer_tables  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Models to write (default: every registered model).")
    names = parser.parse_args().names or zoo.list_models()
    folder = ROOT / "zoo" / "specs" / layer_tables.TABLES
    folder.mkdir(exist_ok=True)
    for name in names:
        table = layer_tables.read_summary(flops.shapes_only(name))
        layer_tables.write(name, table, folder)
        print(f"{name}: {len(table['rows'])} layers")


if __name__ == "__main__":
    main()
