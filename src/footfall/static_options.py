"""Read a tool's `footfall.init` options from its source, without running it.

`footfall disclose` and `footfall app schema --from` take `FILE.py:NAME` or
`MODULE:NAME`, where NAME is assigned at module level either the dict of options or
the client itself, as the README writes it:

    analytics = footfall.init(app="mytool", endpoint="https://footfall.example.org", ...)

Importing the module would run the tool: its module-level code, its own `init` (a notice,
an install id) and whatever else it does at import. So the source is parsed with `ast` and
only literals are evaluated: strings, numbers, True/False/None, lists, tuples, dicts
(with `**` and `*`), names bound at module level to such values, and calls of Footfall's
own schema types (`footfall.Schema`, `footfall.Enum`, ...). Nothing else runs. An option
the page needs that is not a literal (`endpoint=os.environ["URL"]`) is a clear error;
options the page does not use (`app_version=__version__`, `before_send=...`) may be anything.
"""

from __future__ import annotations

import ast
import importlib.machinery
from typing import Any

from footfall import schema as schema_types

# The options ANALYTICS.md and the collector's schema are written from; the rest are skipped.
NEEDED = frozenset(
    {
        "app",
        "endpoint",
        "schema",
        "notice",
        "consent",
        "identity",
        "ci",
        "opt_out_env",
        "enable_env",
        "analytics_command",
        "link",
    }
)
POSITIONAL = ("app", "endpoint", "app_version")  # footfall.init's positional parameters
SCHEMA_TYPES: dict[str, Any] = {
    name: getattr(schema_types, name)
    for name in ("Schema", "Enum", "Bool", "Integer", "Version", "CommandPath", "OptionNames", "Identifier")
}
MAX_DEPTH = 50  # names that refer to names: a cycle (A = B; B = A) ends here


class NotLiteral(ValueError):
    """A value that cannot be read without running the module."""


def module_file(module: str) -> str:
    """The source file of `package.module`, found without importing anything (a package's
    `__init__` would run otherwise)."""
    search: list[str] | None = None
    spec = None
    for part in module.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            raise ValueError(f"cannot find the module {module!r}")
        search = list(spec.submodule_search_locations or [])
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"{module!r} has no Python source to read")
    return spec.origin


