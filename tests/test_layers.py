"""Package layering: imports point down only (no cycles); the engine does no file I/O."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xlsr_live"


def _imports() -> dict[str, set[str]]:
    """Every xlsr_live module -> the modules it imports anywhere (also inside functions)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(node) for block in ast.walk(tree)  # `if TYPE_CHECKING:` imports never run
                       if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
                       for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        graph[".".join(parts)] = names
    # a module's own ancestor packages are initialised before it anyway: not a dependency
    return {name: {n for n in names if n in graph and not (name + ".").startswith(n + ".")}
            for name, names in graph.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules imported by `start`, directly or not (a package's own submodules excluded at the start)."""
    seen, todo = set(), [m for m in graph[start] if not m.startswith(start + ".")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


def test_no_import_cycles():
    """No module imports itself through others (package __init__ re-exports aside)."""
    graph = _imports()
    cycles = [name for name in graph if not (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").is_file()
              and name in _reachable(graph, name)]
    assert cycles == []


def test_decoders_and_ctc_do_not_import_the_engine():
    """ctc.py, audio.py and decoding/ stand below streaming/ and offline.py."""
    graph = _imports()
    for low in ("xlsr_live.ctc", "xlsr_live.audio", "xlsr_live.decoding.factory"):
        above = {m for m in _reachable(graph, low) if m.startswith(("xlsr_live.streaming", "xlsr_live.offline"))}
        assert above == set(), low


def test_engine_reads_no_files():
    """No module of streaming/ imports soundfile or the file readers."""
    for path in (PACKAGE / "streaming").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for name in ("soundfile", "read_audio", "open_audio", "iter_audio_blocks", "file_stream"):
            assert name not in source, f"{path.name} uses {name}"
