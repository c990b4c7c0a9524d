"""The import direction and environment rules of DESIGN.md, checked on the source's AST.

Layers, lowest first (a module may import its own layer and the ones below):

    0  mailcue_server (package root), config, errors, start_failures, health
    1  store, events, mail, migrations
    2  schema.types
    3  workers, resolvers
    4  schema (root fields), rest_compat
    5  api
    6  app
    7  cli

On top of the ranks, some parts may not import certain parts even when the
rank would allow it (``BANNED``). Every import counts, including ones inside
functions and under ``TYPE_CHECKING``. Each test lists all its violations at
once.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "mailcue_server"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

LAYERS: dict[str, int] = {
    "": 0,  # the package root (__version__)
    "config": 0,
    "errors": 0,
    "start_failures": 0,  # turns start-up errors into one line naming the setting
    "health": 0,  # the health probe's body, answered before the API is built
    "store": 1,
    "events": 1,
    "mail": 1,
    "migrations": 1,
    "schema.types": 2,
    "workers": 3,
    "resolvers": 3,
    "schema": 4,
    "rest_compat": 4,
    "api": 5,
    "app": 6,
    "cli": 7,
}

_ABOVE_STORAGE = {"schema.types", "schema", "resolvers", "rest_compat", "api", "workers", "app"}
_EDGE = {"app", "cli"}
BANNED: dict[str, set[str]] = {
    # Protocol servers get store, bus and credentials; they never see the API side.
    "workers": {"schema.types", "schema", "resolvers", "rest_compat", "api"} | _EDGE,
    "store": _ABOVE_STORAGE | _EDGE,
    "events": _ABOVE_STORAGE | _EDGE,
    # mail/ is pure: bytes in, values out.
    "mail": _ABOVE_STORAGE | _EDGE | {"store", "events", "migrations"},
    # Siblings: rest_compat serialises schema.types objects, never the GraphQL root fields.
    "schema": {"rest_compat"},
    "rest_compat": {"schema", "store"},
}

# The one variable read outside config.py: the create-admin password, documented in --help.
ENVIRONMENT_ALLOWED: set[tuple[str, str]] = {
    ("cli.py", "MAILCUE_NEW_ADMIN_PASSWORD"),
    ("cli.py", "MAILCUE_NEW_MAILBOX_PASSWORD"),
}
_ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb"}


@dataclass(frozen=True)
class Module:
    path: str  # relative to the package dir, e.g. "workers/smtp/server.py"
    name: str  # dotted, e.g. "mailcue_server.workers.smtp.server"
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports resolve against."""
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


