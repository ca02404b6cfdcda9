"""What each report.json field means: written into every report under `definitions`."""

DEFINITIONS = {
    "avg_score": "mean benchmark score over scored subtasks (failed or skipped subtasks score 0; code not executed "
    "because code_eval is off only has a heuristic score, counted in score_methods but not averaged); ci95 is the "
    "half-width of the 95% Student-t interval over those subtask scores",
    "job_score": "per job, the mean of its subtask scores; its ci95 treats jobs as the independent units",
    "oracle_gap": "per plan step: the exact optimum (route_exact, DP or MILP) re-solved on the same RoutingProblem "
    "under the same estimates the mode was given, minus the objective of the plan the mode chose; 0 = optimal, "
    "negative only for plans that break the VRAM budget (lp_relaxed rounding)",
    "objective_per_step / solve_time_ms_per_step": "per plan step, never summed per job",
    "switch": "models_swapped_in and switch ms are per job (sums over its steps); estimated = the catalog's "
    "load_time_ms of the models that were loaded, measured = the backend's load_duration",
    "peak_vram_gb": "resident VRAM from the backend's /api/ps before, during and after each step (helpers included)",
    "vram_violation_rate": "fraction of jobs whose resident peak exceeded gpu_vram_gb",
    "token_cost": "sum over subtasks of cost_per_token * eval_tokens / token_scale, per job",
    "fallback_rate": "fraction of plan steps whose routing_source starts with 'fallback'",
    "mode_order": "examples run in blocks of block_size; each block rotates the mode order (A B C, B C A, ...); "
    "every mode of every block starts from the same backend state (everything unloaded, then the warm set) and "
    "each mode starts from the same estimator snapshot, then learns only from its own benchmark scores",
    "timing": "wall-clock values sit under keys named 'timing' (moved to report_timing.json) or, for the original "
    "tool's fields, are listed in wall_clock_fields; everything else is deterministic for a seed on the sim backend",
    "original_fields": "modes.<mode>, comparison_lp_vs_llm, aggregates.<bench>.<mode>, pareto_data.<bench>, "
    "pareto_frontier_indices.<bench> and report.csv (one row per job and mode) keep the original tool's names and "
    "nesting; the other keys are new",
    "by_benchmark": "per benchmark, the mean job score (a job's score is the mean of its scored subtasks)",
    "sum_token_cost": "per job, cost_per_token * eval_tokens / token_scale (the original counted prompt tokens too "
    "and did not divide by token_scale)",
    "total_cost_est": "sum_token_cost + 0.001 * estimated_switch_cost_ms (the original's constant)",
    "chosen_utility / lp_objective_value / oracle_gap_pct": "per job: the sum of the chosen plans' objectives over "
    "its steps / the sum of the exact optima of the same steps (every mode; the original used the relaxed LP's "
    "value) / 100 * (optimum - chosen) / |optimum|",
    "avg_lp_solve_time_ms": "per job, the sum over its plan steps, averaged over jobs (the original's convention; "
    "per step: timing.solve_time_ms_per_step_mean)",
    "avg_total_latency_ms": "per job, the sum of its subtask latencies (wall clock)",
    "pareto_frontier_indices": "per benchmark, indices into pareto_data.<bench> of the points that no other point "
    "beats on score, token cost, switch cost and peak VRAM at once (the original: score vs token cost only)",
}
