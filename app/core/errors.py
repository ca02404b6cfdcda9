"""The one exception tree. app/api/errors.py is the only place that maps it to HTTP statuses and bodies."""

from __future__ import annotations


class SwarmError(Exception):
    """Base of every error the router raises on purpose."""

    code = "swarm_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(SwarmError):
    code = "config_error"


class ValidationFailed(SwarmError):
    """User input that parsed but makes no sense (unknown dep, cycle, bad agent file)."""

    code = "invalid_input"


class BadRequest(ValidationFailed):
    """A malformed request on a compatibility endpoint; `param` names the offending field."""

    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class AgentFileError(ValidationFailed):
    code = "invalid_agents_file"


class DagError(ValidationFailed):
    code = "invalid_dag"


class RoutingError(SwarmError):
    code = "routing_error"


class InfeasibleError(RoutingError):
    """No assignment fits the VRAM budget (or max_ctx)."""

    code = "infeasible"


class SolverError(RoutingError):
    code = "solver_failed"


class SolveTimeLimit(SolverError):
    """No feasible plan within the solve's time limit (SWARM_SOLVE_TIME_LIMIT_S)."""

    code = "solve_time_limit"


class NotFound(SwarmError):
    code = "not_found"


class Conflict(SwarmError):
    """The request is valid but the resource's state forbids it now (e.g. deleting a tenant that owns data)."""

    code = "conflict"


class Unauthorized(SwarmError):
    code = "unauthorized"


class Forbidden(SwarmError):
    code = "forbidden"


class RequestTimeout(SwarmError):
    """A client that does not deliver its request body in time (the server closes the connection, 408)."""

    code = "request_timeout"


class Saturated(SwarmError):
    """A bounded executor's queue is full: try again shortly (503)."""

    code = "saturated"


class BudgetExceeded(SwarmError):
    code = "budget_exceeded"


class QueueFull(SwarmError):
    """The tenant already has as many calls queued on this GPU as it may (429, with Retry-After)."""

    code = "queue_full"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GpuSaturated(SwarmError):
    """The GPU's queue is full for everyone (503, with Retry-After)."""

    code = "gpu_saturated"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendError(SwarmError):
    """A model backend (Ollama, sim, llama.cpp) failed."""

    code = "backend_error"


class BackendUnavailable(BackendError):
    code = "backend_unavailable"


class ModelNotFound(BackendError):
    code = "model_not_found"

    def __init__(self, model: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{model}' not found")
        self.model = model


class BackendTimeout(BackendError):
    code = "backend_timeout"


class BadBackendResponse(BackendError):
    code = "bad_backend_response"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        # The upstream's own HTTP status when it answered with an error (the proxies relay it).
        self.status = status


class JobCancelled(SwarmError):
    code = "cancelled"


class Unsupported(SwarmError):
    """The request is valid but this backend cannot serve it (e.g. model management on the simulator)."""

    code = "not_implemented"


class ClientGone(SwarmError):
    """The client disconnected; its upstream call was cancelled (nothing is sent back)."""

    code = "client_disconnected"
