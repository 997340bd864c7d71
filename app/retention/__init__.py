"""`af experiment retention`: does training against caught attacks remove attacks in deployment?

1. An attacker organism (LoRA on the base, merged): attacks on each rung's deployment inputs, refrains
   on its test inputs (``organism`` requests) — or a given organism.
2. Before: the organism on the ``measure`` requests (test and deployment, every rung), usefulness,
   and ``deployment_discrimination`` per rung (its accuracy is the rung's measured difficulty); the
   ``catch`` requests' test split gives the caught attacks per rung.
3. For each rung × seed × budget: a LoRA on the merged organism trained on ``budget`` caught attacks
   with the good behaviour (plus replay), then measured again on every rung and on usefulness.
4. ``results.json``, ``table.md``, ``retention.png``; every Inspect log under ``logs/``.

The three request sets are disjoint slices of one seeded shuffle, so the deployment attack rate is
always measured on requests the retraining never saw. Finished evals and trainings are reused when
the command is run again on the same folder, so an interrupted experiment resumes.

One module per job:

- ``settings``: the frozen settings (every command-line default lives in their fields);
- ``logs``: Inspect logs read back into attack rates, caught attacks and scored rates;
- ``run``: the experiment itself (request files, evals, training, the whole run);
- ``report``: the summary, ``table.md`` and ``retention.png``;
- ``cli``: ``af experiment retention``, generated from the settings.
"""
