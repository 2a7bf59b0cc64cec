"""``leanworker discover`` and ``leanworker plan``: what a Lake project holds, and how it would be batched."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from leanworker.cli._output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    emit_json,
    plural,
    spinner,
    table,
    terminal_width,
)
from leanworker.cli._values import FIXTURE_CAPABILITY, capability, module_name, positive_int


def add_discover_options(discover: argparse.ArgumentParser) -> None:
    discover.add_argument("path", help="the project directory, or any path inside it")
    discover.add_argument("--lib", action="append", metavar="NAME",
                          help="a library to read, repeatable (default: the default targets, else every library)")
    discover.add_argument("--all", action="store_true", help="list every module, however many (default: off: "
                                                             "the first 20 of more than 40)")
    discover.set_defaults(handler=run_discover)


def add_planning_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """The options ``plan`` and ``run`` share: which libraries, and how modules are grouped into batches."""
    parser.add_argument("--lib", action="append", metavar="NAME",
                        help=f"a library to {verb}, repeatable (default: the default targets, else every library)")
    parser.add_argument("--mode", choices=["shared", "per_header"], default="shared",
                        help="shared: one session on the base imports; per_header: a session per import header "
                             "(default: shared)")
    parser.add_argument("--base-import", action="append", default=[], type=module_name, metavar="MODULE",
                        help="a module every session imports, repeatable (default: none)")
    parser.add_argument("--max-batch-modules", type=positive_int, default=None, metavar="N",
                        help="at most this many modules a batch (default: no limit)")


def add_plan_options(plan: argparse.ArgumentParser) -> None:
    plan.add_argument("path", help="the project directory, or any path inside it")
    add_planning_options(plan, "plan")
    plan.add_argument("--capability", default=FIXTURE_CAPABILITY, type=capability, metavar="MODULE:ATTR",
                      help="the capability named in each batch's session key (default: the simulated fixture "
                           f"{FIXTURE_CAPABILITY})")
    plan.set_defaults(handler=run_plan)


def discover(args: argparse.Namespace) -> Any:
    """The project at or above ``args.path``; an unreadable directory or file is a one-line error (exit 2)."""
    import leanworker as lw

    with spinner(args, f"discovering {args.path}..."):
        try:
            return lw.discover_lake_project(args.path, libs=args.lib or None)
        except OSError as exc:
            where = exc.filename or args.path
            raise UsageError(f"cannot read {where}: {exc.strerror or exc}") from None


def project_files(project: Any) -> dict[str, Path]:
    """The files of a project that a command reads (what each is -> its path): never to be overwritten."""
    files = {f"the project's {project.lakefile.name}": project.lakefile}
    for name in ("lake-manifest.json", "lean-toolchain"):
        files[f"the project's {name}"] = project.root / name
    files.update({f"the source of module {module.name}": module.path for module in project.modules})
    return files


def package_label(project: Any) -> str:
    return f"package {project.package}" if project.package else "unnamed package"


def no_modules_reason(project: Any) -> str:
    """Why a project gives nothing to do, in one line."""
    libs = ", ".join(lib.name for lib in project.libs)
    where = f"in its libraries ({libs})" if libs else "(its lakefile declares no lean_lib)"
    errors = sum(1 for d in project.diagnostics if d.severity == "error")
    unread = f"; {plural(errors, 'part')} of {project.lakefile.name} could not be read" if errors else ""
    return f"{project.root}: no modules {where}{unread}: nothing to do"


def diagnostics_json(project: Any) -> list[dict[str, Any]]:
    return [vars(d) for d in project.diagnostics]


def print_diagnostics(project: Any, severity: str | None = None) -> None:
    """The lakefile's diagnostics on stderr (only those of ``severity`` when given), one a line."""
    for d in project.diagnostics:
        if severity is not None and d.severity != severity:
            continue
        where = f" ({d.path}:{d.line})" if d.line else (f" ({d.path})" if d.path else "")
        print(f"{d.severity}: {d.code}: {d.message}{where}", file=sys.stderr)


def discovery_status(project: Any, command: str) -> int:
    """1 when the lakefile could not be read in full (modules may be missing), else 2 when there is nothing to do."""
    if project.ok and not project.modules:
        print(f"leanworker {command}: {no_modules_reason(project)}", file=sys.stderr)
        return EXIT_USAGE
    if project.ok:
        return EXIT_OK
    print(f"leanworker: {unread_line(project)}", file=sys.stderr)
    return EXIT_FAILED


