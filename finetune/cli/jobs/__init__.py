"""The work of the `zoo` command's subcommands, one module per group of commands, each importing
the kit at its top; `finetune.cli`'s modules declare the commands and import the job module of a
command when it runs. TensorFlow starts here, quietly, before any job's import reaches it."""

from finetune.runtime import start_tensorflow

start_tensorflow()
