"""Every command in the documentation is exercised, so the docs cannot drift from the code.

Which text is checked: README.md and docs/*.md.

Conventions for writers (also in docs/operations.md, "Commands in these documents"):

* A fenced block tagged ``sh`` (or ``bash``/``shell``) holds commands one may paste. Every
  line that runs ``listning`` (or ``.venv/bin/listning``) — continuation lines ending in ``\\``
  joined, ``# comments`` dropped, ``NAME=value`` prefixes allowed, ``$NAME`` expanded — is
  parsed by the real parser (``listning.cli.build_parser``): the subcommand path must exist,
  every option must be accepted by that subcommand, required options and arguments must be
  there, values must have the right type, and options are written in full (no abbreviations).
* The ``listning`` commands of an ``sh`` block are also **run**, in order, in-process, in one
  temporary directory per document (a later block may use what an earlier one made), holding
  copies of the repository's ``interactions/``, ``schemas/`` and ``producers/regions/``. Each
  must exit 0, or N when the line ends with the comment ``# exit N``.
* The temporary directory also holds ``pilot-data/`` as an empty pilot would leave it for the
  report commands: ``regions/01/`` and ``regions/08/`` with databases at the newest schema.
* A block that must not be run carries a line ``# not run: <why>`` (servers, the pilot, runs
  against other machines, PostgreSQL). Its commands are still parsed. Commands that start a
  server or a long run (``... serve``, ``pilot``, ``conformance``, ``mock-producer``) are
  allowed only in such a block.
* Other lines of ``sh`` blocks: ``make TARGET`` must name a target of the Makefile;
  ``export NAME=VALUE`` sets NAME for the document's later commands; anything else (curl,
  pg_dump, sqlite3, systemctl ...) is not checked.
* Untagged fenced blocks are synopses (``[--optional]`` parts, placeholders): their
  ``listning`` lines must name an existing subcommand and only options it accepts.
* Inline code spans that start with ``listning `` are checked the same way as synopses.
* A ``mermaid`` sequence diagram has no ``;`` or ``#`` in its text (Mermaid ends a message or
  note there and the diagram does not render); write ``#59;`` for a semicolon.
* A ``toml`` block whose first line is ``# region configuration`` must load as a region file
  (``producers.config``); one whose first line is ``# conformance test data`` as the
  conformance suite's test data (``consumers.conformance.testdata``).
* ``docs/operations.md`` documents every option of the servers (``SERVERS`` below) and every
  key of a region's TOML file (``producers.config``): a new flag or key fails the test until
  it is described there.
* A fenced ``xml`` block holding a SOAP envelope must pass ``listning validate``'s checks
  (``interactions.validator``), unless it carries the comment ``<!-- not valid: <why> -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SH_TAGS = {"sh", "bash", "shell"}
NOT_RUN = re.compile(r"^\s*#\s*not run:\s*\S", re.MULTILINE)
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")
LISTNING = ("listning", ".venv/bin/listning", "./.venv/bin/listning")
# Subcommand paths that start servers or long runs: only in `# not run:` blocks.
NEVER_RUN_FIRST = {"pilot", "conformance", "mock-producer"}
NEVER_RUN_LAST = {"serve"}
COPIED = ("interactions", "schemas", "producers/regions")
PILOT_REGIONS = ("01", "08")


@dataclass
class Command:
    doc: Path
    line: int  # 1-based line in the document
    text: str  # the joined command line as written (comment removed)
    argv: list[str]  # after `listning`
    env: dict[str, str] = field(default_factory=dict)  # NAME=value prefixes
    expected_exit: int = 0

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}: {self.text}"


@dataclass
class Block:
    doc: Path
    line: int  # line of the opening fence
    tag: str
    lines: list[tuple[int, str]]  # (line number, text)

    @property
    def runnable(self) -> bool:
        return self.tag in SH_TAGS and not NOT_RUN.search("\n".join(t for _, t in self.lines))

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks_of(doc: Path) -> list[Block]:
    blocks: list[Block] = []
    current: Block | None = None
    fence = ""
    for no, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if current is None:
            m = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if m:
                fence = m.group(1)
                current = Block(doc, no, m.group(2).lower(), [])
        elif stripped.startswith(fence) and stripped.strip("`~") == "":
            blocks.append(current)
            current = None
        else:
            current.lines.append((no, line))
    return blocks


def logical_lines(block: Block) -> list[tuple[int, str, str]]:
    """(first line number, command text, trailing comment) with `\\` continuations joined."""
    out: list[tuple[int, str, str]] = []
    pending: tuple[int, str] | None = None
    for no, raw in block.lines:
        text = raw.rstrip()
        if pending is not None:
            start, acc = pending
            text = acc + " " + text.strip()
        else:
            start = no
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        code, comment = split_comment(text)
        if code.strip():
            out.append((start, code.strip(), comment))
    if pending is not None:
        out.append((pending[0], pending[1].strip(), ""))
    return out


def split_comment(text: str) -> tuple[str, str]:
    """Split off a shell comment (a `#` outside quotes at a word start)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i:]
    return text, ""


