#!/usr/bin/env python
"""Print the config reference (every group, its choices and their keys with defaults) as
markdown, from the files in conf/. The README embeds this output between the
`config-reference` markers; tests/test_readme.py fails when the two drift apart.

    python scripts/config_reference.py            # print
    python scripts/config_reference.py --write    # refresh the README section
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
README = REPO / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _describe(path: Path) -> tuple[str, dict]:
    text = path.read_text()
    comment = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") and "@package" not in s:
            comment = s.lstrip("# ").strip().rstrip(".,:;")
            break
        if s and not s.startswith("#"):
            break
    data = yaml.safe_load(text) or {}
    if "@package _global_" in text:
        group = path.parent.name
        body = data.get(group, {}) if group in data else {}
        overrides = [d for d in data.get("defaults", []) if isinstance(d, dict)]
        others = [k for k in data if k not in ("defaults", group)]
        if overrides:
            body = {"(defaults)": ", ".join(f"{list(d)[0].split()[-1].lstrip('/')}={list(d.values())[0]}"
                                            for d in overrides), **body}
        if others:
            body["(also sets)"] = ", ".join(others)
        data = body
    return comment, data


def _fmt(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if v is None:
        return "null"
    return str(v) if not isinstance(v, bool) else str(v).lower()


def reference() -> str:
    lines = ["Top level: `seed` (0), `run_name` (task/model/data); every key below is set as "
             "`group.key=value` on the command line, a choice as `group=choice`.", ""]
    for group in sorted(p for p in CONF.iterdir() if p.is_dir()):
        files = sorted(group.glob("*.yaml"))
        if not files:
            continue
        lines.append(f"**{group.name}** — choices: " + ", ".join(f"`{f.stem}`" for f in files))
        lines.append("")
        for f in files:
            comment, data = _describe(f)
            keys = "; ".join(f"`{k}`={_fmt(v)}" for k, v in data.items()) if isinstance(data, dict) else ""
            head = f"- `{group.name}={f.stem}`" + (f" — {comment}" if comment else "")
            lines.append(head + (f": {keys}" if keys else ""))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def readme_section() -> str | None:
    text = README.read_text()
    m = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    return m.group(1) if m else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="replace the README section")
    args = p.parse_args()
    ref = reference()
    if not args.write:
        print(ref, end="")
        return
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} … {END}")
    text = re.sub(re.escape(START) + r"\n.*?" + re.escape(END), lambda _: f"{START}\n{ref}{END}", text, flags=re.S)
    README.write_text(text)


if __name__ == "__main__":
    main()
