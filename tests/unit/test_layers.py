"""The package's layers, read from its imports: each room imports only the rooms below it.

Every ``mrkafka`` import counts, those inside functions too: a lazy import is still a
dependency. The rules are the ones each package's docstring states.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import ROOT

TOP = {"mrkafka", "mrkafka.errors", "mrkafka.job", "mrkafka.settings"}
#: room -> the rooms it may import besides itself (the top modules are allowed to all but these).
ALLOWED = {
    "mrkafka": {"mrkafka.errors", "mrkafka.job"},  # the package's face: Job and the root error
    "mrkafka.errors": set(),
    "mrkafka.settings": {"mrkafka.errors"},
    "mrkafka.job": {"mrkafka.errors"},
    "mrkafka.kafka": {"mrkafka.errors"},
    "mrkafka.cluster": TOP,
    "mrkafka.core": TOP,
    "mrkafka.obs": TOP | {"mrkafka.core"},
    "mrkafka.io": TOP | {"mrkafka.core", "mrkafka.obs"},
    "mrkafka.batch": TOP | {"mrkafka.core", "mrkafka.io", "mrkafka.obs", "mrkafka.cluster"},
    "mrkafka.stream": TOP | {"mrkafka.core", "mrkafka.io", "mrkafka.obs", "mrkafka.cluster", "mrkafka.kafka"},
    "mrkafka.devtools": TOP | {"mrkafka.core", "mrkafka.io", "mrkafka.obs", "mrkafka.kafka"},
    "mrkafka.cli": None,  # the top: anything
}


def _room(name: str) -> str:
    """The room of a module or of a name imported from one (``mrkafka.core.keys.LONG`` -> ``mrkafka.core``)."""
    for room in sorted(ALLOWED, key=len, reverse=True):
        if name == room or name.startswith(room + "."):
            return room
    raise AssertionError(f"{name} is in no room")


def _imports() -> dict[str, set[str]]:
    """Each module of the package -> the mrkafka modules it imports."""
    found = {}
    for path in sorted((ROOT / "mrkafka").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mrkafka"):
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names if alias.name.startswith("mrkafka")}
        found[module] = names
    return found


def test_every_room_imports_only_the_rooms_below_it() -> None:
    modules = _imports()
    assert {_room(m) for m in modules} <= set(ALLOWED), "a room the rules do not name"
    wrong = []
    for module, names in modules.items():
        room = _room(module)
        allowed = ALLOWED[room]
        for name in names:
            if allowed is not None and _room(name) != room and _room(name) not in allowed:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("module", ["mrkafka.job", "mrkafka.settings", "mrkafka"])
def test_the_users_contract_and_the_settings_import_light(module: str) -> None:
    heavy = ["ray", "numba", "confluent_kafka", "cryptography", "click", "pyarrow"]
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == [], f"import {module} loads {out.stdout.strip()}"


def test_no_module_or_function_outgrows_a_screenful_or_two() -> None:
    big = []
    for path in sorted((ROOT / "mrkafka").rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 450:
            big.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                big.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1}")
    assert not big, "\n".join(big)
