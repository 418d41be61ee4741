"""Friendlier message for a mistyped config key on the command line.

Hydra already rejects unknown keys ("Key 'x' is not in struct") and lists the valid
choices of a config group; this adds the list of valid keys of the node the key was
meant for. Only single runs are checked (sweep values need Hydra's own parser).
"""
from __future__ import annotations

import re
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf import OmegaConf

from utils.compose import compose_cfg

def check_overrides(argv: list[str]) -> str | None:
    """Return an error message if an override names a key that does not exist, else None."""
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in argv):
        return None
    overrides = [a for a in argv if "=" in a and not a.startswith("hydra")]
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except (OverrideParseException, HydraException) as e:
            return (f"cannot parse the override {override!r}: {str(e).splitlines()[0]}. Quote "
                    "values with brackets, commas or spaces for the shell, e.g. "
                    "'data.ds1_records=[101,106]' (https://hydra.cc/docs/advanced/override_grammar/basic/)")
    try:
        compose_cfg(overrides)
        return None
    except ConfigCompositionException as e:
        text = str(e.__cause__ or e)
        m = re.search(r"full_key: ([\w.]+)", text) or re.search(r"override '([\w.]+)'", text)
        if not m or "not in struct" not in text:
            return None  # Hydra's own message (e.g. unknown group choice) is clear already
        full_key = m.group(1)
        parent, _, leaf = full_key.rpartition(".")
        try:
            # keep only the group choices, which decide what keys exist
            base = compose_cfg([o for o in overrides if "." not in o.split("=")[0]])
        except ConfigCompositionException:
            return None
        node = OmegaConf.select(base, parent) if parent else base
        valid = sorted(node.keys()) if node is not None and OmegaConf.is_dict(node) else []
        return (f"unknown config key '{full_key}'. Valid keys of '{parent or '<root>'}': "
                f"{', '.join(valid)}. To add a new key on purpose use +{full_key}=…")


def exit_on_bad_overrides(argv: list[str]) -> None:
    """A mistyped key or a malformed override: one short message, exit status 2."""
    msg = check_overrides(argv)
    if msg:
        print(f"Error: {msg}", file=sys.stderr)
        sys.exit(2)
