"""A WhatsApp Cloud API simulator on loopback, and builders of Meta-shaped webhooks.

async with running_simulator() as sim:
    graph = GraphClient(sim.base_url, sim.config.token)
    ...
    assert sim.accepted(to="5511999990000")
"""

from simulator.config import (
    DEV_ACCESS_TOKEN,
    DEV_APP_SECRET,
    ConfigUpdate,
    NumberConfig,
    PairRate,
    SimConfig,
)
from simulator.control import SimulatorClient
from simulator.faults import Endpoint, Fault, FaultKind
from simulator.latency import RoundTrip
from simulator.media import StoredMedia
from simulator.records import (
    MediaFetch,
    MediaUpload,
    Outcome,
    ReadReceipt,
    SentMessage,
    Stats,
    SyncRequest,
    WebhookDelivery,
)
from simulator.server import Simulator, running_simulator, serve_forever, serving

__all__ = [
    "DEV_ACCESS_TOKEN",
    "DEV_APP_SECRET",
    "ConfigUpdate",
    "Endpoint",
    "Fault",
    "FaultKind",
    "MediaFetch",
    "MediaUpload",
    "NumberConfig",
    "Outcome",
    "PairRate",
    "ReadReceipt",
    "RoundTrip",
    "SentMessage",
    "SimConfig",
    "Simulator",
    "SimulatorClient",
    "Stats",
    "StoredMedia",
    "SyncRequest",
    "WebhookDelivery",
    "running_simulator",
    "serve_forever",
    "serving",
]
