"""Routing core: estimator, exact router (DP / MILP), seed-parity relaxation, planner LLM and baselines."""

from app.routing.agents import load_agents
from app.routing.estimator import Estimates, Estimator
from app.routing.planner import ChatFn, ChatReply
from app.routing.router import ROUTING_MODES, route, route_single, route_sync

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
