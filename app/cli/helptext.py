"""Help texts of the `swarm` flags (one table) and the help formatter: defaults shown, one spelling per flag."""

from __future__ import annotations

import argparse

# Flag (dest) -> help, for the flags that are not routing knobs (those take their text, bounds and defaults from the
# knobs model and the routing registry: app/cli/knobs.py).
HELP: dict[str, str] = {
    "planner_model": "planner LLM for --routing llm (default: the smallest agent)",
    "decomposer_model": "model that splits a query into subtasks (default: the smallest agent)",
    # backend
    "backend": "model backend: ollama, sim (simulated GPU), local (embedded llama.cpp), auto (Ollama if it answers, "
    "else local, else sim)",
    "dry_run": "use the simulated GPU backend: no Ollama, no model downloads",
    "ollama_base_url": "URL of the upstream Ollama",
    "agents_file": "agent catalog JSON (default: the preset for the backend, configs/agents_*.json)",
    "time_scale": "simulator only: 0 = answer instantly, 1 = realistic load and decode times",
    "seed": "random seed (simulated outputs, random routing, benchmark sampling)",
    "database_url": "SQLAlchemy URL of the job and telemetry store",
    "runs_dir": "root folder of the run outputs",
    "log_level": "uvicorn log level (access lines are logged at info and below)",
}

# Flags whose default comes from the settings (environment, then SWARM_CONFIG_FILE, then the built-in value):
# dest -> (environment variable, built-in default). tests/cli/test_cli_help.py keeps these equal to Settings.
SETTING_DEFAULTS: dict[str, tuple[str, str]] = {
    "gpu_vram_gb": ("SWARM_GPU_VRAM_GB", "8"),
    "backend": ("SWARM_BACKEND", "auto"),
    "ollama_base_url": ("SWARM_OLLAMA_BASE_URL", "http://localhost:11434"),
    "database_url": ("SWARM_DATABASE_URL", "sqlite:///./data/swarm.db"),
    "runs_dir": ("SWARM_RUNS_DIR", "./runs"),
    "time_scale": ("SWARM_SIM_TIME_SCALE", "0"),
    "host": ("SWARM_HOST", "127.0.0.1"),
    "port": ("SWARM_PORT", "8000"),
}


def helped(dest: str, text: str | None = None) -> str:
    """The table's help for `dest` (or `text`), with the settings default when the flag's default comes from there."""
    base = text if text is not None else HELP[dest]
    if dest in SETTING_DEFAULTS and "default" not in base:
        env, value = SETTING_DEFAULTS[dest]
        return f"{base} (default: {env}, else {value})"
    return base


class Formatter(argparse.HelpFormatter):
    """Shows each flag once (the underscore spelling; the dash spelling is accepted but not listed) and appends
    `(default: X)` to every optional flag that has a default its help does not already state."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=_width())

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = getattr(action, "shown_option_strings", None)
        if not shown or shown == action.option_strings:
            return super()._format_action_invocation(action)
        hidden = action.option_strings
        action.option_strings = list(shown)
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = hidden

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text or text == argparse.SUPPRESS:
            return text
        if isinstance(action, argparse._StoreConstAction | argparse._HelpAction | argparse._VersionAction):
            return text  # store_true / store_false: off unless given
        default = action.default
        if default is None or default == [] or default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {_show(default)})"


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value).replace("%", "%%")


def _width() -> int:
    import shutil

    return max(80, min(120, shutil.get_terminal_size((100, 24)).columns))
