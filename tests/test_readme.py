"""The README stays true: its config reference matches conf/, and the test command it
shows is the one CI runs."""
import re
import sys

from tests.helpers import REPO


def test_config_reference_in_readme_matches_conf():
    sys.path.insert(0, str(REPO / "scripts"))
    import config_reference

    assert config_reference.readme_section() == config_reference.reference(), (
        "README config reference is stale: run python scripts/config_reference.py --write")


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up and test", 1)[1].split("##", 1)[0]
    commands = [l.strip() for l in setup.splitlines() if l.startswith("    ")]
    assert commands[0] == "pip install -r requirements.txt"
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_requirements_pin_the_cpu_torch_build():
    reqs = (REPO / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", reqs, re.M)
