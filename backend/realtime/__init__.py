"""aiohttp-realtime: snapshot-and-event WebSockets for aiohttp.

Declare topics (`TopicDef`), bind their snapshot providers (`TopicRegistry`),
mount the endpoint (`setup_realtime`) and publish through the returned `Hub`.
See docs/embedding.md.
"""

from .app import close_all, setup_realtime
from .broker import Broker, MemoryBroker
from .closecodes import CloseCode, Reconnect
from .errors import ErrorCode
from .handler import HUB_KEY
from .hub import Hub
from .settings import RealtimeSettings
from .topics import SnapshotProvider, TopicDef, TopicRef, TopicRegistry, UnknownTopic

__version__ = "0.2.0"

__all__ = [
    "HUB_KEY",
    "Broker",
    "CloseCode",
    "ErrorCode",
    "Hub",
    "MemoryBroker",
    "RealtimeSettings",
    "Reconnect",
    "SnapshotProvider",
    "TopicDef",
    "TopicRef",
    "TopicRegistry",
    "UnknownTopic",
    "__version__",
    "close_all",
    "setup_realtime",
]
