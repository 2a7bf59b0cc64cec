"""Reading ``lakefile.lean``: a tolerant reader of its declarative subset (the model and the TOML reader are in
lakefile.py).

It understands ``package`` (plain, ``«»`` or string names; ``where``, ``{ }`` or bare bodies) and its ``srcDir``;
``lean_lib`` blocks with ``roots``, ``globs`` (``.one``, ``.submodules``, ``.andSubmodules``, ``Glob.*`` and the
string forms) and ``srcDir``; ``lean_exe`` names; and ``@[default_target]``. Comments, ``require``, definitions and
the like are skipped. What it cannot read (a value computed by Lean code, a library declared inside a conditional)
becomes a diagnostic, never a crash and never a silent guess: a library whose roots or globs cannot be read is
listed, but its modules are not enumerated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from leanworker.errors import InvalidModuleName
from leanworker.planner.lakefile import Glob, LakeDiagnostic, LakefileConfig, LibConfig
from leanworker.planner.names import join_components, split_module_name


def strip_comments(text: str) -> str:
    """Blank out ``--`` and nested ``/- -/`` comments (keeping newlines, so line numbers stay right)."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("--", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/-", i):
            depth = 0
            while i < n:
                if text.startswith("/-", i):
                    depth += 1
                    out[i] = out[i + 1] = " "
                    i += 2
                elif text.startswith("-/", i):
                    depth -= 1
                    out[i] = out[i + 1] = " "
                    i += 2
                    if depth == 0:
                        break
                else:
                    if text[i] != "\n":
                        out[i] = " "
                    i += 1
        else:
            i += 1
    return "".join(out)


@dataclass
class _Block:
    text: str
    line: int  # 1-based line of its first line
    attributes: list[str]
    unbalanced: int = 0  # brackets left open (> 0) or closed too often (< 0) when the block ended


_TOP_LEVEL_START = re.compile(r"(?:@\[|(?:lean_lib|lean_exe|package|require|import|open|def|abbrev|script|target|"
                              r"extern_lib|input_file|input_dir|theorem|instance|namespace|section|end|"
                              r"module_facet|library_facet|package_facet|post_update)(?![\w.]))")


def _blocks(text: str) -> list[_Block]:
    """Top-level declarations: a line starting at column 0 plus its indented (or bracketed) continuation.

    A line at column 0 that starts a declaration (``lean_lib``, ``@[``, ``require``, ...) always starts a new block,
    even inside brackets left open: one unbalanced declaration must not swallow the rest of the file. The block
    that left them open records how many (``unbalanced``), and its reader reports it.
    """
    blocks: list[_Block] = []
    pending_attributes: list[str] = []
    current: list[str] = []
    start = 0
    depth = 0

    def close_block() -> None:
        blocks.append(_Block("\n".join(current), start, pending_attributes, depth))

    for number, line in enumerate(text.split("\n"), 1):
        at_column_zero = line[:1] not in ("", " ", "\t")
        starts_new = at_column_zero and (depth <= 0 or _TOP_LEVEL_START.match(line) is not None)
        if starts_new:
            if current:
                close_block()
                pending_attributes = []
            current, start, depth = [line], number, 0
        elif current:
            current.append(line)
        depth += sum(line.count(o) for o in "{[(") - sum(line.count(c) for c in "}])")
        if starts_new:
            attribute = re.fullmatch(r"\s*@\[([^\]]*)\]\s*", line)
            if attribute and depth <= 0:  # an attribute alone on its line applies to the next declaration
                pending_attributes = pending_attributes + _split_attributes(attribute.group(1))
                current = []
    if current:
        close_block()
    return blocks