def as_command(doc: Path, no: int, code: str, comment: str,
               env: dict[str, str]) -> Command | None:
    """The `listning` command on this line, or None for any other program."""
    try:
        words = shlex.split(code)
    except ValueError as exc:
        where = f"{doc.relative_to(REPO)}:{no}"
        raise AssertionError(f"{where}: cannot split {code!r}: {exc}") from None
    prefix: dict[str, str] = {}
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        prefix[name] = value
    if not words or words[0] not in LISTNING:
        return None
    scope = {**os.environ, **env}  # as a shell: a NAME=value prefix is not seen by $NAME
    argv = [expand(w, scope) for w in words[1:]]
    m = EXIT.search(comment)
    return Command(doc, no, code, argv, prefix, int(m.group(1)) if m else 0)


def expand(word: str, scope: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                  lambda m: scope.get(m.group(1), m.group(0)), word)


def sh_commands(doc: Path) -> list[tuple[Block, Command | None, int, str]]:
    """Every logical line of the document's sh blocks: (block, command or None, line, code)."""
    env: dict[str, str] = {}
    out = []
    for block in blocks_of(doc):
        if block.tag not in SH_TAGS:
            continue
        for no, code, comment in logical_lines(block):
            m = re.match(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)$", code)
            if m:
                env[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
                out.append((block, None, no, code))
                continue
            out.append((block, as_command(doc, no, code, comment, env), no, code))
    return out


@cache
def parser() -> argparse.ArgumentParser:
    from listning.cli import build_parser

    return build_parser()


def subparsers_of(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def walk(argv: list[str]) -> tuple[list[str], argparse.ArgumentParser, list[str], str | None]:
    """(subcommand path, its parser, the remaining words, problem or None)."""
    p, path, rest = parser(), [], list(argv)
    while rest and rest[0] in ("-v", "--verbose"):
        rest.pop(0)
    while True:
        choices = subparsers_of(p)
        if not choices:
            return path, p, rest, None
        if not rest:
            return path, p, rest, f"`listning {' '.join(path)}` needs a subcommand"
        word = rest[0]
        if word in choices:
            path.append(rest.pop(0))
            p = choices[word]
            continue
        if re.fullmatch(r"[a-z][a-z0-9-]*", word):
            return path, p, rest, (f"`listning {' '.join([*path, word])}`: no such command "
                                   f"(choices: {', '.join(sorted(choices))})")
        return path, p, rest, None  # a placeholder (COMMAND, ..., <x>): the path ends here


def unknown_options(p: argparse.ArgumentParser, words: list[str]) -> list[str]:
    known = set(p._option_string_actions)
    bad = []
    for w in words:
        w = w.strip("[]()|,")
        if w.startswith("--") and len(w) > 2:
            name = w.split("=", 1)[0]
            if name not in known:
                bad.append(name)
        elif re.fullmatch(r"-[A-Za-z]", w) and w not in known:
            bad.append(w)
    return bad


def asks_help(argv: list[str]) -> bool:
    return "-h" in argv or "--help" in argv


def full_parse(cmd: Command) -> str | None:
    """None when the parser accepts the command line; else what argparse said."""
    if asks_help(cmd.argv):  # argparse stops at --help: check the path and the options only
        _path, p, rest, problem = walk(cmd.argv)
        bad = unknown_options(p, rest)
        return problem or (f"unknown option(s): {', '.join(bad)}" if bad else None)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser().parse_args(cmd.argv)
    except SystemExit as exc:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue() else f"exit {exc.code}"
    if getattr(args, "handler", None) is None:
        return "parses, but names no command that does anything"
    return None


def never_run(path: list[str], argv: list[str]) -> bool:
    if not path or asks_help(argv):
        return False
    return path[0] in NEVER_RUN_FIRST or path[-1] in NEVER_RUN_LAST


def inline_spans(doc: Path) -> list[tuple[int, str]]:
    spans, in_fence = [], False
    for no, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_fence = not in_fence
            continue
        if not in_fence:
            spans += [(no, m.group(1)) for m in re.finditer(r"`(?:\.venv/bin/)?listning ([^`]+)`",
                                                            line)]
    return spans


# --- the checks -------------------------------------------------------------------------------

def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_sh_commands_parse(doc: Path) -> None:
    problems = []
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:", makefile, re.MULTILINE))
    for block, cmd, no, code in sh_commands(doc):
        if cmd is None:
            m = re.match(r"^make\s+([A-Za-z0-9_.-]+)", code)
            if m and m.group(1) not in targets:
                problems.append(f"{_doc_id(doc)}:{no}: `make {m.group(1)}`: no such target")
            continue
        path, leaf, rest, problem = walk(cmd.argv)
        abbreviated = unknown_options(leaf, rest)  # argparse would accept `--fro` for `--from`
        problem = problem or full_parse(cmd) or (
            f"write options in full: {', '.join(abbreviated)}" if abbreviated else None)
        if problem:
            problems.append(f"{cmd.where()}\n    {problem}")
        elif block.runnable and never_run(path, cmd.argv):
            problems.append(f"{cmd.where()}\n    starts a server or a long run: put it in a "
                            f"block with a `# not run: <why>` line ({block.where()})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_synopses_and_inline_commands_name_real_options(doc: Path) -> None:
    problems = []
    candidates: list[tuple[int, str]] = []
    for block in blocks_of(doc):
        if block.tag == "":
            for no, code, _ in logical_lines(block):
                words = code.split()
                if words and words[0] in LISTNING:
                    candidates.append((no, " ".join(words[1:])))
    candidates += inline_spans(doc)
    for no, text in candidates:
        words = [w for w in re.split(r"\s+", text.replace("…", " ")) if w and w != "..."]
        path, p, rest, problem = walk(words)
        if problem and problem.endswith("needs a subcommand"):
            problem = None  # `listning tak ...`: a group named in prose
        bad = unknown_options(p, rest)
        if bad and not problem:
            problem = f"unknown option(s) for `listning {' '.join(path)}`: {', '.join(bad)}"
        if problem:
            problems.append(f"{_doc_id(doc)}:{no}: listning {text}\n    {problem}")
    assert not problems, "\n".join(problems)


RUNNABLE_DOCS = [d for d in DOCS
                 if any(b.runnable and c is not None for b, c, _, _ in sh_commands(d))]


@pytest.mark.parametrize("doc", RUNNABLE_DOCS, ids=_doc_id)
def test_sh_commands_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from listning.cli import main

    for name in COPIED:
        shutil.copytree(REPO / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    _empty_pilot_data(tmp_path / "pilot-data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LISTNING_TAK_DB", raising=False)
    ran = 0
    for block, cmd, _no, code in sh_commands(doc):
        m = re.match(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)$", code)
        if m and block.runnable:
            monkeypatch.setenv(m.group(1), shlex.split(m.group(2))[0] if m.group(2) else "")
        if cmd is None or not block.runnable:
            continue
        for name, value in cmd.env.items():
            monkeypatch.setenv(name, value)
        try:
            status = main(list(cmd.argv))
        except SystemExit as exc:  # argparse, or a handler that exits
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            for name in cmd.env:
                monkeypatch.delenv(name, raising=False)
        out = capsys.readouterr()
        assert status == cmd.expected_exit, (
            f"{cmd.where()}\n    exit {status}, expected {cmd.expected_exit}\n"
            f"--- stdout\n{out.out[-2000:]}\n--- stderr\n{out.err[-2000:]}")
        ran += 1
    assert ran > 0


XML_DOCS = [d for d in DOCS if any(b.tag == "xml" for b in blocks_of(d))]


@pytest.mark.parametrize("doc", XML_DOCS, ids=_doc_id)
def test_xml_examples_validate(doc: Path) -> None:
    from interactions.validator import format_report, validate_bytes

    problems = []
    for block in blocks_of(doc):
        text = "\n".join(t for _, t in block.lines)
        if block.tag != "xml" or "Envelope" not in text or "<!-- not valid:" in text:
            continue
        report = validate_bytes(text.encode("utf-8"), source=block.where())
        if not report.valid:
            problems += format_report(report)
    assert not problems, "\n".join(problems)


TOML_KINDS = ("# region configuration", "# conformance test data")
TOML_DOCS = [d for d in DOCS if any(b.tag == "toml" and b.lines and
                                    b.lines[0][1].strip() in TOML_KINDS for b in blocks_of(d))]


@pytest.mark.parametrize("doc", TOML_DOCS, ids=_doc_id)
def test_toml_examples_load(doc: Path) -> None:
    import tomllib

    from consumers.conformance.testdata import TestDataError, parse_testdata
    from producers.config import ConfigError, parse_config

    checked = 0
    for block in blocks_of(doc):
        if block.tag != "toml" or not block.lines or block.lines[0][1].strip() not in TOML_KINDS:
            continue
        tree = tomllib.loads("\n".join(t for _, t in block.lines))
        try:
            if block.lines[0][1].strip() == TOML_KINDS[0]:
                parse_config(tree, block.where())
            else:
                parse_testdata(tree, block.where())
        except (ConfigError, TestDataError) as exc:
            pytest.fail(f"{block.where()}: {exc}")
        checked += 1
    assert checked


MERMAID_DOCS = [d for d in DOCS if any(b.tag == "mermaid" for b in blocks_of(d))]


@pytest.mark.parametrize("doc", MERMAID_DOCS, ids=_doc_id)
def test_sequence_diagrams_have_no_statement_breaks_in_text(doc: Path) -> None:
    problems = []
    for block in blocks_of(doc):
        if block.tag != "mermaid" or not block.lines or \
                block.lines[0][1].strip() != "sequenceDiagram":
            continue
        for no, line in block.lines:
            text = re.sub(r"#\w+;", "", line)  # entity codes such as #59; are fine
            if ";" in text or "#" in text:
                problems.append(f"{_doc_id(doc)}:{no}: {line.strip()}")
    assert not problems, "`;` or `#` ends the text in a Mermaid sequence diagram:\n" + \
        "\n".join(problems)


SERVERS = (("platform", "serve"), ("tak", "serve"), ("region", "serve"), ("eservice", "serve"),
           ("population", "serve"), ("region", "init-db"))


def test_operations_guide_documents_every_server_option_and_region_key() -> None:
    from producers.config import Rules

    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = []
    for path in SERVERS:
        p = parser()
        for name in path:
            p = subparsers_of(p)[name]
        for action in p._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in text:
                    missing.append(f"listning {' '.join(path)} {option}")
    keys = [f"[region] {k}" for k in ("county", "name", "hsa_id", "data_dir", "database_url")]
    keys += [f"[rules] {k}" for k in Rules.__dataclass_fields__]
    keys += [f"[[units]] {k}" for k in ("cap", "queue_allowed", "fixed_doctor_contact",
                                          "listing_types", "days_per_queue_place")]
    missing += [f"region TOML key {k}" for k in keys if f"`{k}" not in text]
    assert not missing, "not described in docs/operations.md:\n" + "\n".join(missing)


def _empty_pilot_data(d: Path) -> None:
    """What report commands written for the pilot need: regions 01 and 08, empty databases."""
    from producers.config import default_database_url
    from producers.storage import open_database

    for code in PILOT_REGIONS:
        open_database(default_database_url(code, d / "regions" / code)).dispose()


def test_the_docs_have_commands_and_the_checker_sees_them() -> None:
    """Guards the checker itself: it finds blocks, commands and the conventions."""
    all_cmds = [(b, c) for d in DOCS for b, c, _, _ in sh_commands(d) if c is not None]
    assert len(all_cmds) >= 20
    assert any(b.runnable for b, _ in all_cmds)
    assert any(not b.runnable for b, _ in all_cmds)
    doc = REPO / "docs" / "x.md"
    block = Block(doc, 1, "sh", [(2, "listning tak permit A \\"), (3, "   all 08  # exit 2"),
                                 (4, "# not run: a test")])
    assert not block.runnable
    assert logical_lines(block)[0] == (2, "listning tak permit A all 08", "# exit 2")
    cmd = as_command(doc, 2, "Y=2 .venv/bin/listning -v validate $X", "# exit 1", {"X": "1"})
    assert cmd is not None and cmd.argv == ["-v", "validate", "1"] and cmd.expected_exit == 1
    assert cmd.env == {"Y": "2"}
    assert walk(["tak", "nosuch"])[3] is not None
    assert unknown_options(walk(["tak", "list"])[1], ["--db", "[--nope=1]"]) == ["--nope"]
