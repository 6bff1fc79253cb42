"""Every hostile weights file of tests/hostile_pickles.py and hostile_formats.py through `zoo.create(NAME, weights=FILE)`:
the table of case, reader, message, peak memory and time (the closing note of issue 26).

    python scripts/untrusted_files.py                 # the whole table, as Markdown
    python scripts/untrusted_files.py --only caffe    # the cases whose name contains "caffe"

Each case's file is built in a temporary folder and loaded once. Peak memory is the growth of the
process's resident set over the load (its high-water mark reset first through Linux's
/proc/self/clear_refs, so TensorFlow's and h5py's allocations count as much as Python's; the
script runs itself again with glibc's malloc told to map every block of 64 KiB or more and to give
freed memory back, so that one case's freed memory is not another's unmeasured reuse); a case
passes when the load raises a ZooError of one line naming the file and matching the case's
message, and the payload's marker file is absent. Run it under the shared CPU lock for the times.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import zoo  # noqa: E402
from hostile_files import MARKER, measure, resnet18_arrays  # noqa: E402
from hostile_formats import format_cases, lenet5_file  # noqa: E402
from hostile_pickles import pickle_cases  # noqa: E402


MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def main() -> int:
    if any(os.environ.get(key) != value for key, value in MALLOC_SETTINGS.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_SETTINGS})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="Only the cases whose name contains this text.")
    args = parser.parse_args()
    lenet5_file(".keras"), lenet5_file(".weights.h5"), resnet18_arrays()  # made before any measurement
    cases = [case for case in pickle_cases() + format_cases() if not args.only or args.only in case.name]
    print("| case | reader | message | peak memory | seconds |")
    print("|---|---|---|---|---|")
    failures = 0
    with tempfile.TemporaryDirectory() as root:
        for number, case in enumerate(cases):
            folder = Path(root) / str(number)
            folder.mkdir()
            path = case.build(folder)
            outcome, peak, seconds = measure(lambda: zoo.create(case.model, weights=str(path)))
            message = str(outcome)
            passed = (isinstance(outcome, zoo.ZooError) and len(message.splitlines()) == 1 and str(path) in message
                      and re.search(case.message, message) is not None and not (folder / MARKER).exists())
            failures += not passed
            shown = message.replace(str(folder) + os.sep, "").replace("|", "\\|")
            flag = "" if passed else f" **FAILED ({type(outcome).__name__})**"
            print(f"| {case.name} | {case.reader} | {shown}{flag} | {peak / 2**20:.1f} MiB | {seconds:.2f} |", flush=True)
    print(f"\n{len(cases) - failures} of {len(cases)} cases refused as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
