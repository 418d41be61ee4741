#!/usr/bin/env python
"""Write the config reference (every group, its choices and their keys with defaults) as
markdown, from the files in conf/. docs/config-reference.md holds this output between the
`config-reference` markers; tests/test_readme.py fails when the two drift apart.

    python scripts/config_reference.py            # print
    python scripts/config_reference.py --write    # refresh docs/config-reference.md
"""
from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
DOC = REPO / "docs" / "config-reference.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
WIDTH = 110  # wrap prose and list items at this width

PAGE_HEAD = """# Config reference

Every config group in `conf/`, its choices, and the keys each choice sets with their defaults.
The text between the markers below is generated from the files in `conf/`:

    python scripts/config_reference.py --write    # refresh this page after changing conf/

`tests/test_readme.py` fails when this page and `conf/` disagree. How the groups combine, and
which value wins when a dataset and a model both set a key, is in
[architecture.md](architecture.md#which-config-value-wins).

"""

_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w.\-]*)\s*:(?=\s|$)(.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """'value   # note' -> ('value', 'note'); a '#' counts only after whitespace or at the start."""
    m = re.search(r"(?:^|\s)#\s?(.*)$", rest)
    if not m:
        return rest.strip(), ""
    return rest[: m.start()].strip(), m.group(1).strip()


def _scan(text: str) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """Per dotted key path: the value as written on its line, its inline comment, and whether
    it opens a block mapping (a key with nothing after the colon)."""
    raw, notes, blocks = {}, {}, set()
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "-")):
            continue
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        path = ".".join(k for _, k in stack)
        value, note = _split_comment(m.group(3))
        raw[path] = value
        if note:
            notes[path] = note
        if not value:
            blocks.add(path)
    return raw, notes, blocks


def _first_sentence(text: str) -> str:
    """The file's description: its first comment line (besides `@package`) before any key,
    continued over the next comment lines until the sentence ends."""
    lines, started, in_defaults = [], False, False
    for line in text.splitlines():
        s = line.strip()
        if not started:
            if not s or "@package" in s:
                continue
            if s.startswith("defaults:"):
                in_defaults = True
                continue
            if in_defaults and line.startswith((" ", "-")):
                continue
            if not line.startswith("#"):
                return ""
            started = True
        elif not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if lines and (not body or (body[0].isupper() and not re.search(r"[,(;:/]$|\b(and|or|the|of)$",
                                                                            lines[-1]))):
            break
        lines.append(body)
        if re.search(r"\.$", body):
            break
    sentence = " ".join(lines)
    m = re.search(r"\.\s+(?=[A-Z])", sentence)
    if m:
        sentence = sentence[: m.start() + 1]
    return sentence.rstrip(",;: ")


