"""The config file (YAML): its schema and a loader whose errors name the file, field and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import ConfigError

Location = tuple[str | int, ...]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApprovalsConfig(_Section):
    """Where approval cards go and who may decide."""

    channel: str = Field(
        pattern=r"^[CG][A-Z0-9]{2,}$",
        description="channel id (C… or G…) for cards; its members may decide",
    )
    allow_self_approval: bool = False


class FunctionToolConfig(_Section):
    """A local Python function the model may call."""

    ref: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")
    requires_confirmation: bool = False


class ToolsConfig(_Section):
    functions: list[FunctionToolConfig] = Field(default_factory=list)


class BotConfig(_Section):
    """The whole config file."""

    model: str = Field(min_length=1)
    instructions: str | None = None
    approvals: ApprovalsConfig
    tools: ToolsConfig = Field(default_factory=ToolsConfig)


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "string_pattern_mismatch": "use the form described in bot.example.yml",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "string_type": "use a string",
    "list_type": "use a list",
    "model_type": "use a mapping of keys to values",
    "dict_type": "use a mapping of keys to values",
}

_HINTS = {
    ("approvals", "channel"): "a channel id such as C0123456789 (channel details → About)",
    ("tools", "functions", "*", "ref"): "module:function, e.g. mycompany.tools:get_weather",
}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every value, by its path in the document."""


def _compose(node: yaml.Node, path: Location, lines: dict[Location, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _compose(key_node, (*path, "<key>"), lines)
            mapping[key] = _compose(value_node, (*path, str(key)), lines)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_compose(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _LineLoader("").construct_object(node)


def read_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """Parse ``path``; return the document and a map from value path to line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(
            str(path),
            [
                "the file does not exist: copy bot.example.yml there "
                "(or point BOT_CONFIG at your config file)"
            ],
        ) from error
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error}"]) from error
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [f"{where}invalid YAML: {problem}"]) from error
    lines: dict[Location, int] = {}
    document = _compose(node, (), lines) if node is not None else None
    return document, lines


def line_of(lines: dict[Location, int], loc: Location) -> int | None:
    """The line of ``loc`` or, for a missing field, of its closest parent."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(str(p) if isinstance(p, str) else p for p in loc[:end]))
        if line is not None:
            return line
    return None


def describe(path: Path, lines: dict[Location, int], loc: Location, message: str) -> str:
    """One problem, as `field (line N): message`."""
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = line_of(lines, loc)
    where = f" (line {line})" if line else ""
    return f"{field}{where}: {message}"


def _hint(loc: Location) -> str | None:
    pattern = tuple("*" if isinstance(p, int) else p for p in loc)
    return _HINTS.get(pattern)


def _problems(path: Path, lines: dict[Location, int], error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        loc: Location = tuple(detail["loc"])
        fix = _FIXES.get(detail["type"], "see bot.example.yml")
        hint = _hint(loc)
        message = f"{detail['msg']}; fix: {fix}" + (f" ({hint})" if hint else "")
        problems.append(describe(path, lines, loc, message))
    return problems


def load_config(path: Path) -> BotConfig:
    """Read and validate the config file; raise ConfigError with every problem found."""
    document, lines = read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError(str(path), ["the file must be a YAML mapping; see bot.example.yml"])
    try:
        return BotConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(str(path), _problems(path, lines, error)) from error
