"""`python -m finetune` is the `zoo` command."""

import sys

from finetune.cli import main

sys.exit(main())
