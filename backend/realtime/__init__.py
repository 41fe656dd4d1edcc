"""A snapshot-and-event realtime layer for aiohttp. See docs/embedding.md."""

from .app import close_all, setup_realtime
from .broker import Broker, MemoryBroker
from .closecodes import CloseCode, Reconnect
from .errors import ErrorCode
from .handler import HUB_KEY
from .hub import Hub
from .settings import RealtimeSettings
from .topics import SnapshotProvider, Topic, TopicRegistry, UnknownTopic

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
    "Topic",
    "TopicRegistry",
    "UnknownTopic",
    "close_all",
    "setup_realtime",
]
