"""The import graph keeps the layers: train, serve -> adapters -> skbandit, with no cycles.

Every ``import`` of the tree is read with :mod:`ast`, wherever it sits (module level, inside a
function, under ``TYPE_CHECKING``), so a lazy import cannot hide an arrow running back up.
A module is a ``.py`` file of the packages below; an import names the deepest module of the
tree it reaches (``from skbandit.ope import gate`` -> ``skbandit.ope.gate``), otherwise its
top-level name (third-party, recorded for the purity check).
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("skbandit", "adapters", "train", "serve", "bench", "tests/support")
SHIPPED = ("skbandit", "adapters", "train", "serve")
ALLOWED = {  # layer -> first-party layers it may import (its own included)
    "skbandit": {"skbandit"},
    "adapters": {"adapters", "skbandit"},
    "train": {"train", "adapters", "skbandit"},
    "serve": {"serve", "adapters", "skbandit"},
    "bench": {"bench", "tests", "train", "serve", "adapters", "skbandit"},
    "tests": {"tests", "bench", "train", "serve", "adapters", "skbandit"},
}
CORE_FORBIDDEN = {"mlflow", "typer", "rich", "pyspark", "pathlib"}
CORE_FORBIDDEN_CALLS = {"open", "print", "read_csv", "read_parquet", "to_csv", "to_parquet"}
# Each floor above skbandit/ is grouped by job: a module sits in one of these folders, or is one
# of the few single-module entries named here (issue 20).
ROOMS = {
    "train": {
        "folders": {
            "warmstart",
            "spark",
            "ingest",
            "evaluate",
            "evaluate.compare",
            "evaluate.deploy",
        },
        "modules": {"__init__", "simulate", "batch_score", "_cli"},
    },
    "adapters": {
        "folders": {"registry", "model", "serving", "decision_log", "data", "importers"},
        "modules": {"__init__", "paths", "tracking", "runs", "errors", "model_flavor"},
    },
}
ENTRY_MODULES = {"cli", "__main__"}  # a job's command: the top floor, above every job
# Above adapters/ no module touches MLflow or files itself (issue 20): it calls adapters/.
IO_LAYERS = ("train", "serve")
IO_FORBIDDEN_IMPORTS = {"mlflow", "shutil", "tempfile", "sqlite3", "pickle", "joblib", "glob"}
IO_FORBIDDEN_METHODS = {  # on any object: Path, DataFrame, figure, file handle
    "read_text", "write_text", "read_bytes", "write_bytes", "open",
    "read_parquet", "read_csv", "read_json", "read_feather", "read_excel", "read_pickle",
    "to_parquet", "to_feather", "to_excel", "to_pickle", "savefig",
    "mkdir", "unlink", "rmdir", "touch", "rmtree", "iterdir", "glob", "rglob",
}  # fmt: skip
IO_PATH_OPTIONAL = {"to_csv", "to_json"}  # without a path they return text: allowed
IO_FORBIDDEN_MODULE_CALLS = {
    "os": {"remove", "unlink", "rename", "replace", "makedirs", "mkdir", "rmdir", "removedirs",
           "listdir", "scandir", "walk", "open", "truncate"},
    "np": {"save", "savez", "savez_compressed", "load", "loadtxt", "savetxt", "fromfile"},
    "numpy": {"save", "savez", "savez_compressed", "load", "loadtxt", "savetxt", "fromfile"},
    "json": {"dump", "load"},
}  # fmt: skip
STANDARD_STREAMS = {"sys.stdout", "sys.stderr", "sys.stdin"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # module of the tree, or a third-party top-level name
    file: str
    line: int
    text: str  # the import statement

    def where(self) -> str:
        return f"{self.file}:{self.line} `{self.text}`"


def layer(module: str) -> str:
    return module.split(".")[0]


def module_names(root: Path, packages=PACKAGES) -> dict[str, Path]:
    names = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The deepest module of the tree that ``name`` reaches, else its top-level name."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return parts[0]


def _targets(node: ast.AST, module: str, is_package: bool, modules) -> list[str]:
    if isinstance(node, ast.Import):
        return [_resolve(alias.name, modules) for alias in node.names]
    if node.level:  # relative: from the importing module's package upwards
        base = module.split(".")[: len(module.split(".")) - node.level + is_package]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    return [_resolve(f"{prefix}.{alias.name}", modules) for alias in node.names]


def import_graph(root: Path = ROOT, packages=PACKAGES) -> list[Import]:
    modules = module_names(root, packages)
    imports = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        file = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(source, filename=file)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                text = ast.unparse(node)
                for target in dict.fromkeys(
                    _targets(node, module, path.name == "__init__.py", modules)
                ):
                    if target != module:
                        imports.append(Import(module, target, file, node.lineno, text))
    return imports


def find_cycle(imports: list[Import]) -> list[Import] | None:
    """One import cycle as the chain of imports that closes it, or None (iterative DFS)."""
    edges: dict[str, list[Import]] = {}
    for imp in imports:
        edges.setdefault(imp.source, []).append(imp)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(edges):
        if start in state:
            continue
        path: list[Import] = []
        stack = [(start, iter(edges.get(start, ())))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            imp = next(children, None)
            if imp is None:
                state[node] = 2
                stack.pop()
                if path:
                    path.pop()
            elif state.get(imp.target) == 1:
                first = next(i for i, p in enumerate(path) if p.source == imp.target) if path else 0
                return [*path[first:], imp]
            elif imp.target not in state and imp.target in edges:
                state[imp.target] = 1
                path.append(imp)
                stack.append((imp.target, iter(edges[imp.target])))
    return None


def layer_violations(imports: list[Import]) -> list[str]:
    first_party = set(ALLOWED)
    bad = []
    for imp in imports:
        target = layer(imp.target)
        if target in first_party and target not in ALLOWED[layer(imp.source)]:
            bad.append(f"{imp.where()}: {layer(imp.source)} must not import {target}")
    return list(dict.fromkeys(bad))


def forbidden_imports(imports: list[Import], layers, targets) -> list[str]:
    """Imports from modules in ``layers`` of anything whose top-level name is in ``targets``."""
    return [
        imp.where()
        for imp in imports
        if layer(imp.source) in layers and layer(imp.target) in targets
    ]


def _under(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def reaches(imports: list[Import], source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    """Chains by which modules under ``source_prefix`` reach a forbidden module, even indirectly."""
    edges: dict[str, list[Import]] = {}
    for imp in imports:
        edges.setdefault(imp.source, []).append(imp)
    found = []
    for start in sorted(m for m in edges if _under(m, [source_prefix])):
        seen, queue = {start}, [(start, [])]
        while queue:
            node, chain = queue.pop(0)
            for imp in edges.get(node, ()):
                if _under(imp.target, forbidden):
                    found.append(" -> ".join(i.where() for i in [*chain, imp]))
                elif imp.target not in seen:
                    seen.add(imp.target)
                    queue.append((imp.target, [*chain, imp]))
    return found


def _adapter_names(tree: ast.AST) -> set[str]:
    """The names a module binds to modules of adapters/ (``from adapters.data import spark``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "adapters":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(
                a.asname for a in node.names if a.asname and a.name.startswith("adapters.")
            )
    return names


def _io_call(node: ast.Call, adapters: set[str] = frozenset()) -> str | None:
    """Why ``node`` reads or writes a file itself, or None (calls on adapters/ are the way)."""
    func = node.func
    if isinstance(func, ast.Name):
        return "calls open()" if func.id == "open" else None
    if not isinstance(func, ast.Attribute):
        return None
    name, owner = func.attr, ast.unparse(func.value)
    if owner in adapters:
        return None
    if owner in IO_FORBIDDEN_MODULE_CALLS:
        if name not in IO_FORBIDDEN_MODULE_CALLS[owner]:
            return None
        streams = [ast.unparse(arg) in STANDARD_STREAMS for arg in node.args[1:2]]
        return None if any(streams) else f"calls {owner}.{name}()"
    if isinstance(func.value, ast.Attribute) and func.value.attr in ("read", "write"):
        return f"reads or writes through .{func.value.attr}.{name}()"  # Spark's reader/writer
    if name in IO_FORBIDDEN_METHODS:
        return f"calls .{name}()"
    if name in IO_PATH_OPTIONAL and (
        node.args or any(k.arg == "path_or_buf" for k in node.keywords)
    ):
        return f"calls .{name}() with a path"
    return None


def file_io_violations(root: Path = ROOT, layers=IO_LAYERS) -> list[str]:
    """Every import of an I/O module and every file read or write in the modules of ``layers``."""
    bad = []
    for package in layers:
        for path in sorted((root / package).rglob("*.py")):
            file = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=file)
            adapters = _adapter_names(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = (
                        [alias.name for alias in node.names]
                        if isinstance(node, ast.Import)
                        else [node.module or ""]
                    )
                    hit = sorted({n.split(".")[0] for n in names} & IO_FORBIDDEN_IMPORTS)
                    if hit:
                        bad.append(f"{file}:{node.lineno} `{ast.unparse(node)}`: imports {hit[0]}")
                elif isinstance(node, ast.Call) and (why := _io_call(node, adapters)):
                    bad.append(f"{file}:{node.lineno} `{ast.unparse(node)[:80]}`: {why}")
    return bad


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph()


def test_the_graph_sees_every_package(graph):
    layers = {layer(imp.source) for imp in graph}
    assert layers == set(ALLOWED), f"no imports read from {set(ALLOWED) - layers}"


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(i.where() for i in cycle)


def test_imports_go_down_the_layers(graph):
    """skbandit <- adapters <- {train, serve}; train and serve never import each other."""
    bad = layer_violations(graph)
    assert not bad, "imports running up the layers:\n" + "\n".join(bad)


def test_nothing_shipped_imports_tests_or_bench(graph):
    bad = forbidden_imports(graph, SHIPPED, {"tests", "bench"})
    assert not bad, "shipped code importing tests/ or bench/:\n" + "\n".join(bad)


def test_core_imports_no_io_or_app_framework(graph):
    bad = forbidden_imports(graph, {"skbandit"}, CORE_FORBIDDEN)
    assert not bad, f"skbandit/ imports one of {sorted(CORE_FORBIDDEN)}:\n" + "\n".join(bad)


def test_core_does_no_file_io_or_printing():
    bad = []
    for path in sorted((ROOT / "skbandit").rglob("*.py")):
        file = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name in CORE_FORBIDDEN_CALLS:
                    bad.append(f"{file}:{node.lineno} calls {name}()")
    assert not bad, "skbandit/ reads or writes files or prints:\n" + "\n".join(bad)


def test_core_text_never_says_import_mlflow_or_typer():
    """``grep -r "import mlflow\\|import typer" skbandit/`` finds nothing (docstrings included)."""
    pattern = re.compile(r"import (mlflow|typer)")
    bad = [
        f"{path.relative_to(ROOT).as_posix()}:{n}: {line.strip()}"
        for path in sorted((ROOT / "skbandit").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_train_and_serve_leave_mlflow_and_files_to_adapters():
    """No module of train/ or serve/ imports mlflow or reads or writes a file itself (pyspark
    stays allowed in train/spark/, whose session and reads/writes are in adapters/data/spark.py)."""
    bad = file_io_violations()
    assert not bad, "MLflow or file I/O above adapters/ (move it into adapters/):\n" + "\n".join(
        bad
    )


def test_the_io_check_catches_each_form_and_allows_text_and_streams(tmp_path):
    forbidden = {
        "import mlflow": "imports mlflow",
        "from mlflow.exceptions import MlflowException": "imports mlflow",
        "import shutil": "imports shutil",
        "open('x')": "calls open()",
        "path.read_text()": "calls .read_text()",
        "path.write_bytes(b'')": "calls .write_bytes()",
        "pd.read_parquet(path)": "calls .read_parquet()",
        "frame.to_parquet(path)": "calls .to_parquet()",
        "frame.to_csv(path, index=False)": "calls .to_csv() with a path",
        "frame.to_json(path_or_buf=path)": "calls .to_json() with a path",
        "figure.savefig(path)": "calls .savefig()",
        "folder.mkdir(parents=True)": "calls .mkdir()",
        "os.replace(a, b)": "calls os.replace()",
        "np.save(path, a)": "calls np.save()",
        "json.dump(payload, handle)": "calls json.dump()",
        "session.read.parquet(path)": "reads or writes through .read.parquet()",
    }
    allowed = [
        "frame.to_csv(index=False)",
        "json.dump(payload, sys.stdout, indent=2)",
        "json.dumps(payload)",
        "text.replace('a', 'b')",
        "import pyspark",
        "from adapters.data import spark",
        "spark.read_parquet(session, path, 'events')",
    ]
    (tmp_path / "serve").mkdir()
    (tmp_path / "serve" / "bad.py").write_text("\n".join(forbidden) + "\n")
    (tmp_path / "serve" / "fine.py").write_text("\n".join(allowed) + "\n")
    found = file_io_violations(tmp_path, ("serve",))
    assert [line.rsplit(": ", 1)[1] for line in found] == list(forbidden.values())
    assert all(line.startswith("serve/bad.py:") for line in found)


def test_off_policy_evaluation_never_reaches_the_simulator_or_study(graph):
    """Evaluating real logs must not need the simulator, not even through another module."""
    chains = reaches(graph, "skbandit.ope", ("skbandit.sim", "skbandit.study"))
    assert not chains, "skbandit.ope reaches the simulator or study:\n" + "\n".join(chains)


def room(module: str) -> str | None:
    """The job folder of a module of train/ or adapters/ (``train.evaluate.compare``), or
    None for a single-module entry (``train.simulate``) and a job's command (``cli``,
    ``__main__``)."""
    parts = module.split(".")
    if parts[0] not in ROOMS or parts[-1] in ENTRY_MODULES:
        return None
    folders = ROOMS[parts[0]]["folders"]
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[1 : end + 1]) in folders:
            return ".".join(parts[: end + 1])
    return None


def room_graph(imports: list[Import]) -> list[Import]:
    """The imports between job folders (a folder's modules as one node)."""
    edges = []
    for imp in imports:
        source, target = room(imp.source), room(imp.target)
        if source and target and source != target and not target.startswith(source + "."):
            edges.append(Import(source, target, imp.file, imp.line, imp.text))
    return edges


@pytest.mark.parametrize("floor", sorted(ROOMS))
def test_every_module_sits_in_its_jobs_folder(floor):
    """``train/`` and ``adapters/`` are grouped by job: no flat module outside the listed ones."""
    folders, modules = ROOMS[floor]["folders"], ROOMS[floor]["modules"]
    stray = []
    for path in sorted((ROOT / floor).rglob("*.py")):
        parts = path.relative_to(ROOT / floor).with_suffix("").parts
        if len(parts) == 1:
            if parts[0] not in modules:
                stray.append(path.relative_to(ROOT).as_posix())
        elif not any(".".join(parts[:end]) in folders for end in range(1, len(parts))):
            stray.append(path.relative_to(ROOT).as_posix())
    assert not stray, f"modules of {floor}/ outside a job folder: {stray}"


def test_train_jobs_import_each_other_without_cycles(graph):
    """Between train's job folders the arrows go one way (a job's cli/__main__ may use any)."""
    edges = [imp for imp in room_graph(graph) if layer(imp.source) == "train"]
    cycle = find_cycle(edges)
    assert cycle is None, "job folders in a cycle: " + " -> ".join(i.where() for i in cycle)


def test_doctests_run_in_every_shipped_package():
    """pytest collects every shipped package with --doctest-modules, and each has an example."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    options = pyproject["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in options["addopts"].split()
    assert set(SHIPPED) <= set(options["testpaths"]), options["testpaths"]
    without = [
        package
        for package in SHIPPED
        if not any(">>> " in p.read_text(encoding="utf-8") for p in (ROOT / package).rglob("*.py"))
    ]
    assert not without, f"no doctest example in {without}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """On a small tree with one of each fault, every check reports it with file and import."""
    files = {
        "skbandit/__init__.py": "",
        "skbandit/a.py": "def f():\n    from skbandit import b\n",
        "skbandit/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import a\n",
        "skbandit/ope/__init__.py": "",
        "skbandit/ope/est.py": "import skbandit.c\n",
        "skbandit/c.py": "from skbandit.sim.world import World\nimport mlflow\n",
        "skbandit/sim/__init__.py": "",
        "skbandit/sim/world.py": "World = 1\n",
        "serve/__init__.py": "",
        "serve/cli.py": "import train.job\nfrom tests.support import server\n",
        "train/__init__.py": "",
        "train/job.py": "",
        "tests/support/__init__.py": "",
        "tests/support/server.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    imports = import_graph(tmp_path, ("skbandit", "serve", "train", "tests/support"))

    cycle = find_cycle(imports)
    assert [(i.source, i.target) for i in cycle] == [
        ("skbandit.a", "skbandit.b"),
        ("skbandit.b", "skbandit.a"),
    ]
    assert cycle[0].where() == "skbandit/a.py:2 `from skbandit import b`"
    assert layer_violations(imports) == [
        "serve/cli.py:1 `import train.job`: serve must not import train",
        "serve/cli.py:2 `from tests.support import server`: serve must not import tests",
    ]
    assert forbidden_imports(imports, SHIPPED, {"tests"}) == [
        "serve/cli.py:2 `from tests.support import server`"
    ]
    assert reaches(imports, "skbandit.ope", ("skbandit.sim",)) == [
        "skbandit/ope/est.py:1 `import skbandit.c` -> "
        "skbandit/c.py:1 `from skbandit.sim.world import World`"
    ]
    assert forbidden_imports(imports, {"skbandit"}, CORE_FORBIDDEN) == [
        "skbandit/c.py:2 `import mlflow`"
    ]
    assert find_cycle([i for i in imports if i.source != "skbandit.b"]) is None
