"""Service settings: environment (SWARM_*, nested with __), optional TOML file, validated at start-up."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.core.errors import ConfigError
from app.core.gpu import detect_vram_gb
from app.core.paths import config_file
from app.core.upstream import check_headers, redact_url
from app.domain.knobs import RoutingKnobs
from app.routing.registry import DEFAULT_MODE, ModeName

BackendKind = Literal["auto", "ollama", "sim", "local"]
CONFIG_FILE_ENV = "SWARM_CONFIG_FILE"


class RoutingDefaults(RoutingKnobs):
    """The service's routing knobs (SWARM_ROUTING__*) and its default mode."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    mode: ModeName = DEFAULT_MODE


class SchedulerSettings(BaseModel):
    """The per-GPU scheduler (SWARM_SCHEDULER__*): how calls are grouped by model, kept fair and bounded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # swap_aware: the scheduler decides loads and evictions; fifo: calls go straight to the backend (Ollama's order).
    policy: Literal["swap_aware", "fifo"] = "swap_aware"
    num_parallel: int = Field(default=4, ge=1, le=256)  # calls one model runs at once: Ollama's OLLAMA_NUM_PARALLEL
    max_wait_s: float = Field(default=20.0, gt=0, le=86_400)  # a call older than this forces its model in next
    wait_weight: float = Field(default=0.1, ge=0, le=1e6)  # value a queued call gains per second it waits
    hold_s: float = Field(default=3.0, ge=0, le=3600)  # a model's clients likely call again within this
    hold_value: float = Field(default=1.0, ge=0, le=1e6)  # what that likely next call is worth
    max_queue: int = Field(default=1000, ge=1, le=1_000_000)  # calls queued per GPU (beyond: 503)
    max_queue_per_tenant: int = Field(default=256, ge=1, le=1_000_000)  # per tenant and GPU (beyond: 429)
    tick_s: float = Field(default=0.25, gt=0, le=60)  # how often a waiting queue is re-examined
    # Fair-share weights by tenant id (default 1): a tenant of weight 2 gets twice the share of a contended GPU.
    tenant_weights: dict[str, Annotated[float, Field(gt=0, le=1e6)]] = Field(default_factory=dict)


class ModelNames(BaseModel):
    """Helper-LLM roles. None = the smallest agent of the tenant's catalog."""

    planner: str | None = None
    decomposer: str | None = None
    judge: str | None = None
    synthesizer: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWARM_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    # auto: Ollama when it answers at start-up, else the embedded llama.cpp models, else the simulator.
    backend: BackendKind = "auto"
    ollama_base_url: str = "http://localhost:11434"  # user:pass@ in it becomes an Authorization: Basic header
    # Headers sent on every call to that Ollama (JSON in SWARM_OLLAMA_HEADERS), e.g. {"Authorization": "Bearer ..."}.
    ollama_headers: dict[str, str] = Field(default_factory=dict, repr=False)
    # Overall deadline of one backend call; cold loads get no read timeout, only this.
    backend_deadline_s: float = Field(default=600.0, gt=0)
    keep_alive: str = "10m"
    # How the router speaks HTTP to Ollama: the lean HTTP/1.1 pool, or httpx (which honours HTTP(S)_PROXY).
    ollama_transport: Literal["lean", "httpx"] = "lean"
    database_url: str = "sqlite:///./data/swarm.db"
    data_dir: Path = Path("./data")
    runs_dir: Path = Path("./runs")
    # VRAM budget G; 0 (the default) = detect: NVML, then nvidia-smi, then DEFAULT_GPU_VRAM_GB (gpu_vram_source says
    # which).
    gpu_vram_gb: float = Field(default=0.0, ge=0, le=4096)
    gpu_vram_source: str = "setting"
    agents_file: Path | None = None
    routing: RoutingDefaults = Field(default_factory=RoutingDefaults)
    models: ModelNames = Field(default_factory=ModelNames)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    admin_key: str | None = None
    # Catalog reconciliation: seconds between re-reads of each backend's installed models (0 = only at start-up
    # and after pulls/deletes through the proxy); whether installed models outside the catalog are routed too,
    # with defaults derived from their size.
    catalog_refresh_s: float = Field(default=60.0, ge=0)
    offer_installed_models: bool = False
    # Seconds between saves of the service's learned estimator state to the database (also saved at shutdown).
    estimator_save_s: float = Field(default=30.0, gt=0)
    # sim backend
    sim_seed: int = 0
    sim_time_scale: float = Field(default=0.0, ge=0)
    # execution
    max_concurrency: int = Field(default=4, ge=1, le=256)
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    # budgets: output tokens a proxied call that sets no max tokens field reserves at admission
    proxy_reserve_tokens: int = Field(default=1024, ge=0, le=1_000_000)
    cors_origins: list[str] = Field(default_factory=list)
    # hardening: caps on what an upstream may send (a bigger answer or stream line is a 502, not an OOM)
    upstream_max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    upstream_max_line_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # hardening: CPU work (solves, reports, dry-run benches) on its own bounded executors
    cpu_workers: int = Field(default=2, ge=1, le=64)
    cpu_max_queue: int = Field(default=64, ge=0, le=100_000)
    solve_time_limit_s: float = Field(default=10.0, gt=0, le=3600)
    route_max_cells: int = Field(default=8192, ge=1, le=10_000_000)  # agents x subtasks of one /route or job
    bench_max_running: int = Field(default=2, ge=1, le=64)
    bench_max_running_per_tenant: int = Field(default=1, ge=1, le=64)
    # connection hygiene (swarm serve): request-head read timeout, idle keep-alive, connection cap, head size
    http_head_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # a request body must keep coming: 408 after a gap this long, or below the minimum average rate (bytes/s)
    # once that long has passed since the head
    http_body_idle_s: float = Field(default=10.0, gt=0, le=3600)
    http_body_min_rate: int = Field(default=8192, ge=1, le=1 << 30)
    http_keep_alive_s: int = Field(default=5, ge=1, le=3600)
    http_max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    http_max_head_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # several processes on one database: how often a process stamps its running jobs, and after how many
    # missed stamps another process may sweep them to `interrupted`
    owner_heartbeat_s: float = Field(default=5.0, gt=0, le=3600)
    owner_stale_after: int = Field(default=6, ge=2, le=1000)
    # code_eval isolation: auto (bubblewrap, else root + unshare), bwrap, unshare, or unsafe (explicit opt-in)
    sandbox: Literal["auto", "bwrap", "unshare", "unsafe"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("ollama_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"must be an http(s) URL like http://localhost:11434, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _detect_vram(self) -> Settings:
        if self.gpu_vram_gb == 0:
            self.gpu_vram_gb, self.gpu_vram_source = detect_vram_gb(os.environ.get("PATH"))
        else:
            self.gpu_vram_source = "setting"
        return self

    @field_validator("ollama_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("keep_alive")
    @classmethod
    def _keep_alive(cls, value: str) -> str:
        if not re.fullmatch(r"-?\d+(\.\d+)?(ns|us|ms|s|m|h)?", value.strip()):
            raise ValueError(f"must be a duration like 10m, 30s, 0 or -1, got {value!r}")
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"must be an SQLAlchemy URL like sqlite:///./data/swarm.db, got {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_FILE_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    def public_dump(self) -> dict[str, Any]:
        """The settings as run summaries may record them: no admin key, no upstream headers, no URL credentials."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude={"admin_key", "ollama_headers"})
        data["ollama_base_url"] = redact_url(self.ollama_base_url)
        return data

    def default_agents_file(self) -> Path:
        """The agents file in force: explicit, else the preset matching the backend."""
        if self.agents_file is not None:
            return self.agents_file
        preset = {"local": "agents_local.json"}.get(self.backend, "agents_heavy.json")
        return config_file(preset)


def _env_name(loc: tuple[int | str, ...]) -> str:
    return "SWARM_" + "__".join(str(p).upper() for p in loc)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings or raise ConfigError with one line naming the variable."""
    path = os.environ.get(CONFIG_FILE_ENV)
    if path and not Path(path).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}: file not found: {path}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"{_env_name(tuple(err['loc']))}: {msg}") from None
