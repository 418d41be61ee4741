"""The layout's rules hold: arrows point down only (exp -> models -> layers; exp ->
data_provider; anything -> utils), utils import no model, layers import no model, data
families never read the task, and the loop calls model hooks directly instead of probing."""
import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import REPO

PACKAGES = ("exp", "models", "layers", "data_provider", "utils")
# package -> project packages it must not import
FORBIDDEN = {
    "layers": {"exp", "models", "data_provider"},
    "models": {"exp", "data_provider"},
    "data_provider": {"exp", "models", "layers"},
    "utils": {"exp", "models", "layers", "data_provider"},
}


def project_imports(path: Path) -> set[tuple[str, int]]:
    """(top-level project package, line) of every import in a module, lazy ones included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in PACKAGES}
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down_only(package):
    wrong = [f"{f.relative_to(REPO)}:{line} imports {target}"
             for f in sorted((REPO / package).rglob("*.py"))
             for target, line in project_imports(f) if target in FORBIDDEN[package]]
    assert not wrong, "\n".join(wrong)


def test_data_families_never_read_the_task():
    # pretraining.py is task=pretrain's own shaping of a family's splits
    for f in sorted(set((REPO / "data_provider").glob("*.py")) - {REPO / "data_provider" / "pretraining.py"}):
        tree = ast.parse(f.read_text())
        reads = [n.lineno for n in ast.walk(tree)
                 if (isinstance(n, ast.Attribute) and n.attr == "task")
                 or (isinstance(n, ast.Constant) and isinstance(n.value, str)
                     and n.value.startswith("task."))]
        assert not reads, f"{f.relative_to(REPO)} reads the task at lines {reads}"


def test_the_loop_calls_model_hooks_directly():
    """No getattr probes of the model in the experiments: hooks are one interface
    (models/base.py, models/ssl/base.py)."""
    for f in sorted((REPO / "exp").glob("*.py")):
        probes = [n.lineno for n in ast.walk(ast.parse(f.read_text()))
                  if isinstance(n, ast.Call) and getattr(n.func, "id", None) in ("getattr", "hasattr")
                  and n.args and "model" in ast.unparse(n.args[0])]
        assert not probes, f"{f.relative_to(REPO)} probes the model at lines {probes}"


def test_one_module_per_loss_and_per_representation_method():
    losses = {p.stem for p in (REPO / "utils" / "losses").glob("*.py")} - {"__init__"}
    assert {"supervised", "forecast", "ts2vec", "timesurl", "simclr", "moco", "byol", "simsiam",
            "dino", "instdisc", "hybrid", "cpc", "tfc", "comet", "mae", "wav2vec2", "bert", "gpt"} <= losses
    assert not list((REPO / "utils").glob("*loss*.py")), "a loss outside utils/losses/"
    from hydra.utils import get_class

    from models.ssl.base import RepresentationModel
    pretraining = [f for f in sorted((REPO / "conf" / "model").glob("*.yaml"))
                   if "override /task: pretrain" in f.read_text()]
    assert len(pretraining) == 16
    for cfg_file in pretraining:        # every representation method: models/ssl/, one base
        target = OmegaConf.load(cfg_file).model._target_
        assert target.startswith("models.ssl."), cfg_file.name
        assert issubclass(get_class(target), RepresentationModel), cfg_file.name
