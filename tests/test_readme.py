"""The documentation stays true: the config reference in docs/config-reference.md matches
conf/, the test command the README shows is the one CI runs, and the relative links of the
README and docs/ point at files and headings that exist."""
import re
import sys

from tests.helpers import REPO


def test_config_reference_in_readme_matches_conf():
    sys.path.insert(0, str(REPO / "scripts"))
    import config_reference

    assert config_reference.docs_section() == config_reference.reference(), (
        "docs/config-reference.md is stale: run python scripts/config_reference.py --write")
    readme = (REPO / "README.md").read_text()
    assert "](docs/config-reference.md)" in readme, "the README no longer links the config reference"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up and test", 1)[1].split("##", 1)[0]
    commands = [l.strip() for l in setup.splitlines() if l.startswith("    ")]
    assert commands[0] == "pip install -r requirements.txt"
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 … for repeats."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6} (.*?)#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_readme_and_docs_links_resolve():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"`[^`\n]*`", "", page.read_text())  # links inside code spans are not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
