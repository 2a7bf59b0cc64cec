"""The slot: one supervised worker (the child actor, the supervisor actor, the admission gate, the read side, the
request channel, the pipe writer, the caller's ``RowStream`` and ``Worker``).

What other wings use is named here; every other module of the slot is internal to it.
"""

from leanworker.actors.slot.channel import CANCELLED, DIAG, END, OK, PROGRESS, ROWS, RequestChannel, Terminal
from leanworker.actors.slot.endings import TRIED_AGAIN
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.intensity import RestartIntensity
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.messages import Shutdown
from leanworker.actors.slot.port import RequestPort
from leanworker.actors.slot.reading import StreamEvents, committed, end_of_iteration, stream_summary, terminal_result
from leanworker.actors.slot.stream import RowStream
from leanworker.actors.slot.supervisor import SupervisorActor
from leanworker.actors.slot.worker import Worker

# CANCELLED, DIAG, END, OK, PROGRESS, ROWS: a channel's item kinds and the outcomes a reader tells apart
# (RequestChannel.get and poll). StreamEvents, committed, end_of_iteration, stream_summary, terminal_result: what a
# stream (RowStream, the asyncio one) makes of its channel's items and of its terminal record. TRIED_AGAIN: how an
# exhausted slot's error ends, which a pool's cool-down cuts off (it says its own seconds left).
__all__ = ["CANCELLED", "DIAG", "END", "OK", "PROGRESS", "ROWS", "AdmissionGate", "MemorySampler", "RequestChannel", "RequestPort",
           "RestartIntensity", "RowStream", "Shutdown", "StreamEvents", "SupervisorActor", "TRIED_AGAIN", "Terminal",
           "Worker", "committed", "end_of_iteration", "stream_summary", "terminal_result"]