def read_options(path: str, name: str) -> dict[str, Any]:
    """The init options that `name`, in the Python file at `path`, holds or is made from."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    reader = _Reader(path, tree)
    node = reader.bindings.get(name)
    if node is None:
        raise ValueError(f"{path} assigns nothing to {name!r} at module level")
    options = reader.options(node, 0)
    if "app" not in options:
        raise ValueError(f"{name} in {path} must be the dict of footfall.init options, or footfall.init(...)")
    return options


class _Reader:
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.bindings: dict[str, ast.expr] = {}  # module-level names: the last assignment wins
        self.footfall_names: set[str] = set()  # names imported from footfall: `from footfall import Enum`
        self.footfall_modules = {"footfall"}  # `import footfall as ff`
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        self.bindings[target.id] = statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                if isinstance(statement.target, ast.Name):
                    self.bindings[statement.target.id] = statement.value
            elif isinstance(statement, ast.ImportFrom) and statement.module in ("footfall", "footfall.schema"):
                self.footfall_names |= {alias.asname or alias.name for alias in statement.names}
            elif isinstance(statement, ast.Import):
                self.footfall_modules |= {
                    alias.asname or alias.name for alias in statement.names if alias.name == "footfall"
                }

    def _refuse(self, node: ast.AST, what: str) -> NotLiteral:
        line = getattr(node, "lineno", "?")
        return NotLiteral(
            f"{self.path}:{line}: {what} is not a literal. footfall disclose reads the options"
            " without running the module: write it as a literal, or pass --import to run the module"
        )

    def options(self, node: ast.expr, depth: int) -> dict[str, Any]:
        """The options a dict or an init call holds; an unneeded option that is not a literal is skipped."""
        if depth > MAX_DEPTH:
            raise self._refuse(node, "a name that refers to itself")
        if isinstance(node, ast.Name) and node.id in self.bindings:
            return self.options(self.bindings[node.id], depth + 1)
        pairs: list[tuple[str | None, ast.expr]] = []
        if isinstance(node, ast.Dict):
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                if key_node is None:
                    pairs.append((None, value_node))
                elif isinstance(key_node, ast.Constant) and isinstance(key_node.value, str):
                    pairs.append((key_node.value, value_node))
                else:
                    raise self._refuse(key_node, "an option name")
        elif isinstance(node, ast.Call) and self._is_init(node.func):
            for position, argument in enumerate(node.args[: len(POSITIONAL)]):
                if isinstance(argument, ast.Starred):
                    raise self._refuse(argument, "a *argument of footfall.init")
                pairs.append((POSITIONAL[position], argument))
            pairs += [(keyword.arg, keyword.value) for keyword in node.keywords]
        else:
            raise self._refuse(node, "the value (it must be a dict of options or a footfall.init(...) call)")
        options: dict[str, Any] = {}
        for key, value in pairs:
            if key is None:  # `**OTHER`
                options.update(self.options(value, depth + 1))
                continue
            try:
                options[key] = self.value(value, depth + 1)
            except NotLiteral:
                if key in NEEDED:
                    raise
        return options

    def _is_init(self, function: ast.expr) -> bool:
        if isinstance(function, ast.Name):
            return function.id == "init" and "init" in self.footfall_names
        return (
            isinstance(function, ast.Attribute)
            and function.attr == "init"
            and isinstance(function.value, ast.Name)
            and function.value.id in self.footfall_modules
        )

    def _schema_type(self, function: ast.expr) -> Any:
        if isinstance(function, ast.Name) and function.id in self.footfall_names:
            return SCHEMA_TYPES.get(function.id)
        if (
            isinstance(function, ast.Attribute)
            and isinstance(function.value, ast.Name)
            and function.value.id in self.footfall_modules
        ):
            return SCHEMA_TYPES.get(function.attr)
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Attribute):
            inner = function.value  # footfall.schema.Enum
            if isinstance(inner.value, ast.Name) and inner.value.id in self.footfall_modules and inner.attr == "schema":
                return SCHEMA_TYPES.get(function.attr)
        return None

    def value(self, node: ast.expr, depth: int) -> Any:
        """A literal's value; NotLiteral for anything that would need running."""
        if depth > MAX_DEPTH:
            raise self._refuse(node, "a name that refers to itself")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            operand = node.operand.value
            if isinstance(operand, (int, float)) and not isinstance(operand, bool):
                return -operand
        if isinstance(node, ast.Name) and node.id in self.bindings:
            return self.value(self.bindings[node.id], depth + 1)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = self._items(node.elts, depth)
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            result: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    merged = self.value(value, depth + 1)
                    if not isinstance(merged, dict):
                        raise self._refuse(value, "a **value")
                    result.update(merged)
                else:
                    result[self.value(key, depth + 1)] = self.value(value, depth + 1)
            return result
        if isinstance(node, ast.Call):
            kind = self._schema_type(node.func)
            if kind is not None:
                arguments = self._items(node.args, depth)
                keywords = {}
                for keyword in node.keywords:
                    if keyword.arg is None:
                        raise self._refuse(keyword.value, f"a **argument of {kind.__name__}")
                    keywords[keyword.arg] = self.value(keyword.value, depth + 1)
                try:
                    return kind(*arguments, **keywords)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{self.path}:{node.lineno}: {kind.__name__}(...): {exc}") from None
        raise self._refuse(node, f"`{ast.unparse(node)[:80]}`")

    def _items(self, nodes: list[ast.expr], depth: int) -> list[Any]:
        items: list[Any] = []
        for item in nodes:
            if isinstance(item, ast.Starred):
                spread = self.value(item.value, depth + 1)
                if not isinstance(spread, (list, tuple)):
                    raise self._refuse(item, "a *value")
                items.extend(spread)
            else:
                items.append(self.value(item, depth + 1))
        return items


def source_path(location: str) -> str:
    """`path/to/file.py` as it is, `package.module` found on the path."""
    return location if location.endswith(".py") else module_file(location)


__all__ = ["NotLiteral", "module_file", "read_options", "source_path"]