def unread_line(project: Any) -> str:
    """Why a project that was read only in part makes the exit status 1."""
    errors = sum(1 for d in project.diagnostics if d.severity == "error")
    return f"{plural(errors, 'error')} reading {project.lakefile.name}: modules may be missing (exit status 1)"


def run_discover(args: argparse.Namespace) -> int:
    project = discover(args)
    root = project.root
    if args.json:
        emit_json({
            "status": "ok" if project.ok and project.modules else "error",
            "root": str(root),
            "lakefile": project.lakefile.name,
            "package": project.package,
            "libs": [{"name": lib.name, "roots": list(lib.roots), "globs": [str(g) for g in lib.globs],
                      "src_dir": lib.src_dir, "default": lib.default, "readable": lib.readable}
                     for lib in project.libs],
            "modules": [{"name": m.name, "path": m.path.relative_to(root).as_posix(), "lib": m.lib,
                         "source_root": m.source_root.relative_to(root).as_posix() or ".",
                         "imports": list(m.imports)} for m in project.modules],
            "fingerprint": {**vars(project.fingerprint), "digest": project.fingerprint.digest},
            "diagnostics": diagnostics_json(project),
        })
        return discovery_status(project, "discover")
    print(f"{root}  ({project.lakefile.name}, {package_label(project)})")
    if project.libs:
        print(table(["library", "srcDir", "default", "globs", "modules"],
                    [[lib.name, lib.src_dir, "yes" if lib.default else "", " ".join(str(g) for g in lib.globs),
                      str(sum(1 for m in project.modules if m.lib == lib.name))] for lib in project.libs]))
    shown = project.modules if args.all or len(project.modules) <= 40 else project.modules[:20]
    if shown:
        print()
        print(table(["module", "imports", "path"],
                    [[m.name, str(len(m.imports)), m.path.relative_to(root).as_posix()] for m in shown]))
    if len(shown) < len(project.modules):
        print(f"... {len(project.modules) - len(shown)} more (--all shows every module)")
    fp = project.fingerprint
    toolchain = f"toolchain {fp.toolchain}" if fp.toolchain else "no lean-toolchain file"
    print(f"\nfingerprint: {plural(fp.source_count, 'source')}, {toolchain}, digest {fp.digest[:16]}")
    print_diagnostics(project)
    return discovery_status(project, "discover")


def run_plan(args: argparse.Namespace) -> int:
    import leanworker as lw
    from leanworker.planner.plan import key_to_json

    project = discover(args)
    with spinner(args, f"planning {args.path}..."):
        planner = lw.ImportPlanner(args.capability, tuple(args.base_import), args.max_batch_modules, mode=args.mode)
        plan = planner.plan(project)
    if args.json:
        emit_json({
            "status": "ok" if project.ok and project.modules else "error", "mode": plan.mode,
            "fingerprint": plan.fingerprint, "source_fingerprint": plan.source_fingerprint,
            "modules": plan.module_count, "capability": args.capability,
            "batches": [{"key": key_to_json(b.key), "modules": list(b.modules), "fingerprint": b.fingerprint,
                         "source_root": str(b.source_root) if b.source_root else None} for b in plan.batches],
            "diagnostics": diagnostics_json(project),
        })
        return discovery_status(project, "plan")
    fixture = " (the default: a simulated fixture; --capability names yours)" \
        if args.capability == FIXTURE_CAPABILITY else ""

    print(f"{plural(plan.module_count, 'module')} in {plural(len(plan.batches), 'batch')} ({plan.mode} mode), "
          f"{plural(len(plan.keys), 'session key')}, plan {plan.fingerprint[:16]}")
    print(textwrap.fill(f"capability {args.capability}{fixture}", terminal_width(), break_on_hyphens=False))
    if plan.batches:
        print(table(["batch", "modules", "first", "last", "imports"],
                    [[str(i), str(len(b.modules)), b.modules[0], b.modules[-1], " ".join(b.key.imports) or "-"]
                     for i, b in enumerate(plan.batches)]))
    print_diagnostics(project)
    return discovery_status(project, "plan")
