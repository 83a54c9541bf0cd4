"""The package's layers (docs/architecture.md): which folder may import which, and no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lediflow"
# a layer may import itself and the layers listed for it, nothing above
ALLOWED = {
    "core": {"core"},
    "method": {"core", "method"},
    "analysis": {"core", "method", "analysis"},
    "pipeline": {"core", "method", "analysis", "pipeline"},
    "studies": {"core", "method", "analysis", "pipeline", "studies"},
    "cli": {"core", "method", "analysis", "pipeline", "studies", "cli"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every lediflow module `path` imports, at the top or inside a function."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lediflow")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("lediflow"):
                continue
            for alias in node.names:  # `from lediflow.x import y` imports lediflow.x.y when y is a module
                sub = f"{base}.{alias.name}"
                found.add(sub if _exists(sub) else base)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "root"


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_lives_in_a_layer():
    stray = sorted(m for m in _graph() if _layer(m) == "root" and m not in {"lediflow", "lediflow.__main__"})
    assert not stray, f"modules outside the layer folders: {stray}"


def test_no_layer_imports_a_layer_above_it():
    wrong = [f"{m} -> {d}" for m, deps in _graph().items() for d in deps
             if _layer(m) in ALLOWED and _layer(d) in ALLOWED and _layer(d) not in ALLOWED[_layer(m)]]
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle():
    graph = {m: {d for d in deps if d != m and not m.startswith(d + ".")} for m, deps in _graph().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(dep):] + [dep]) if dep in trail
                            else f"import cycle through {dep}")
            if dep not in state:
                visit(dep, trail + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_method_imports_without_the_pipeline_tools():
    """lediflow.method is a library: importable with snakemake, dvc, pandas and jsonschema absent."""
    script = (
        "import sys\n"
        "for name in ('snakemake', 'dvc', 'pandas', 'jsonschema'):\n"
        "    sys.modules[name] = None  # import raises ImportError, find_spec answers 'not installed'\n"
        "import importlib, pkgutil, lediflow.method as m\n"
        "for info in pkgutil.walk_packages(m.__path__, 'lediflow.method.'):\n"
        "    importlib.import_module(info.name)\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('lediflow.') and n.split('.')[1] not in {'method', 'core'})\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("snakefile", ["Snakefile", "workflow/ablations.smk", "workflow/autoencoder_budget.smk",
                                       "workflow/methods.smk", "workflow/scaling.smk", "workflow/seeds.smk"])
def test_every_workflow_lints_clean(snakefile: str):
    """`snakemake --lint`: a software environment, a log and no '+'-joined paths for every rule; and an image to
    build the conda environment in (`--software-deployment-method conda apptainer`)."""
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", snakefile, "--lint"], cwd=PACKAGE.parent,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Lints for" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    images = [line for line in (PACKAGE.parent / snakefile).read_text().splitlines() if line.startswith("container:")]
    assert images == ['container: "docker://continuumio/miniconda3:24.7.1-0"'], images  # one pinned image


@pytest.mark.parametrize("snakefile", ["Snakefile", "workflow/scaling.smk", "workflow/ablations.smk"])
def test_unlock_after_a_hard_kill_needs_no_cores(snakefile: str, tmp_path):
    """The docs' recovery after kill -9 is `snakemake --unlock` as written: no rule may need --cores at parse time."""
    import shutil

    for name in ("Snakefile", "params.yaml"):
        shutil.copy(PACKAGE.parent / name, tmp_path / name)
    for name in ("workflow", "configs"):
        shutil.copytree(PACKAGE.parent / name, tmp_path / name)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("")  # what a killed run leaves
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", snakefile, "--unlock"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Unlocked working directory" in done.stdout + done.stderr, \
        (done.stdout + done.stderr)[-2000:]
    assert not locks.exists() or not any(locks.iterdir())


def test_the_cli_and_the_path_table_do_not_import_torch():
    """Argument checks, --help and the Snakefile's parse must not pay for torch (seconds per process, and the
    pipeline starts one process per job): torch is imported only by the command that computes."""
    script = ("import sys, lediflow.cli, lediflow.pipeline.paths, lediflow.pipeline.config\n"
              "heavy = sorted(m for m in ('torch', 'torchvision', 'diffusers', 'timm') if m in sys.modules)\n"
              "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


def test_the_sample_stage_imports_no_autoencoder_or_model_zoo():
    """One process per sampling job: a pixel cell must not pay seconds for diffusers (the latent decoder) or
    torchvision (a model zoo); the latent path imports them where it decodes."""
    script = ("import sys, lediflow.pipeline.stages.sample\n"
              "print(sorted(m for m in ('torchvision', 'diffusers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]
