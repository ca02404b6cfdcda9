"""Flags shared by several subcommands and the Settings they produce."""

from __future__ import annotations

import argparse
from typing import Any

from app.core.settings import Settings, load_settings


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "ollama", "sim", "local"], help="model backend (default: settings)")
    p.add_argument("--dry_run", action="store_true", help="use the simulated GPU backend (no Ollama needed)")
    p.add_argument("--ollama_base_url", help="Ollama URL (default SWARM_OLLAMA_BASE_URL or http://localhost:11434)")
    p.add_argument("--agents_file", help="agent registry JSON (default: the preset for the backend)")
    p.add_argument("--gpu_vram_gb", type=float, help="VRAM budget G in GB")
    p.add_argument("--time_scale", type=float, help="sim only: 0 = instant, 1 = realistic load/decode times")
    p.add_argument("--seed", type=int, default=0, help="random seed (sim outputs, random routing)")
    p.add_argument("--database_url", help="SQLAlchemy URL (default SWARM_DATABASE_URL)")


def add_routing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--routing", choices=["lp", "lp_relaxed", "llm", "greedy", "random"], default=None)
    p.add_argument("--lambda_token", type=float)
    p.add_argument("--lambda_switch", type=float)
    p.add_argument("--token_scale", type=float)
    p.add_argument("--switch_t_scale_ms", type=float)
    p.add_argument("--horizon_depth", type=int)
    p.add_argument("--planner_model")
    p.add_argument("--decomposer_model")


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags override environment and config file; validation errors name the setting."""
    over: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        over["backend"] = "sim"
    elif getattr(args, "backend", None):
        over["backend"] = args.backend
    for flag, key in (
        ("ollama_base_url", "ollama_base_url"),
        ("agents_file", "agents_file"),
        ("gpu_vram_gb", "gpu_vram_gb"),
        ("time_scale", "sim_time_scale"),
        ("database_url", "database_url"),
        ("runs_dir", "runs_dir"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            over[key] = value
    if getattr(args, "seed", None) is not None:
        over["sim_seed"] = args.seed
    base = load_settings(**over)
    routing = base.routing.model_dump()
    for key in ("lambda_token", "lambda_switch", "token_scale", "switch_t_scale_ms", "horizon_depth"):
        if getattr(args, key, None) is not None:
            routing[key] = getattr(args, key)
    if getattr(args, "routing", None):
        routing["mode"] = args.routing
    models = base.models.model_dump()
    for role in ("planner", "decomposer", "judge"):
        if getattr(args, f"{role}_model", None):
            models[role] = getattr(args, f"{role}_model")
    return load_settings(**{**over, "routing": routing, "models": models})
