"""The package's layout keeps its promises: production code never imports the tools
(streams/tools/: local broker, runner, demo, benchmark, evaluation, training), and no module
imports another that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import streams

PACKAGE = Path(streams.__file__).parent
CLI = PACKAGE / "cli.py"  # the front door: it dispatches to the tools, inside their commands


def imports(path: Path) -> set[str]:
    """The ``streams`` modules a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name == "streams" or name.startswith("streams.")}


def runtime_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "tools" not in p.relative_to(PACKAGE).parts and p != CLI]


def test_runtime_modules_never_import_the_tools() -> None:
    offenders = {str(p.relative_to(PACKAGE)): sorted(n for n in imports(p) if n.startswith("streams.tools"))
                 for p in runtime_modules()}
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert len(runtime_modules()) > 20  # the walk found the package


def test_no_import_cycles() -> None:
    """Lazy (function-level) imports count too: a cycle hidden in a function is still a tangle."""
    def module(p: Path) -> str:
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    graph = {module(p): set() for p in PACKAGE.rglob("*.py")}
    for p in PACKAGE.rglob("*.py"):
        graph[module(p)] = {name for name in imports(p) if name in graph and name != module(p)}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for m in sorted(graph) if (c := cycle_from(m))]
    assert not cycles, cycles[:3]


def test_a_stage_loads_only_what_it_needs() -> None:
    """Importing dedup, tag or alert does not load the HTML path's trafilatura (it loads with the
    first HTML page the clean stage sees)."""
    import subprocess
    import sys

    check = ("import sys, streams.stages.dedup, streams.stages.tag, streams.stages.alert; "
             "assert 'trafilatura' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]


def test_every_folder_of_code_is_a_package_the_build_ships() -> None:
    """setuptools' packages.find (pyproject.toml) ships regular packages only: a folder of modules
    without ``__init__.py`` would be missing from a non-editable install, such as the Docker image."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert not sorted(str(f) for f in folders if not (f / "__init__.py").exists())


def test_every_import_of_the_package_resolves() -> None:
    """Lazy imports inside functions (the CLI's commands) included, which only fail when run."""
    import os
    import subprocess
    import sys

    wanted = sorted({(node.module, alias.name) for p in PACKAGE.rglob("*.py")
                     for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                     if isinstance(node, ast.ImportFrom) and node.level == 0
                     and (node.module or "").startswith("streams")
                     for alias in node.names})
    check = ("import importlib, sys\n"
             f"wanted = {wanted!r}\n"
             "missing = []\n"
             "for module, name in wanted:\n"
             "    m = importlib.import_module(module)\n"
             "    if not hasattr(m, name):\n"
             "        try:\n"
             "            importlib.import_module(f'{module}.{name}')\n"
             "        except ImportError:\n"
             "            missing.append(f'{module}.{name}')\n"
             "assert not missing, missing\n")
    env = {**os.environ, "STREAMS_BROKER": "127.0.0.1:9", "STREAMS_SPACY_MODEL": "none"}  # streams.app needs one
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
