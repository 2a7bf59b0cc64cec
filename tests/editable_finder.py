"""Swap setuptools' editable-install import finder for a lean one (run by `make test`, and `make bench`, after
`pip install -e`).

The checkout root *is* the ``leanworker`` package, so setuptools cannot install it as a plain path and installs an
import finder that runs at every interpreter start (a ``.pth`` file imports it). That finder imports pathlib, re,
fnmatch, urllib.parse and ipaddress: ~8 ms of CPU in every Python process, and the suite starts ~1,300 of them
(workers, the CLI, fixtures). The finder written here maps ``leanworker`` to the checkout and imports nothing at start
(importlib's machinery only when ``leanworker`` is imported): every other name (``leanworker.x``, the fixtures'
namespace folders) is found by Python's own machinery under the package's path, as it is in a wheel install. It
overwrites the module that setuptools' ``.pth`` names, in place, so ``pip uninstall`` still removes it; a new
``pip install -e`` writes setuptools' back, and running this again swaps it (a finder already swapped is left alone).
Its bytecode is written here, so that no process compiles it again, even where PYTHONDONTWRITEBYTECODE is set.
"""

import glob
import os
import py_compile
import re
import sys
import sysconfig

FINDER = '''"""leanworker's editable install: ``import leanworker`` loads the checkout at ROOT.

Written by tests/editable_finder.py in place of setuptools' finder (which loads pathlib and re at every start)."""

import sys

ROOT = {root!r}


class _CheckoutFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "leanworker":
            return None
        from importlib.machinery import ModuleSpec, SourceFileLoader

        init = ROOT + "/__init__.py"
        spec = ModuleSpec(fullname, SourceFileLoader(fullname, init), origin=init, is_package=True)
        spec.submodule_search_locations = [ROOT]
        spec.has_location = True
        return spec


def install():
    if _CheckoutFinder not in sys.meta_path:
        sys.meta_path.append(_CheckoutFinder)
'''


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    site = sysconfig.get_paths()["purelib"]
    pths = glob.glob(os.path.join(site, "__editable__.leanworker-*.pth"))
    text = ""
    if len(pths) == 1:
        with open(pths[0], encoding="utf-8") as pth:
            text = pth.read()
    names = re.fullmatch(r"import (\w+); (\w+)\.install\(\)\s*", text)  # what setuptools' .pth says
    path = os.path.join(site, f"{names[1]}.py") if names and names[1] == names[2] else ""
    if not os.path.isfile(path):
        print(f"editable_finder: no setuptools editable finder for leanworker in {site} ({pths}): left as is",
              file=sys.stderr)
        return 0
    finder = FINDER.format(root=root)
    with open(path, encoding="utf-8") as module:
        swapped = module.read() == finder
    if not swapped:
        with open(path, "w", encoding="utf-8") as module:
            module.write(finder)
    py_compile.compile(path, doraise=True)  # replaces setuptools' bytecode, whatever PYTHONDONTWRITEBYTECODE says
    return 0


if __name__ == "__main__":
    sys.exit(main())
