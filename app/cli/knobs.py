"""Command-line flags for the routing mode and knobs, made from the registry and the one knobs model (their bounds,
defaults and help text live there), and the overrides they produce."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from app.domain.knobs import KnobOverrides, RoutingKnobs, knob_description
from app.routing.registry import COMPARE_CHOICES, COMPARE_GROUPS, DEFAULT_COMPARE, DEFAULT_MODE, ROUTERS, SELECTABLE


def _parser(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if name == GPU_KNOB and text.strip() in ("0", "0.0"):
            return 0.0  # detect the GPU's memory (settings: NVML, nvidia-smi, else the default)
        try:
            return getattr(KnobOverrides.model_validate({name: text.strip()}), name)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{exc.errors()[0]['msg']}, got {text!r}") from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse


GPU_KNOB = "gpu_vram_gb"
ROUTING_KNOBS = tuple(name for name in KnobOverrides.model_fields if name != GPU_KNOB)


def add_knob_flags(p: argparse.ArgumentParser, names: tuple[str, ...] = ROUTING_KNOBS) -> None:
    """One flag per knob; unset flags leave the configured value (SWARM_ROUTING__*, SWARM_GPU_VRAM_GB)."""
    for name in names:
        if name == GPU_KNOB:
            default = "SWARM_GPU_VRAM_GB, else detected: NVML, nvidia-smi, else 8; 0 = detect"
        else:
            default = f"SWARM_ROUTING__{name.upper()}, else {RoutingKnobs.model_fields[name].default:g}"
        p.add_argument(
            f"--{name}", type=_parser(name), default=None, help=f"{knob_description(name)} (default: {default})"
        )


def add_mode_flag(p: argparse.ArgumentParser) -> None:
    summary = "; ".join(f"{n}: {ROUTERS[n].summary}" for n in SELECTABLE)
    p.add_argument(
        "--routing",
        choices=SELECTABLE,
        default=None,
        help=f"routing mode (default: SWARM_ROUTING__MODE, else {DEFAULT_MODE}). {summary}",
    )


def add_compare_flag(p: argparse.ArgumentParser) -> None:
    groups = ", ".join(f"{g} = {'+'.join(m)}" for g, m in COMPARE_GROUPS.items())
    p.add_argument("--compare", choices=COMPARE_CHOICES, default=DEFAULT_COMPARE, help=f"modes to compare ({groups})")


def knob_overrides(args: argparse.Namespace) -> KnobOverrides:
    return KnobOverrides(**{k: getattr(args, k, None) for k in KnobOverrides.model_fields})
