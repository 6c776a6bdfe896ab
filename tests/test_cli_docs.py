"""docs/cli.md against the parser: every subcommand, and each one's options, exactly.

A subcommand's usage block (the ``text`` blocks of its ``##`` section that start with
``trainways COMMAND``) names each of its options, either as a flag or as a whole ``--help`` group
(``[data, model, training, speed options]``, ``[device and distribution options]``), and its
positional arguments by their metavar; it names no flag the subcommand lacks.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from trainways.parser import build_parser

CLI_MD = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
FLAG = re.compile(r"--[a-z][a-z0-9-]*")
# "[data, model, training options]", "[device and distribution options]"
GROUPS = re.compile(r"\[([a-z]+(?:(?:, | and )[a-z]+)*) options\]")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``"data info"`` → its parser, for every leaf subcommand."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves = _subcommands(sub)
                found.update({f"{name} {k}": v for k, v in leaves.items()} or {name: sub})
    return found


COMMANDS = _subcommands(build_parser())


def _flags(actions: list[argparse.Action]) -> set[str]:
    return {o for a in actions for o in a.option_strings if o.startswith("--") and o != "--help"}


def _text_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```text\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def _section(command: str) -> str:
    parts = re.split(r"^## ", CLI_MD.read_text(encoding="utf-8"), flags=re.MULTILINE)
    sections = {part.partition("\n")[0].strip(): part for part in parts[1:]}
    assert command in sections, f"docs/cli.md has no '## {command}' section"
    return sections[command]


def _usage(command: str) -> str:
    blocks = [b for b in _text_blocks(_section(command)) if b.startswith(f"trainways {command}")]
    assert blocks, f"docs/cli.md's '## {command}' section has no usage block"
    return "\n".join(blocks)


def test_the_command_list_names_every_subcommand():
    first = _text_blocks(CLI_MD.read_text(encoding="utf-8"))[0]
    listed = {
        " ".join(line.split()[1:3]) if line.split()[1:2] == ["data"] else line.split()[1]
        for line in first.splitlines()
        if line.startswith("trainways ")
    }
    assert listed == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_usage_block_names_exactly_the_parsers_options(command):
    parser = COMMANDS[command]
    usage = _usage(command)
    # "speed (each acts on ...)" is "speed"; "devices" also "device", as a sentence says it.
    groups = {g.title.split()[0]: _flags(g._group_actions) for g in parser._action_groups}
    groups |= {name.removesuffix("s"): flags for name, flags in groups.items()}
    named = set(FLAG.findall(usage))
    for match in GROUPS.finditer(usage):
        for name in re.split(r", | and ", match.group(1)):
            assert name in groups, f"{command}: no option group {name!r} ({sorted(groups)})"
            named |= groups[name]
    expected = _flags(parser._actions)
    assert not expected - named, f"docs/cli.md's {command} lacks {sorted(expected - named)}"
    assert not named - expected, f"docs/cli.md's {command} names {sorted(named - expected)}"
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert re.search(rf"\b{action.metavar}\b", usage), f"{command}: {action.metavar}"
