"""The MyST markup of the chapters, read and rewritten line by line for their lab edition
(:mod:`mfbook.lab`): where the code is, the roles outside it, headings, gated directives and the
bibliography's author-year text.

Nothing here knows the book: :func:`rewrite_roles` asks a callback what each role becomes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

#: A fence line: ``` or ~~~ (code, or a directive when the info is ``{name}``) or ::: (directive)
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*(.*?)[ \t]*$")
FENCE_LINE = re.compile(r"(^[ \t]*(?:`{3,}|~{3,}|:{3,}).*$)", flags=re.M)
#: A code span, or a role: ``{name}`` followed by a code span, its content (CommonMark: a run of
#: backticks up to the next run of the same length; a run without one is not a code span)
INLINE = re.compile(
    r"(?:\{(?P<name>[A-Za-z][\w:.+-]*)\})?(?<!`)(?P<ticks>`+)(?!`)(?P<content>.*?[^`])"
    r"(?P=ticks)(?!`)",
    flags=re.S,
)
#: Directives whose body is code or LaTeX, never prose: left as they are, like a code block
CODE_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "literalinclude", "math", "raw"}
HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
#: The first line of a gated directive: ```{solution-start} label (or -end, or exercise-)
GATE = re.compile(r"^[ \t]*(`{3,}|:{3,})\{(solution|exercise)-(start|end)\}[ \t]*(.*?)[ \t]*$")
OPTION = re.compile(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$")


def prose_and_code(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into runs of whole lines, each with True where it is code: a fenced block
    that is not a directive, or is one of :data:`CODE_DIRECTIVES` (its fences included).
    Directives nest; a code block ends only at a fence like the one that opened it."""
    runs: list[list] = []
    stack: list[tuple[str, bool]] = []  # the open fences: (fence, is code)
    for line in text.splitlines(keepends=True):
        code = bool(stack) and stack[-1][1]
        if fence := FENCE.match(line):
            run, info = fence.groups()
            top = stack[-1][0] if stack else ""
            if top and run[0] == top[0] and len(run) >= len(top) and not info:
                stack.pop()
            elif not code:
                name = re.match(r"\{([^}]*)\}", info)
                stack.append((run, name is None or name[1] in CODE_DIRECTIVES))
                code = stack[-1][1]
        if runs and runs[-1][1] == code:
            runs[-1][0] += line
        else:
            runs.append([line, code])
    return [(run, code) for run, code in runs]


def rewrite_roles(text: str, replace: Callable[[str, str], str | None]) -> str:
    """``text`` with every role outside code replaced by ``replace(name, content)``; a role for
    which it returns None stays as it is. A role's content may run over a line break."""

    def one(match: re.Match) -> str:
        new = None if match["name"] is None else replace(match["name"], match["content"])
        return match[0] if new is None else new

    return "".join(INLINE.sub(one, piece) if prose else piece for piece, prose in _inline(text))


def roles(text: str) -> list[tuple[str, str]]:
    """(name, content) of every role of ``text`` outside code, in order."""
    return [
        (match["name"], match["content"])
        for piece, prose in _inline(text)
        if prose
        for match in INLINE.finditer(piece)
        if match["name"]
    ]


def _inline(text: str):
    """``text`` in pieces, each with True where inline markup may be: outside code, and not the
    backticks (or colons) of a fence line, which are no code span."""
    for run, code in prose_and_code(text):
        for i, piece in enumerate([run] if code else FENCE_LINE.split(run)):
            if i % 2:
                fence = FENCE.match(piece).end(1)
                yield from ((piece[:fence], False), (piece[fence:], True))
            else:
                yield piece, not code


def heading_levels(text: str) -> list[int]:
    """The levels of the ATX headings (``## Title``) of ``text`` outside code, in order."""
    return [
        len(match[1])
        for run, code in prose_and_code(text)
        if not code
        for match in map(HEADING.match, run.splitlines())
        if match
    ]


def first_heading(text: str) -> str | None:
    """The text of the first heading of ``text`` outside code (None if there is none)."""
    for run, code in prose_and_code(text):
        for line in [] if code else run.splitlines():
            if (match := HEADING.match(line)) and match[2]:
                return match[2]
    return None


def split_target(content: str) -> tuple[str, str]:
    """A reference's ``text <target>`` as (text, target); a bare ``target`` gives ("", target)."""
    match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", content, flags=re.S)
    if match:
        return " ".join(match[1].split()), match[2].strip()
    return "", content.strip()


def directive_options(lines: list[str]) -> tuple[dict[str, str], int]:
    """The ``:name: value`` options at the start of ``lines`` (a directive's, after its first
    line), and how many lines they take."""
    options, count = {}, 0
    while count < len(lines) and (option := OPTION.match(lines[count])):
        options[option[1]] = option[2]
        count += 1
    return options, count


def gates(text: str) -> list[tuple[int, int, str, str, str, dict[str, str]]]:
    """The gated directives of ``text`` (outside code): (first line, line after the block, kind,
    "start" or "end", argument, options) for each, lines counted from 0. A block runs from its
    ```{solution-start} line to the next fence like the opening one."""
    found, lineno = [], 0
    for run, code in prose_and_code(text):
        lines = run.splitlines()
        i = 0
        while not code and i < len(lines):
            if match := GATE.match(lines[i]):
                fence, kind, end, argument = match.groups()
                options, count = directive_options(lines[i + 1 :])
                j = i + 1 + count
                while j < len(lines) and lines[j].strip() != fence:
                    j += 1
                found.append((lineno + i, lineno + j + 1, kind, end, argument, options))
                i = j
            i += 1
        lineno += len(lines)
    return found


def read_bibliography(path: Path) -> dict[str, tuple[str, str]]:
    """key -> (authors, year) of every entry of a .bib file: "Li and Huang", "Kingma et al."."""
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    entries = {}
    for key, entry in parse_file(str(path), bib_format="bibtex").entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [
            Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text")
            for p in people
        ]
        authors = f"{names[0]} et al." if len(names) > 2 else " and ".join(names) or key
        entries[key] = (authors, entry.fields.get("year", "n.d."))
    return entries


def citation(variant: str, keys: list[str], bibliography: dict[str, tuple[str, str]]) -> str:
    """A ``{cite:variant}`` of ``keys`` as sphinxcontrib-bibtex's author_year style writes it:
    [Li and Huang, 2020] (``cite``, ``cite:p``), Li and Huang [2020] (``cite:t``), or only the
    year or the authors; a key missing from the bibliography is named as such."""
    found = [bibliography.get(key, (f"{key} (not in the bibliography)", "?")) for key in keys]
    if variant.startswith(("t", "ct")):
        return "; ".join(f"{authors} [{year}]" for authors, year in found)
    if variant == "year":
        return "; ".join(year for _, year in found)
    if variant.startswith("author"):
        return "; ".join(authors for authors, _ in found)
    return "[" + "; ".join(f"{authors}, {year}" for authors, year in found) + "]"
