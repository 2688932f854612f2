"""The house: one package per stage, faces on top, no import cycles, small modules and functions, a light
``import s3_hf``, lazy task registration and one home for each shared mechanism.

The import graph is read statically from the sources (every ``import`` statement, module-level or inside a
function; ``if TYPE_CHECKING:`` blocks excluded), so one parse of the package checks every module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import s3_hf

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(s3_hf.__file__).resolve().parent

#: The faces: thin layers over the engine. The library never imports them.
FACES = ("s3_hf.cli", "s3_hf.app", "s3_hf.evaluation", "s3_hf.pipelines")
#: Face -> faces it may import: the CLI is the dispatcher of the evaluation (`s3 eval`, `s3 bench`, `s3 card`) and
#: of the Space builder and demo data (`s3 space`, `s3 demo`); no other face imports another.
FACE_IMPORTS = {"s3_hf.cli": ("s3_hf.evaluation", "s3_hf.app.deploy", "s3_hf.app.demo")}
#: Library -> face edges that are allowed, with the reason.
LIBRARY_TO_FACE = {
    ("s3_hf", "s3_hf.pipelines.tasks"): "`import s3_hf` installs the lazy task registration (torch-free)",
}
#: Modules that may exceed the size bounds, with the reason (flat checklists, not logic).
LONG_MODULES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "metrics" not in p.relative_to(PACKAGE).parts[:2] or p.parent.name == "metrics"
        # the evaluate metric modules (evaluation/metrics/<name>/<name>.py) are loaded by path, not imported
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, name: str, is_package: bool, top_level: bool) -> set[str]:
    """The modules an AST imports (resolved, relative imports included)."""
    found: set[str] = set()

    def visit(node: ast.AST, depth: int) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, depth)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        inner = depth + isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if top_level and inner:
            return
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, 0)
    return found


@cache
def graph(top_level: bool = False) -> dict[str, set[str]]:
    """module -> the package modules it imports (``top_level``: only imports run when it is imported)."""
    known = modules()
    out = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out[name] = {m for m in _imports(tree, name, path.name == "__init__.py", top_level) if m in known} - {name}
    return out


@cache
def third_party(top_level: bool = True) -> dict[str, set[str]]:
    """module -> the top-level names of the non-package modules it imports."""
    known = modules()
    out = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out[name] = {m.split(".")[0] for m in _imports(tree, name, path.name == "__init__.py", top_level)} - {"s3_hf"}
    return out


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def face_of(name: str) -> str | None:
    return next((f for f in FACES if name == f or name.startswith(f + ".")), None)


def test_the_graph_sees_every_kind_of_import():
    edges, top = graph(), graph(top_level=True)
    assert "s3_hf.pipelines.base" in top["s3_hf.pipelines.classification"]  # module level
    assert any(edges[m] - top[m] for m in edges)  # function level (lazy imports)
    assert all(top[m] <= edges[m] <= set(modules()) for m in edges)
    assert len(modules()) > 60


def test_no_import_cycles_counting_function_level_imports():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            walk(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_library_never_imports_a_face_and_faces_never_import_each_other():
    wrong = []
    for name, targets in graph().items():
        mine = face_of(name)
        for target in targets:
            theirs = face_of(target)
            if theirs is None or theirs == mine:
                continue
            if mine is None and (name, target) in LIBRARY_TO_FACE:
                continue
            if mine is not None and target.startswith(FACE_IMPORTS.get(mine, ("-",))):
                continue
            wrong.append(f"{name} -> {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_light_modules_import_neither_torch_nor_transformers_when_imported():
    edges, outside = graph(top_level=True), third_party(top_level=True)
    light = {
        "s3_hf": {"torch", "transformers", "gudhi", "gradio"},
        "s3_hf.options": {"torch", "transformers"},
        "s3_hf.errors": {"torch", "transformers"},
        "s3_hf.limits": {"torch", "transformers"},
        "s3_hf.cli": {"torch", "transformers", "gudhi"},
        "s3_hf.space.files": {"torch", "transformers"},
        "s3_hf.space.geometry": {"transformers"},
        "s3_hf.space.scoring": {"transformers"},
    }
    for start, banned in light.items():
        loaded = reachable(start, edges)
        heavy = {m: outside[m] & banned for m in loaded if outside[m] & banned}
        assert not heavy, f"importing {start} imports {heavy}"


def test_s3_help_and_import_s3_hf_stay_light_in_a_real_interpreter():
    code = (
        "import sys, s3_hf\nfrom s3_hf.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'gudhi', 'gradio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _lengths() -> tuple[dict[str, int], dict[str, int]]:
    mods, funcs = {}, {}
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(PACKAGE.parent))
        mods[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                funcs[f"{rel}:{node.name}@{node.lineno}"] = node.end_lineno - start + 1
    return mods, funcs


def test_no_module_over_500_lines_and_no_function_over_60():
    mods, funcs = _lengths()
    long_modules = {m for m, n in mods.items() if n > MAX_MODULE_LINES}
    long_functions = {f.split("@")[0] for f, n in funcs.items() if n > MAX_FUNCTION_LINES}
    assert long_modules <= set(LONG_MODULES), f"modules over {MAX_MODULE_LINES} lines: {sorted(long_modules)}"
    assert long_functions <= set(LONG_FUNCTIONS), f"functions over {MAX_FUNCTION_LINES} lines: {sorted(long_functions)}"
    stale = (set(LONG_MODULES) - long_modules) | (set(LONG_FUNCTIONS) - long_functions)
    assert not stale, f"allowed but no longer long (remove from the allow-list): {sorted(stale)}"


@pytest.mark.parametrize("order", ["s3_hf first", "transformers first"])
def test_task_is_registered_lazily_in_either_import_order(tiny_clip_dir, photos, order):
    first, second = ("import s3_hf", "import transformers.pipelines")
    if order != "s3_hf first":
        first, second = second, first
    code = (
        f"{first}\n{second}\nfrom transformers import pipeline\nimport s3_hf\n"
        f"pipe = pipeline(s3_hf.TASK, model={str(tiny_clip_dir)!r})\n"
        f"print(type(pipe).__name__, pipe({str(photos[0])!r}, candidate_labels=['cat', 'dog'])[0]['label'] in "
        "('cat', 'dog'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "S3ZeroShotImageClassificationPipeline True"


def test_a_pipeline_class_imported_first_still_registers_both_tasks():
    code = (
        "import s3_hf\nfrom s3_hf import S3OpenVocabularySegmentationPipeline\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "print(sorted(t for t in PIPELINE_REGISTRY.supported_tasks if t.startswith('s3-')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(sorted([s3_hf.SEGMENTATION_TASK, s3_hf.TASK]))
    assert "already registered" not in out.stderr


def test_public_names_resolve_and_are_listed():
    for name in s3_hf.__all__:
        assert getattr(s3_hf, name) is not None, name
    assert "annotations" not in s3_hf.__all__ and not hasattr(s3_hf, "annotations")
    with pytest.raises(AttributeError):
        _ = s3_hf.no_such_name


def _sources() -> dict[str, str]:
    out = {}
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "space_app").rglob("*.py")]:
        if "metrics" in path.parts and path.parent.parent.name == "metrics":
            continue  # the evaluate modules, loaded by path
        base = ROOT if ROOT in path.parents else PACKAGE.parent
        out[str(path.relative_to(base))] = path.read_text(encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("what", "pattern", "home"),
    [
        ("atomic writes", r"mkstemp|os\.replace\(|\.rename\(|tmp\.replace\(|\.tmp\b", {"s3_hf/io/files.py"}),
        ("figure files", r"\.savefig\(", {"s3_hf/io/files.py"}),
        ("Hub downloads", r"hf_hub_download\(|snapshot_download\(", {"s3_hf/io/hub.py"}),
        ("Hub uploads", r"\.upload_folder\(|\.create_repo\(", {"s3_hf/io/hub.py"}),
        ("image suffix sets", r"\"\.jpe?g\"\s*,", {"s3_hf/io/images.py"}),
        (
            "model loading",
            r"Model\w*\.from_pretrained\(|Model\w*\.from_config\(|Model\(\w*Config",
            # hub_code.py is written verbatim into every space and runs without s3-hf: it loads the base model itself
            {"s3_hf/models/loading.py", "s3_hf/space/hub_code.py"},
        ),
        ("pipeline registration", r"register_pipeline\(", {"s3_hf/pipelines/tasks.py"}),
    ],
)
def test_one_implementation_of_each_mechanism(what, pattern, home):
    sources = _sources()
    assert home <= set(sources), f"{sorted(home - set(sources))} moved: update this test"
    found = {name for name, text in sources.items() if re.search(pattern, text)}
    assert found <= home, f"{what} are implemented outside {sorted(home)}: {sorted(found - home)}"
