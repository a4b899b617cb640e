"""Limits on a config's YAML: file size, alias count and alias expansion (no alias bombs, no cycles)."""
from __future__ import annotations

import yaml

from backworks.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 500
# Values that aliases add beyond those written in the file. PyYAML shares an aliased node, but every
# later step (line map, ${VAR} substitution, validation) walks the expanded tree: 386 bytes of nested
# aliases once took 4 s and 430 MB there.
MAX_ALIAS_EXPANSION = 100_000

SIZE_HINT = "keep large mock bodies in files (mock.file) instead of inline"
ALIAS_HINT = "write the repeated blocks out, or nest aliases less"


def check_size(size: int, filename: str) -> None:
    """Refuse a config file over MAX_CONFIG_BYTES before it is parsed."""
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([f"{filename}:1: the config file is {size} bytes; the limit is {MAX_CONFIG_BYTES} "
                           f"bytes ({SIZE_HINT})"])


class LimitedLoader(yaml.SafeLoader):
    """A safe loader that counts aliases and refuses more than MAX_ALIASES."""

    def __init__(self, stream, filename: str = "<config>"):
        super().__init__(stream)
        self.filename = filename
        self.aliases = 0

    def compose_node(self, parent, index):
        """Compose one node, counting the aliases met on the way."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError([f"{self.filename}:{mark.line + 1}: more than {MAX_ALIASES} YAML aliases "
                                   f"(*name); the limit keeps alias bombs out ({ALIAS_HINT})"])
        return super().compose_node(parent, index)


def check_expansion(root: yaml.Node, filename: str) -> None:
    """Refuse aliases that refer to their own anchor, or that expand to too many values."""
    sizes: dict = {}  # id(node) -> expanded count of values under it, itself included
    refs: dict = {}  # id(node) -> how many times it is a child (more than once: an aliased block)
    done: list = []  # nodes in post-order
    stack = [(root, False)]
    open_nodes: set = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            done.append(node)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError([f"{filename}:{node.start_mark.line + 1}: a YAML alias refers to a block that "
                               f"contains it (a recursive structure); the config must be a tree"])
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            refs[id(child)] = refs.get(id(child), 0) + 1
            if id(child) not in sizes:
                stack.append((child, False))
    extra = sizes[id(root)] - len(done)
    if extra > MAX_ALIAS_EXPANSION:
        # point at the first block whose repetitions alone pass the limit
        line = next((n.start_mark.line + 1 for n in done
                     if (refs.get(id(n), 1) - 1) * sizes[id(n)] > MAX_ALIAS_EXPANSION), 1)
        raise ConfigError([f"{filename}:{line}: YAML aliases expand the config by {extra} values; the limit "
                           f"is {MAX_ALIAS_EXPANSION} (an alias bomb?) ({ALIAS_HINT})"])


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
