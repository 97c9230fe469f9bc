"""YAML files read as data with bounds: a hostile or broken file gets one line, never a hang or a traceback.

``yaml.safe_load`` runs no code, but a file of nested anchors (a "YAML bomb") expands to billions of
nodes in whoever walks the result (OmegaConf does), deep nesting overflows the recursive composer, and
a binary file or a directory fails with a decode/OS traceback. Limits are far above any real config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hyco.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: the largest shipped config is a few KiB
MAX_DEPTH = 64  # nesting levels (mappings and lists)
MAX_NODES = 100_000  # nodes after expanding every alias


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than ``MAX_DEPTH`` (before Python's recursion limit)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML's hook
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of nodes once every alias is expanded (memoised per node, so linear in the file)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a cycle (recursive anchor) counts as itself only
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        memo[key] = min(1 + sum(_expanded_size(c, memo) for c in children), MAX_NODES + 1)
    return memo[key]


def load_yaml_text(text: str, where: str) -> Any:
    """Parse ``text`` safely within the bounds; ``where`` names the source in the one-line error."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise ConfigError(f"{where}: expands to more than {MAX_NODES:,} nodes (nested anchors/aliases); "
                              "write the values out")
        return loader.construct_document(node)
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.constructor.ConstructorError as exc:  # e.g. !!python/object: data only, nothing runs
        mark = exc.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where}{at}: {exc.problem}; only plain YAML data is read (no language tags)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """Read and parse a YAML file: a directory, a missing, unreadable, binary or oversized file is one line."""
    path = Path(path)
    name = f"{what} {str(path)!r}"
    if path.is_dir():
        raise ConfigError(f"{name} is a directory; give a YAML file")
    if not path.exists():
        raise ConfigError(f"{name} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{name} is {size:,} bytes; the limit is {MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name} is not a UTF-8 text file (byte {exc.start}); give a YAML file") from None
    if "\x00" in text:
        raise ConfigError(f"{name} is not a text file (holds NUL bytes); give a YAML file")
    return load_yaml_text(text, name)