def _fmt(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        if (len(v) > 8 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                and all(b - a == 1 for a, b in zip(v, v[1:]))):
            return f"[{v[0]}, {v[1]}, …, {v[-1]}]"
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if v is None:
        return "null"
    return str(v) if not isinstance(v, bool) else str(v).lower()


def _value(path: str, v, raw: dict[str, str]) -> str:
    """The value as the file writes it when it is on one line, else formatted from YAML."""
    formatted, written = _fmt(v), raw.get(path, "")
    if isinstance(v, list) and "…" in formatted and len(written) > WIDTH // 2:
        return formatted  # a long run of consecutive integers, shortened
    return written or formatted


def _rows(data, prefix: str, raw, notes, blocks) -> list[tuple[str, str, str]]:
    rows = []
    for k, v in data.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and path in blocks:
            if path in notes:
                rows.append((path, "", notes[path]))
            rows.extend(_rows(v, path + ".", raw, notes, blocks))
        else:
            rows.append((path, _value(path, v, raw), notes.get(path, "")))
    return rows


def _item(key: str, value: str, note: str) -> list[str]:
    text = f"- `{key}`" + (f" = `{value}`" if value else "") + (f" — {note}" if note else "")
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


def _describe(group: str, path: Path) -> list[str]:
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    raw, notes, blocks = _scan(text)
    out = [f"### `{group}={path.stem}`", ""]
    description = _first_sentence(text)
    if description:
        out += textwrap.wrap(description, WIDTH, break_long_words=False, break_on_hyphens=False) + [""]
    defaults = data.pop("defaults", []) if isinstance(data, dict) else []
    extends = [d for d in defaults if isinstance(d, str) and d != "_self_"]
    selects = [f"{list(d)[0].split()[-1].lstrip('/')}={list(d.values())[0]}"
               for d in defaults if isinstance(d, dict)]
    if extends:
        out += ["Starts from " + ", ".join(f"`{group}={e}`" for e in extends) + "."]
    if selects:
        out += textwrap.wrap("Selects " + ", ".join(f"`{s}`" for s in selects) + ".", WIDTH,
                             break_long_words=False, break_on_hyphens=False)
    if extends or selects:
        out.append("")
    if "@package _global_" in text:
        own = _rows(data.get(group) or {}, f"{group}.", raw, notes, blocks)
        own = [(k[len(group) + 1:], v, n) for k, v, n in own]
        others = [r for g, body in data.items() if g != group and isinstance(body, dict)
                  for r in _rows(body, f"{g}.", raw, notes, blocks)]
        rows = own + others
    else:
        rows = _rows(data, "", raw, notes, blocks)
    if rows:
        for row in rows:
            out += _item(*row)
        out.append("")
    elif not description:
        out += ["No keys.", ""]
    return out


def reference() -> str:
    top = yaml.safe_load((CONF / "config.yaml").read_text())
    chosen = {list(d)[0]: list(d.values())[0] for d in top.get("defaults", []) if isinstance(d, dict)}
    _, top_notes, _ = _scan((CONF / "config.yaml").read_text())
    lines = ["A key is set on the command line as `group.key=value` (`trainer.max_epochs=50`), a choice "
             "as", "`group=choice` (`model=ts2vec`). Keys written `other.key` under a choice are keys of "
             "another", "group that this choice sets. Top-level keys:", ""]
    for k, v in top.items():
        if k not in ("defaults", "hydra"):
            lines += _item(k, _fmt(v), top_notes.get(k, ""))
    lines.append("")
    groups = [p for p in sorted(CONF.iterdir()) if p.is_dir() and any(p.glob("*.yaml"))]
    lines += textwrap.wrap("Groups: " + ", ".join(f"[{g.name}](#{g.name})" for g in groups) + ".", WIDTH,
                           break_long_words=False, break_on_hyphens=False) + [""]
    for group in groups:
        files = sorted(group.glob("*.yaml"))
        default = chosen.get(group.name)
        lines += [f"## {group.name}", ""]
        choices = "Choices: " + ", ".join(f"`{f.stem}`" for f in files)
        choices += f"; default: `{default}`." if default else "; none by default."
        lines += textwrap.wrap(choices, WIDTH, break_long_words=False, break_on_hyphens=False)
        lines.append("")
        for f in files:
            lines += _describe(group.name, f)
    return "\n".join(lines).rstrip() + "\n"


def docs_section() -> str | None:
    """The generated part of docs/config-reference.md, or None when the page or its markers are missing."""
    if not DOC.exists():
        return None
    m = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), DOC.read_text(), re.S)
    return m.group(1) if m else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"refresh {DOC.relative_to(REPO)}")
    args = p.parse_args()
    ref = reference()
    if not args.write:
        print(ref, end="")
        return
    text = DOC.read_text() if DOC.exists() else ""
    if START not in text or END not in text:
        text = PAGE_HEAD + f"{START}\n{END}\n"
    text = re.sub(re.escape(START) + r"\n.*?" + re.escape(END), lambda _: f"{START}\n{ref}{END}", text,
                  flags=re.S)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
