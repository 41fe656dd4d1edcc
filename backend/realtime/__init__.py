"""aiohttp-realtime: snapshot-and-event WebSockets for aiohttp.

Declare topics (`TopicDef`), bind their snapshot providers (`TopicRegistry`),
mount the endpoint (`setup_realtime`) and publish through the returned `Hub`.
Methods a client calls over the same socket: `MethodDef`, `MethodRegistry`.
See docs/embedding.md.
"""

if __name__ != "aiohttp_realtime":
    # In a checkout this folder is also reachable as `backend.realtime`. Imported under
    # both names, every module would exist twice - two hubs' worth of classes that fail
    # isinstance checks, and prometheus-client's DuplicateTimeseries at the second
    # import of `metrics` - so the one name is enforced here.
    raise ImportError(f"the realtime library is imported as `aiohttp_realtime`, not `{__name__}`")

from .app import close_all, setup_realtime
from .auth import (
    PRINCIPAL_KEY,
    SUBPROTOCOL,
    Authenticate,
    Authorize,
    BearerTokens,
    allowed_host,
    allowed_origin,
    request_token,
)
from .broker import Broker, BrokerUnavailable, Fence, MemoryBroker
from .closecodes import CloseCode, Reconnect
from .errors import ErrorCode
from .handler import HUB_KEY
from .hub import Hub
from .jsonguard import depth_exceeds
from .methods import Caller, MethodDef, MethodError, MethodHandler, MethodRegistry
from .principal import Principal
from .settings import RealtimeSettings
from .topics import SnapshotProvider, TopicDef, TopicRef, TopicRegistry, UnknownTopic, View

__version__ = "0.2.0"

__all__ = [
    "HUB_KEY",
    "PRINCIPAL_KEY",
    "SUBPROTOCOL",
    "Authenticate",
    "Authorize",
    "BearerTokens",
    "Broker",
    "BrokerUnavailable",
    "Caller",
    "CloseCode",
    "ErrorCode",
    "Fence",
    "Hub",
    "MemoryBroker",
    "MethodDef",
    "MethodError",
    "MethodHandler",
    "MethodRegistry",
    "Principal",
    "RealtimeSettings",
    "Reconnect",
    "SnapshotProvider",
    "TopicDef",
    "TopicRef",
    "TopicRegistry",
    "UnknownTopic",
    "View",
    "__version__",
    "allowed_host",
    "allowed_origin",
    "close_all",
    "depth_exceeds",
    "request_token",
    "setup_realtime",
]
