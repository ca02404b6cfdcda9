"""The routing knobs, declared once: objective weights and normalisers, look-ahead depth and VRAM budget.

Settings, the CLI, the HTTP request bodies and the benchmark config all compose these types and models, so a
knob's bound, default and help text live here only.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

LambdaToken = Annotated[
    float, Field(ge=0, le=1000, description="λ_token: weight of the token cost in the routing objective")
]
LambdaSwitch = Annotated[
    float, Field(ge=0, le=1000, description="λ_switch: weight of the model-switch (load) cost in the objective")
]
TokenScale = Annotated[
    float, Field(ge=1e-3, le=1e12, description="tokens that make one unit of token cost (normaliser)")
]
SwitchTScaleMs = Annotated[
    float,
    Field(ge=1e-3, le=1e12, description="load time in ms that makes one third of a unit of switch cost (normaliser)"),
]
HorizonDepth = Annotated[
    int, Field(ge=0, le=32, description="DAG layers planned ahead per step (MPC horizon); 0 plans one step at a time")
]
GpuVramGb = Annotated[float, Field(gt=0, le=4096, description="VRAM budget G in GB")]


class RoutingParams(BaseModel):
    """The objective's weights and normalisers, as a routing problem carries them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lambda_token: LambdaToken = 0.5
    lambda_switch: LambdaSwitch = 0.2
    token_scale: TokenScale = 1000.0
    switch_t_scale_ms: SwitchTScaleMs = 1500.0


class RoutingKnobs(RoutingParams):
    """Every routing knob with its default (G excepted: it belongs to a GPU, see `GpuVramGb`)."""

    horizon_depth: HorizonDepth = 1

    @property
    def params(self) -> RoutingParams:
        return RoutingParams(**{name: getattr(self, name) for name in RoutingParams.model_fields})

    def overridden(self, overrides: KnobOverrides) -> RoutingKnobs:
        """These knobs with every knob the overrides set (None = keep)."""
        changed = {k: v for k, v in overrides.model_dump(exclude={"gpu_vram_gb"}).items() if v is not None}
        return self.model_copy(update=changed)


class KnobOverrides(BaseModel):
    """The knobs a request or a command line may set; None leaves the configured default (same bounds)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpu_vram_gb: GpuVramGb | None = None
    lambda_token: LambdaToken | None = None
    lambda_switch: LambdaSwitch | None = None
    token_scale: TokenScale | None = None
    switch_t_scale_ms: SwitchTScaleMs | None = None
    horizon_depth: HorizonDepth | None = None


def knob_description(name: str) -> str:
    """A knob's help text, read from its declared type (the optional override's field keeps it inside the union)."""
    for arg in get_args(KnobOverrides.model_fields[name].annotation):
        for meta in getattr(arg, "__metadata__", ()):
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
    raise KeyError(name)