def _split_attributes(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


_NAME_TOKEN = r"(?:«[^»]*»|[^\s{}()\[\],:=\"`]+)"
_DECL = re.compile(r"^(?:@\[(?P<attrs>[^\]]*)\]\s*)?(?P<kind>[A-Za-z_][\w.]*)(?:\s+(?P<name>\"[^\"]*\"|"
                   + _NAME_TOKEN + r"))?")
_FIELD = re.compile(r"(?<![\w.])(roots|globs|srcDir)\s*:=\s*")
_NAME_LITERAL = re.compile(r"``?((?:«[^»]*»|[^\s,\]\[()«»`.]+)(?:\.(?:«[^»]*»|[^\s,\]\[()«»`.]+))*)")
_GLOB_CTOR = re.compile(r"(?:(?:Lake\.)?Glob)?\.(one|submodules|andSubmodules)\s+(``?\S+?)(?=\s*(?:,|\]|$))")
_IGNORED = {"import", "open", "require", "def", "abbrev", "script", "target", "extern_lib", "input_file",
            "input_dir", "set_option", "namespace", "end", "section", "variable", "theorem", "instance",
            "private", "protected", "noncomputable", "macro", "syntax", "elab", "module_facet", "library_facet",
            "package_facet", "post_update", "lean_exe", "package", "lean_lib", "@", "attribute"}


def target_name(written: str) -> str:
    """A target's name in its shortest written form (``«Foo»`` is ``Foo``); unparseable names stay as written."""
    try:
        return join_components(split_module_name(written))
    except InvalidModuleName:
        return written


def _package_name(written: str) -> str | None:
    """A package's name as text: ``«lean-globs»`` is ``lean-globs``."""
    try:
        components = split_module_name(written)
    except InvalidModuleName:
        return written or None
    return components[0] if len(components) == 1 else ".".join(components)


def _plain_name(token: str) -> str:
    token = token.strip()
    if token.startswith('"') and token.endswith('"'):
        token = token[1:-1]
    return token


def _module_from_literal(literal: str) -> str:
    match = _NAME_LITERAL.fullmatch(literal.strip())
    if match is None:
        raise InvalidModuleName(f"{literal!r} is not a name literal")
    return join_components(split_module_name(match.group(1)))


def _array_items(value: str) -> list[str] | None:
    """Items of a ``#[a, b]`` literal at the start of ``value`` (None if it is not one)."""
    value = value.lstrip()
    if not value.startswith("#["):
        return None
    depth, i = 0, 1
    while i < len(value):
        if value[i] == "[":
            depth += 1
        elif value[i] == "]":
            depth -= 1
            if depth == 0:
                rest = value[i + 1:].lstrip()
                if rest.startswith(("++", "|>", "<|", ".map", ".push")):
                    return None  # computed from the literal: not declarative
                inner = value[2:i].strip()
                return [item.strip() for item in inner.split(",")] if inner else []
        i += 1
    return None


def _read_roots(value: str) -> tuple[str, ...] | None:
    items = _array_items(value)
    if items is None:
        return None
    try:
        return tuple(_module_from_literal(item) if not item.startswith('"') else
                     join_components(split_module_name(_plain_name(item))) for item in items)
    except InvalidModuleName:
        return None


def _read_globs(value: str) -> tuple[Glob, ...] | None:
    items = _array_items(value)
    if items is None:
        return None
    globs = []
    try:
        for item in items:
            if item.startswith('"'):
                globs.append(Glob.parse(_plain_name(item)))
                continue
            ctor = _GLOB_CTOR.fullmatch(item)
            if ctor is not None:
                globs.append(Glob(ctor.group(1), _module_from_literal(ctor.group(2))))
            elif item.startswith("`"):  # a bare name coerces to Glob.one
                globs.append(Glob("one", _module_from_literal(item)))
            else:
                return None
    except InvalidModuleName:
        return None
    return tuple(globs)


def _read_src_dir(value: str) -> str | None:
    """``"a"`` or ``"a" / "b"`` (FilePath join); None when it is anything else."""
    match = re.match(r'\s*("[^"\n]*"(?:\s*/\s*"[^"\n]*")*)', value)
    if match is None:
        return None
    rest = value[match.end():].lstrip()
    if rest and not rest.startswith((",", "}", "\n")) and not re.match(r"[A-Za-z_]\w*\s*:=", rest):
        return None
    parts = re.findall(r'"([^"\n]*)"', match.group(1))
    return "/".join(p.strip("/") for p in parts if p not in ("", ".")) or "."


def _snippet(value: str) -> str:
    line = value.strip().split("\n", 1)[0]
    return line if len(line) <= 60 else line[:57] + "..."


def read_lean_lakefile(text: str, path: str) -> LakefileConfig:
    """Read the declarative parts of a ``lakefile.lean``; report the rest as diagnostics."""
    config = LakefileConfig()
    clean = strip_comments(text)

    def problem(message: str, line: int, severity: str = "error", code: str = "lakefile.unreadable") -> None:
        config.diagnostics.append(LakeDiagnostic(severity, code, message, path, line))

    for block in _blocks(clean):
        match = _DECL.match(block.text)
        if match is None:
            problem(f"cannot read `{_snippet(block.text)}`: not a declaration", block.line)
            continue
        kind = match.group("kind")
        if block.unbalanced:
            what = "left open" if block.unbalanced > 0 else "closed without an opening one"
            problem(f"`{_snippet(block.text)}`: {abs(block.unbalanced)} bracket(s) {what}; this declaration cannot "
                    "be read" + ("; its modules are not included" if kind == "lean_lib" else ""), block.line)
            if kind == "lean_lib":
                lib = LibConfig(target_name(_name_of(match)), default=_is_default(block, match), readable=False)
                config.libs.append(lib)
            continue
        default = _is_default(block, match)
        name = _name_of(match)
        body = block.text[match.end():]
        if kind == "package":
            config.package = _package_name(name)
            src = _field(body, "srcDir")
            if src is not None:
                value = _read_src_dir(src)
                if value is None:
                    problem(f"cannot read srcDir of package {name} ({_snippet(src)})", block.line)
                else:
                    config.src_dir = value
        elif kind == "lean_lib":
            config.libs.append(_read_lib(name, body, default, block.line, problem))
        elif kind == "lean_exe":
            config.exes.append(target_name(name))
            if default:
                config.default_targets.append(target_name(name))
        elif re.search(r"(?<![\w.])lean_lib(?![\w])", block.text):
            problem(f"a lean_lib inside `{kind} ...` (a conditional or other code) cannot be read; its modules are "
                    "not included", block.line, code="lakefile.conditional_lib")
        elif kind not in _IGNORED:
            problem(f"skipped `{kind} ...`: not a construct that declares modules", block.line, severity="info",
                    code="lakefile.skipped")
    for lib in config.libs:
        if lib.default:
            config.default_targets.append(lib.name)
    return config


def _name_of(match: re.Match[str]) -> str:
    return _plain_name(match.group("name") or "")


def _is_default(block: _Block, match: re.Match[str]) -> bool:
    attributes = block.attributes + _split_attributes(match.group("attrs") or "")
    return "default_target" in attributes or "defaultTarget" in attributes


def _field(body: str, name: str) -> str | None:
    for match in _FIELD.finditer(body):
        if match.group(1) == name:
            return body[match.end():]
    return None


def _read_lib(name: str, body: str, default: bool, line: int, problem: Any) -> LibConfig:
    lib = LibConfig(target_name(name), default=default)
    try:
        split_module_name(name)
    except InvalidModuleName:
        problem(f"lean_lib name {name!r} is not a valid name", line)
        lib.readable = False
    roots_text, globs_text, src_text = _field(body, "roots"), _field(body, "globs"), _field(body, "srcDir")
    if roots_text is not None:
        lib.roots = _read_roots(roots_text)
        if lib.roots is None:
            problem(f"cannot read roots of lean_lib {name} ({_snippet(roots_text)}); its modules are not included",
                    line)
            lib.readable = False
    if globs_text is not None:
        lib.globs = _read_globs(globs_text)
        if lib.globs is None:
            problem(f"cannot read globs of lean_lib {name} ({_snippet(globs_text)}); its modules are not included",
                    line)
            lib.readable = False
    if src_text is not None:
        src = _read_src_dir(src_text)
        if src is None:
            problem(f"cannot read srcDir of lean_lib {name} ({_snippet(src_text)}); its modules are not included",
                    line)
            lib.readable = False
        else:
            lib.src_dir = src
    return lib
