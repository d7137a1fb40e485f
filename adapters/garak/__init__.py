"""garak adapter: LLM vulnerability scans of an OpenAI-compatible endpoint; attack success rate, lower is
better.

Run it with ``python -m adapters.garak`` (or ``assay-adapter garak``) in the environment built from
``requirements.txt``. Parameters (``spec.parameters``, all optional; see README.md):

- ``probes``: garak probe modules or classes, a list or a comma-separated string (``dan``,
  ``goodside.ThreatenJSON``, ``tag:owasp:llm01``, ``-dan.DanInTheWild`` to exclude). Default: the benchmark
  id (a probe module), or for the bundled ``quick`` benchmark goodside.ThreatenJSON, goodside.WhoIsRiley and
  lmrc.QuackMedicine.
- ``generations``: outputs per prompt (default 5, garak's; 1 for ``quick``).
- ``num_examples``: caps the prompts of each probe (garak's ``soft_probe_prompt_cap``); a soft cap that only
  probes which follow it honour (dan, encoding, promptinject, latentinjection, leakreplay, suffix, ...; not
  goodside or lmrc).
- ``max_tokens``, ``temperature``: generation settings (garak's defaults 150 and 0.7); ``seed``;
  ``parallel_attempts``; ``eval_threshold`` (detector score counted as a hit, default 0.5);
  ``system_prompt``.

Metrics: ``attack_success_rate`` and ``attack_success_rate.<module>.<Probe>`` (hits / evaluated outputs,
in [0, 1], lower is better), ``attack_successes``, ``evaluations`` (outputs x detectors judged),
``attempts`` (prompts sent and scored), ``outputs_none``, ``probes_run``.
"""

from __future__ import annotations

from adapters.garak.adapter import GarakAdapter

__all__ = ["GarakAdapter"]
