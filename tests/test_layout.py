"""The code's shape: no import cycles in codecs/ or streams/, no module far over 400 lines,
and the pure core never imports the I/O shell, Kafka or an HTTP client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"codecs": "pushstream.codecs", "streams": "pushstream.streams"}
MAX_LINES = 420  # "~400": room for a docstring line or two, not for a second job


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            mods[".".join([name, *parts])] = path
    return mods


def _imports(module: str, path: Path) -> set[str]:
    """Every module name an import statement in the file names (also imports inside functions)."""
    names: set[str] = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            names |= {target, *(f"{target}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


MODULES = _modules()
GRAPH = {m: {n for n in _imports(m, p) if n in MODULES and n != m} for m, p in MODULES.items()}


def _cycle_from(start: str) -> list[str] | None:
    """A path of imports from `start` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for dep in GRAPH[node]:
            if dep == start:
                return [*path, start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


def test_the_import_graph_is_read_from_the_sources() -> None:
    assert "pushstream.codecs.js" in GRAPH["pushstream.codecs.mapping"]
    assert "pushstream.streams.agents.pipeline" in GRAPH["pushstream.streams.agents.route"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_cycle(module: str) -> None:
    assert _cycle_from(module) is None, " -> ".join(_cycle_from(module) or [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_far_over_400_lines(module: str) -> None:
    assert len(MODULES[module].read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pushstream.codecs")))
def test_the_pure_core_does_no_io(module: str) -> None:
    imported = {name.split(".")[0] for name in _imports(module, MODULES[module])}
    assert not imported & {"faust", "confluent_kafka", "aiokafka", "httpx", "aiohttp", "socket", "asyncio"}
    assert not any(name.startswith("pushstream.streams") for name in _imports(module, MODULES[module]))


MAX_CLASS_LINES, MAX_FUNCTION_LINES = 150, 60
COMPAT = "pushstream.streams.kafka.faust_compat"  # the one module that reads Faust's and aiokafka's insides


def _definitions(path: Path) -> list[tuple[str, int, int]]:
    """(name, kind, lines) of every class and function in a module, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            kind = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            found.append((node.name, kind, (node.end_lineno or node.lineno) - node.lineno + 1))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_class_over_150_lines_and_no_function_over_60(module: str) -> None:
    too_long = [(name, lines) for name, limit, lines in _definitions(MODULES[module]) if lines > limit]
    assert not too_long, too_long


def _private_reads(path: Path) -> list[str]:
    """`x._name` where x is not `self`, `cls` or `other` (another of the same class, in a
    comparison): another object's private attribute. Dunders, `os._exit` and constants spelled
    `_UPPER` (confluent-kafka documents `KafkaError._PARTITION_EOF`) aside."""
    reads = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls", "other", "os"):
                continue
            if node.attr.lstrip("_").isupper():
                continue
            reads.append(f"{ast.unparse(node)} (line {node.lineno})")
    return reads


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != COMPAT))
def test_private_attributes_of_other_objects_are_read_in_the_compat_module_only(module: str) -> None:
    assert not _private_reads(MODULES[module])


def test_few_modules_directly_in_streams() -> None:
    top = sorted(p.name for p in (ROOT / "streams").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 12, top


def test_pyproject_lists_every_package_folder() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join([PACKAGES[folder], *init.parent.relative_to(ROOT / folder).parts])
               for folder in PACKAGES for init in (ROOT / folder).rglob("__init__.py")}
    assert listed == folders, (sorted(listed - folders), sorted(folders - listed))


def test_every_module_a_comment_or_page_names_exists() -> None:
    """A comment naming a module is checked when the module moves: every module path (or bare module
    name) named in the tracked sources, configs and pages exists in the tree."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    names = {Path(f).name for f in tracked}
    mention = re.compile(r"(?<![\w/.-])((?:[A-Za-z0-9_-]+/)*[A-Za-z_][A-Za-z0-9_]*\.py)\b")
    missing = []
    for f in tracked:
        if not f.endswith((".py", ".md", ".toml", ".yml", ".sh")) or f.startswith("tests/codecs/data"):
            continue
        for ref in mention.findall((ROOT / f).read_text(errors="replace")):
            found = any(t == ref or t.endswith("/" + ref) for t in tracked) if "/" in ref else ref in names
            if not found:
                missing.append(f"{f}: {ref}")
    assert not missing, missing


#: What only the compat module may name: Faust's RocksDB layout, its monitor, its Ready line.
SEAM_ONLY = ("__faust", "rocksdict import AccessType", "Rdict(", "faust.sensors", "offset_key", "partition_path",
             "]: Ready", "stream_inbound_time")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_faust_layouts_and_texts_are_named_in_the_compat_module_only(module: str) -> None:
    if module == COMPAT:
        return
    text = MODULES[module].read_text()
    assert not [s for s in SEAM_ONLY if s in text], module


def test_the_readme_is_short_and_every_page_link_resolves() -> None:
    """The README is what a newcomer reads first (the rest is in docs/), and no page links to a file
    that is not there."""
    import re

    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "RESULTS.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
