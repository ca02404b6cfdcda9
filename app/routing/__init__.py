"""Routing core: estimator, the routers by name (registry), exact DP / MILP, the original tool's relaxation, planner
LLM and baselines. Attributes load on first use (PEP 562), so importing the registry stays cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.routing.agents import load_agents
    from app.routing.estimator import Estimates, Estimator
    from app.routing.planner import ChatFn, ChatReply
    from app.routing.registry import ROUTING_MODES
    from app.routing.router import route, route_single, route_sync

_WHERE = {
    "load_agents": "app.routing.agents",
    "Estimates": "app.routing.estimator",
    "Estimator": "app.routing.estimator",
    "ChatFn": "app.routing.planner",
    "ChatReply": "app.routing.planner",
    "ROUTING_MODES": "app.routing.registry",
    "route": "app.routing.router",
    "route_single": "app.routing.router",
    "route_sync": "app.routing.router",
}

__all__ = [
    "ROUTING_MODES",
    "ChatFn",
    "ChatReply",
    "Estimates",
    "Estimator",
    "load_agents",
    "route",
    "route_single",
    "route_sync",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
