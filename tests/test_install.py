"""What a fresh install needs and how fast the command starts: every third-party module the package
imports is declared in pyproject.toml, the declarations are what is installed, and the commands that
only read the registry answer without starting TensorFlow."""

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

import zoo
from finetune.cli import app, models, serving, training
from harness import check_layer_table

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zoo", "finetune")
DISTRIBUTION = "keras-zoo"
# the optional features and the folders whose guarded imports (try: import ... except ImportError)
# they provide: the extra that the feature's error message tells the user to install
FEATURE_FOLDERS = {"export": ("finetune/serving",)}


def normalized(name: str) -> str:
    """A distribution's name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group(0))


def installed_requirements() -> dict[str, set]:
    """The distributions the installed package requires: name -> the extras needing it (None: base)."""
    declared = {}
    for requirement in importlib.metadata.requires(DISTRIBUTION) or []:
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        declared.setdefault(requirement_name(requirement), set()).add(extra.group(1) if extra else None)
    return declared


def pyproject_requirements() -> dict[str, set]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for requirement in project["dependencies"]:
        declared.setdefault(requirement_name(requirement), set()).add(None)
    for extra, requirements in project["optional-dependencies"].items():
        for requirement in requirements:
            if requirement_name(requirement) != normalized(DISTRIBUTION):  # `keras-zoo[export]` inside `dev`
                declared.setdefault(requirement_name(requirement), set()).add(extra)
    return declared


def imports_of(path: Path):
    """(top-level module, guarded) for each absolute import in a file, wherever it is; guarded: inside
    a `try` whose handlers catch ImportError, as optional features import their extras."""
    tree = ast.parse(path.read_text(encoding="utf8"))
    guarded_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
            guarded_nodes.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".")[0], id(node) in guarded_nodes


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(each, ast.Name) and each.id in ("ImportError", "ModuleNotFoundError") for each in caught)


def third_party_imports():
    """(file, module, guarded) for every import of a module that is neither the standard library's nor ours."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, guarded in imports_of(path):
                if module not in sys.stdlib_module_names and module not in PACKAGES and module != "__future__":
                    yield path.relative_to(ROOT).as_posix(), module, guarded


def test_every_imported_module_is_declared_in_the_extra_of_its_feature():
    """Fails when a module the package imports comes from a distribution that pyproject.toml does not
    declare (as a fresh install would fail), or an optional feature imports what its extra lacks."""
    declared = installed_requirements()
    providers = importlib.metadata.packages_distributions()
    problems = []
    for path, module, guarded in sorted(set(third_party_imports())):
        distributions = {normalized(name) for name in providers.get(module, [])}
        if not distributions:
            problems.append(f"{path}: {module} is not installed, so no declared distribution provides it")
            continue
        needed_by = set().union(*(declared.get(name, set()) for name in distributions))
        if not needed_by:
            problems.append(f"{path}: {module} (from {', '.join(sorted(distributions))}) is not declared")
        elif None not in needed_by:
            features = [extra for extra, folders in FEATURE_FOLDERS.items() if path.startswith(folders)]
            if not guarded:
                problems.append(f"{path}: {module} comes with the extra {sorted(needed_by)} only, but is imported "
                                f"unguarded, so the base install fails")
            elif not set(features) & needed_by:
                problems.append(f"{path}: {module} comes with {sorted(needed_by)}, not the extra of its feature "
                                f"{features or '(none)'}")
    assert not problems, "\n".join(problems)


def test_the_installed_requirements_are_pyproject_s():
    """A declaration removed from (or added to) pyproject.toml without reinstalling fails here too."""
    installed = {name: extras for name, extras in installed_requirements().items() if name != normalized(DISTRIBUTION)}
    assert installed == pyproject_requirements(), "pyproject.toml and the installed metadata differ: pip install -e ."


def test_every_distribution_that_a_module_comes_from_is_found():
    """The import test above sees the package's real imports: the ones every kit module needs are among them."""
    modules = {module for _, module, _ in third_party_imports()}
    assert {"tensorflow", "keras", "numpy", "click", "h5py", "safetensors", "tensorflow_datasets", "PIL",
            "filelock", "rich", "onnxruntime"} <= modules


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "--pretrained"], ["info", "resnet50"],
                                  ["info", "lenet5", "--json"], ["finetune", "--help"], ["export", "--help"]])
def test_commands_that_read_the_registry_do_not_start_tensorflow(argv):
    script = ("import sys; from finetune.cli import main; code = main(sys.argv[1:]); "
              "loaded = [name for name in ('tensorflow', 'keras', 'tensorflow_datasets') if name in sys.modules]; "
              "print('LOADED', loaded); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("LOADED []"), done.stdout[-500:]


def test_importing_the_packages_loads_no_tensorflow():
    script = ("import sys, zoo, finetune; import finetune.cli; "
              "print([name for name in ('tensorflow', 'keras') if name in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_lazy_names_of_the_packages_are_their_modules_objects():
    import finetune
    from finetune import api
    from finetune.training.config import FinetuneConfig
    from zoo.factory import create

    assert zoo.create is create and finetune.finetune is api.finetune and finetune.FinetuneConfig is FinetuneConfig
    assert set(finetune.__all__) <= set(dir(api)) | {"CaptioningConfig", "FinetuneConfig"}
    with pytest.raises(AttributeError):
        finetune.no_such_name  # noqa: B018


def choices(command: click.Command, option: str) -> tuple:
    parameter = next(each for each in command.params if each.name == option)
    return tuple(parameter.type.choices)


def test_the_command_s_choices_are_the_kit_s():
    """The command's options list their choices without loading the kit; each list is the kit's own."""
    from finetune.data.augment import PRESETS
    from finetune.serving.portable import FORMATS, QUANTIZATIONS
    from finetune.training import config
    from zoo import memory

    finetune_command = app.cli.commands["finetune"]
    assert choices(finetune_command, "augment") == training.AUGMENT_PRESETS == ("auto", *PRESETS)
    assert choices(finetune_command, "optimizer") == config.OPTIMIZERS
    assert choices(finetune_command, "schedule") == config.SCHEDULES
    assert choices(finetune_command, "strategy") == config.STRATEGIES
    assert choices(finetune_command, "precision") == config.PRECISIONS
    assert choices(finetune_command, "mode") == config.MODES
    assert choices(app.cli.commands["export"], "export_format") == serving.EXPORT_FORMATS == FORMATS
    assert choices(app.cli.commands["export"], "quantize") == serving.EXPORT_QUANTIZATIONS == QUANTIZATIONS
    assert choices(app.cli.commands["info"], "optimizer") == models.MEMORY_OPTIMIZERS == tuple(sorted(memory.OPTIMIZER_SLOTS))


def test_the_captioner_s_layer_table_is_its_summary():
    """The classifiers' tables are checked by the registry sweep (tests/harness.py)."""
    from zoo import flops

    check_layer_table("captioner", flops.shapes_only("captioner"))
