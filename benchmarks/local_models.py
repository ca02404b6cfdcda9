"""Measure the embedded GGUF models: load time, resident memory (RSS delta) and decode tokens/s.

Run:  .venv/bin/python benchmarks/local_models.py [--write-config configs/agents_local.json]
Each model is measured in a fresh subprocess so one model's pages do not inflate the other's RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("smollm2:135m", "gemma3:270m")
N_CTX = 2048
N_THREADS = 2
PROMPT = "Write a short story about a robot who learns to paint."


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(model: str, data_dir: str, tokens: int, loads: int) -> dict[str, Any]:
    """Runs inside the child process."""
    import llama_cpp

    from app.backends.local import _cpu_has_amx, _disable_extra_buffer_types
    from app.backends.local_models import resolve_model_path

    if _cpu_has_amx():
        _disable_extra_buffer_types()
    path = resolve_model_path(model, Path(data_dir))
    assert path is not None, f"{model}: package not installed"
    before = rss_bytes()
    load_ms: list[float] = []
    llm: Any = None
    for _ in range(loads):
        if llm is not None:
            llm.close()
            llm = None
        started = time.perf_counter()
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_threads=N_THREADS, verbose=False)
        load_ms.append((time.perf_counter() - started) * 1e3)
    after_load = rss_bytes()
    # Suppress end-of-text so every run decodes exactly `tokens` tokens.
    no_eos = {llm.token_eos(): -1e9}
    llm.create_completion(PROMPT, max_tokens=8, temperature=0)  # warm-up: faults the weights in
    rates = []
    for _ in range(3):
        llama_cpp.llama_perf_context_reset(llm.ctx)
        llm.create_completion(PROMPT, max_tokens=tokens, temperature=0, logit_bias=no_eos)
        perf = llama_cpp.llama_perf_context(llm.ctx)
        rates.append(perf.n_eval / (perf.t_eval_ms / 1e3))
    after_gen = rss_bytes()
    return {
        "model": model,
        "file_bytes": path.stat().st_size,
        "load_ms_first": round(load_ms[0], 1),
        "load_ms_median": round(statistics.median(load_ms), 1),
        "rss_after_load_gb": round((after_load - before) / 1e9, 4),
        "footprint_gb": round((after_gen - before) / 1e9, 4),
        "tokens_per_s": round(statistics.median(rates), 1),
        "n_ctx": N_CTX,
        "n_threads": N_THREADS,
        "llama_cpp_version": llama_cpp.__version__,
    }


def write_config(path: Path, results: list[dict[str, Any]]) -> None:
    agents = json.loads(path.read_text())
    rows = agents["agents"] if isinstance(agents, dict) else agents
    by_name = {r["model"]: r for r in results}
    for row in rows:
        r = by_name.get(row["name"])
        if r is not None:
            row["vram_gb"] = round(r["footprint_gb"], 3)
            row["load_time_ms"] = r["load_ms_median"]
            row["tokens_per_s"] = r["tokens_per_s"]
    path.write_text(json.dumps(agents, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=str(Path.home() / ".cache" / "ollama-swarm-router"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--write-config", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.data_dir, args.tokens, args.loads)))
        return
    results = []
    for model in MODELS:
        cmd = [sys.executable, __file__, "--child", model, "--data-dir", args.data_dir]
        cmd += ["--tokens", str(args.tokens), "--loads", str(args.loads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in results:
        print(
            f"{r['model']:14} load {r['load_ms_first']:7.1f} ms (median {r['load_ms_median']:.1f})  "
            f"footprint {r['footprint_gb']:.3f} GB (after load {r['rss_after_load_gb']:.3f})  "
            f"{r['tokens_per_s']:.1f} tok/s  file {r['file_bytes'] / 1e6:.0f} MB"
        )
    print(json.dumps(results, indent=2))
    if args.write_config is not None:
        write_config(args.write_config, results)


if __name__ == "__main__":
    main()
