"""The program inside a worker process, and the :class:`Capability` API downstream code writes.

Importing this package is cheap (no actors, no psutil): it is what every worker process loads.
"""

from leanworker.host.capability import Capability, CommandInfo, Context, RequestCancelled, SessionSpec
from leanworker.errors import CommandError

__all__ = ["Capability", "CommandError", "CommandInfo", "Context", "RequestCancelled", "SessionSpec"]