def load_module(path: str, source: str) -> Module:
    parts = [PACKAGE, *Path(path).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return Module(path, ".".join(parts), ast.parse(source, filename=path))


def package_modules() -> list[Module]:
    return [
        load_module(file.relative_to(PACKAGE_DIR).as_posix(), file.read_text(encoding="utf-8"))
        for file in sorted(PACKAGE_DIR.rglob("*.py"))
    ]


def part_of(module_name: str) -> str | None:
    """The LAYERS key a dotted module belongs to (longest match), or None if unknown."""
    if module_name == PACKAGE:
        return ""
    rest = module_name.removeprefix(PACKAGE + ".").split(".")
    for length in range(len(rest), 0, -1):
        candidate = ".".join(rest[:length])
        if candidate in LAYERS:
            return candidate
    return None


def _is_submodule(dotted: str) -> bool:
    target = PACKAGE_DIR.joinpath(*dotted.split(".")[1:])
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def imported_modules(module: Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every mailcue_server module ``module`` imports."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                # `from mailcue_server import errors` names a module; `import __version__` not.
                candidate = f"{source}.{alias.name}"
                yield node.lineno, candidate if _is_submodule(candidate) else source


def import_violations(module: Module) -> list[str]:
    here = part_of(module.name)
    if here is None:
        return [f"{module.path}: no layer assigned; add its part to LAYERS"]
    found = []
    for line, target in imported_modules(module):
        there = part_of(target)
        where = f"{module.path}:{line} imports {target}"
        if there is None:
            found.append(f"{where}: target has no layer")
        elif LAYERS[there] > LAYERS[here]:
            found.append(
                f"{where}: {here or PACKAGE} (layer {LAYERS[here]}) may not import "
                f"{there} (layer {LAYERS[there]})"
            )
        elif there in BANNED.get(here, set()):
            found.append(f"{where}: {here} must never import {there}")
    return found


def environment_violations(module: Module) -> tuple[list[str], set[tuple[str, str]]]:
    """Reads of os.environ / os.getenv outside config.py, and the allow-list entries used."""
    if module.path == "config.py":
        return [], set()
    os_names = {
        alias.asname or alias.name
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os"
    }
    parents = {
        child: node for node in ast.walk(module.tree) for child in ast.iter_child_nodes(node)
    }
    found: list[str] = []
    used: set[tuple[str, str]] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
            names = sorted(a.name for a in node.names if a.name in _ENVIRONMENT_NAMES)
            if names:
                found.append(f"{module.path}:{node.lineno} imports {', '.join(names)} from os")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in _ENVIRONMENT_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            variable = _variable_read(node, parents)
            if variable is not None and (module.path, variable) in ENVIRONMENT_ALLOWED:
                used.add((module.path, variable))
            else:
                what = f"os.{node.attr}" + (f" ({variable})" if variable else "")
                found.append(f"{module.path}:{node.lineno} reads {what}; only config.py may")
    return found, used


def _variable_read(node: ast.Attribute, parents: dict[ast.AST, ast.AST]) -> str | None:
    """The constant name in ``os.getenv("X")``, ``os.environ.get("X")`` or ``os.environ["X"]``."""
    parent = parents.get(node)
    key: ast.expr | None = None
    if isinstance(parent, ast.Call) and parent.func is node and parent.args:
        key = parent.args[0]  # os.getenv("X")
    elif isinstance(parent, ast.Subscript) and parent.value is node:
        key = parent.slice  # os.environ["X"]
    elif isinstance(parent, ast.Attribute) and parent.attr == "get":
        call = parents.get(parent)
        if isinstance(call, ast.Call) and call.func is parent and call.args:
            key = call.args[0]  # os.environ.get("X")
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value
    return None


@pytest.fixture(scope="module")
def modules() -> list[Module]:
    found = package_modules()
    assert len(found) > 20, "the walk found suspiciously few modules"
    return found


def test_imports_point_down_the_layers(modules: list[Module]) -> None:
    violations = [v for module in modules for v in import_violations(module)]
    assert not violations, "import direction broken:\n" + "\n".join(violations)


def test_only_config_reads_the_environment(modules: list[Module]) -> None:
    violations: list[str] = []
    used: set[tuple[str, str]] = set()
    for module in modules:
        found, allowed = environment_violations(module)
        violations += found
        used |= allowed
    violations += [
        f"{path}: allow-list entry for {variable} is no longer used; remove it"
        for path, variable in sorted(ENVIRONMENT_ALLOWED - used)
    ]
    assert not violations, "environment read outside config.py:\n" + "\n".join(violations)


def test_rest_compat_has_runtime_annotations_and_no_store(modules: list[Module]) -> None:
    """FastAPI reads annotations at run time; the REST layer goes through resolvers only."""
    rest = [m for m in modules if part_of(m.name) == "rest_compat"]
    assert rest, "no rest_compat modules found"
    violations = [
        f"{m.path}:{node.lineno} uses `from __future__ import annotations`"
        for m in rest
        for node in ast.walk(m.tree)
        if isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
    ]
    violations += [
        f"{m.path}:{line} imports {target}"
        for m in rest
        for line, target in imported_modules(m)
        if part_of(target) == "store"
    ]
    assert not violations, "rest_compat rules broken:\n" + "\n".join(violations)


# The checkers themselves, on made-up modules, so a green run is not a blind one.


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("workers/smtp/x.py", "from mailcue_server.api.app import create_app", "may not"),
        ("workers/x.py", "import mailcue_server.schema.types.auth", "must never"),
        ("workers/x.py", "from mailcue_server import resolvers", "must never"),
        ("store/x.py", "from mailcue_server.resolvers.context import Context", "may not"),
        ("mail/x.py", "from mailcue_server.store import users", "must never"),
        ("mail/x.py", "from ..events import bus", "must never"),
        ("schema/x.py", "from mailcue_server.api import errors", "may not"),
        ("rest_compat/x.py", "from mailcue_server.schema.root import build_schema", "must never"),
        ("config.py", "def f():\n    from mailcue_server.store import db", "may not"),
        ("newpart/x.py", "import json", "no layer"),
    ],
)
def test_import_checker_catches(path: str, source: str, expected: str) -> None:
    violations = import_violations(load_module(path, source))
    assert len(violations) == 1 and expected in violations[0], violations


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (
            "workers/x.py",
            "from mailcue_server.store import users\nfrom mailcue_server import errors",
        ),
        ("store/x.py", "from mailcue_server.mail import mime\nfrom . import models"),
        ("resolvers/x.py", "from mailcue_server.schema.types.auth import LoginRequest"),
        ("rest_compat/x.py", "from mailcue_server.schema.types import common"),
        ("api/x.py", "from mailcue_server import __version__"),
    ],
)
def test_import_checker_allows(path: str, source: str) -> None:
    assert import_violations(load_module(path, source)) == []


@pytest.mark.parametrize(
    ("path", "source", "flagged"),
    [
        ("store/x.py", "import os\nos.environ.get('MAILCUE_X')", True),
        ("store/x.py", "import os as o\nx = o.getenv('HOME')", True),
        ("store/x.py", "from os import environ", True),
        ("cli.py", "import os\nos.environ['MAILCUE_SECRET_KEY']", True),
        ("cli.py", "import os\nos.environ.get('MAILCUE_NEW_ADMIN_PASSWORD')", False),
        ("config.py", "import os\nos.environ", False),
    ],
)
def test_environment_checker(path: str, source: str, flagged: bool) -> None:
    found, _ = environment_violations(load_module(path, source))
    assert bool(found) is flagged, found
