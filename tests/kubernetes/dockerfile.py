"""A small reader of the top-level Dockerfile: its instructions by stage, continuation lines
joined, comments dropped. Enough for the tests to check the rules we care about and to run the
Dockerfile's own install commands; not a general Dockerfile parser."""

from __future__ import annotations

import os

import attrs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")


@attrs.frozen
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY ...
    args: str  # the rest, continuation lines joined with single spaces


@attrs.frozen
class Stage:
    base: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    joined: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        joined.append(Instruction(keyword.upper(), args.strip()))
    return joined


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults (before the first FROM) and the stages in order."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    current: list[Instruction] | None = None
    base = name = ""
    for ins in instructions(text):
        if ins.keyword == "FROM":
            if current is not None:
                found.append(Stage(base, name, tuple(current)))
            parts = ins.args.split()
            base = parts[0]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            current = []
        elif current is None:
            if ins.keyword == "ARG":
                key, _, value = ins.args.partition("=")
                args[key] = value
        else:
            current.append(ins)
    if current is not None:
        found.append(Stage(base, name, tuple(current)))
    return args, found


def read() -> tuple[dict[str, str], list[Stage]]:
    with open(DOCKERFILE) as f:
        return stages(f.read())
