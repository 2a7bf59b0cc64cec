"""Reading a Lean module's import header, as Lean's header parser does.

``header := "module"? "prelude"? import*`` where ``import := "public"? "meta"? "import" "all"? ident``: one module
per ``import``, several ``import``s may share a line. Whitespace includes line comments (``--``) and nested block comments
(``/- ... -/``); doc comments (``/--``, ``/-!``) are commands, so they end the header, as does any other token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from leanworker.errors import InvalidModuleName
from leanworker.planner.names import is_id_first, is_id_rest, join_components, split_module_name


@dataclass(frozen=True)
class ImportDecl:
    """One imported module and the modifiers it was imported with."""

    module: str
    public: bool = False
    meta: bool = False
    all: bool = False


@dataclass(frozen=True)
class ImportHeader:
    imports: tuple[ImportDecl, ...]
    prelude: bool = False
    is_module: bool = False
    problems: tuple[str, ...] = ()  # things that looked like a header but could not be read
    end: int = 0  # offset in the text just after the header (after its last import's module name)

    @property
    def modules(self) -> tuple[str, ...]:
        """Imported module names, in order, without repeats."""
        return tuple(dict.fromkeys(decl.module for decl in self.imports))


_ASCII_ID_REST = re.compile(r"[A-Za-z0-9_'!?]*")  # exactly the ASCII characters of is_id_rest


def _id_end(text: str, i: int) -> int:
    """The end of the identifier whose first character is at ``i`` (ASCII runs at once, the rest per character)."""
    n = len(text)
    rest = _ASCII_ID_REST.match
    j = rest(text, i + 1).end()  # type: ignore[union-attr]  # a pattern of `*`: it always matches
    while j < n and text[j] > "\x7f" and is_id_rest(text[j]):
        j = rest(text, j + 1).end()  # type: ignore[union-attr]
    return j


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self._word: tuple[int, str | None] = (-1, None)  # the word at a cursor, asked for again and again

    def skip_space(self) -> None:
        text, n = self.text, len(self.text)
        while self.i < n:
            c = text[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif text.startswith("--", self.i):
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif text.startswith("/-", self.i) and not text.startswith(("/--", "/-!"), self.i):
                self._skip_block_comment()
            else:
                return

    def _skip_block_comment(self) -> None:
        text, depth, i = self.text, 0, self.i
        while i < len(text):
            if text.startswith("/-", i):
                depth += 1
                i += 2
            elif text.startswith("-/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    break
            else:
                i += 1
        self.i = i

    def word(self) -> str | None:
        """The keyword at the cursor (not consumed), if it is one."""
        text, i = self.text, self.i
        if self._word[0] == i:
            return self._word[1]
        found = text[i:_id_end(text, i)] if i < len(text) and is_id_first(text[i]) else None
        self._word = (i, found)
        return found

    def take(self, word: str) -> bool:
        if self.word() == word:
            self.i += len(word)
            self.skip_space()
            return True
        return False

    def name(self) -> str | None:
        """A (possibly «»-escaped, dotted) module name at the cursor, consumed; None if there is none."""
        text, i, n = self.text, self.i, len(self.text)
        components: list[str] = []
        while i < n:
            if text[i] == "«":
                end = text.find("»", i + 1)
                if end < 0:
                    return None
                components.append(text[i + 1:end])
                i = end + 1
            elif is_id_first(text[i]):
                j = _id_end(text, i)
                components.append(text[i:j])
                i = j
            else:
                break
            if i < n and text[i] == "." and i + 1 < n and (text[i + 1] == "«" or is_id_first(text[i + 1])):
                i += 1
                continue
            break
        if not components:
            return None
        self.i = i
        self.skip_space()
        return join_components(components)


_KEYWORDS = frozenset({"import", "public", "meta", "all", "module", "prelude", "private"})


def parse_import_header(text: str) -> ImportHeader:
    """Read the import header at the start of ``text`` (a Lean source file)."""
    scanner = _Scanner(text)
    scanner.skip_space()
    is_module = scanner.take("module")
    prelude = scanner.take("prelude")
    imports: list[ImportDecl] = []
    problems: list[str] = []
    while True:
        start = scanner.i
        public = scanner.take("public")
        meta = scanner.take("meta")
        if not scanner.take("import"):
            scanner.i = start  # `public`/`meta` not followed by import: a command, the header is over
            break
        everything = scanner.take("all")
        name = None if scanner.word() in _KEYWORDS else scanner.name()
        if name is None:
            problems.append(f"'import' at offset {start} names no module")
            break
        try:
            split_module_name(name)
        except InvalidModuleName as exc:
            problems.append(str(exc))
            continue
        imports.append(ImportDecl(name, public, meta, everything))
    return ImportHeader(tuple(imports), prelude, is_module, tuple(problems), start if imports else 0)
