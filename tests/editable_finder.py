"""Swap setuptools' editable-install import finder for a lean one (run by `make test` after `pip install -e`).

The checkout root *is* the ``leanworker`` package, so setuptools cannot install it as a plain path and installs an
import finder that runs at every interpreter start (a ``.pth`` file imports it). That finder imports pathlib, re,
fnmatch, urllib.parse and ipaddress: ~8 ms of CPU in every Python process, and the suite starts ~1,300 of them
(workers, the CLI, fixtures). The finder written here maps ``leanworker`` to the checkout with what the interpreter has
loaded already, and nothing else: every other name (``leanworker.x``, the fixtures' namespace folders) is found by
Python's own machinery under the package's path, as it is in a wheel install. It overwrites setuptools' module in place,
under the same name, so ``pip uninstall`` still removes it; a new ``pip install -e`` writes setuptools' back.
"""

import glob
import os
import sys
import sysconfig

FINDER = '''"""leanworker's editable install: ``import leanworker`` loads the checkout at {root!r}.

Written by tests/editable_finder.py in place of setuptools' finder (which loads pathlib and re at every start)."""

import sys
from importlib.machinery import ModuleSpec, SourceFileLoader

ROOT = {root!r}


class _CheckoutFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "leanworker":
            return None
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
    found = glob.glob(os.path.join(site, "__editable___leanworker_*_finder.py"))
    if len(found) != 1:
        print(f"editable_finder: expected one setuptools finder for leanworker in {site}, found {found}: left as is",
              file=sys.stderr)
        return 0
    with open(found[0], "w", encoding="utf-8") as module:
        module.write(FINDER.format(root=root))
    for cached in glob.glob(os.path.join(site, "__pycache__", "__editable___leanworker_*_finder.*.pyc")):
        os.remove(cached)
    return 0


if __name__ == "__main__":
    sys.exit(main())
