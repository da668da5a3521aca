"""Validation gates specific to attention models: one module per check.

Each check is a function ``check(candidate, reference, settings) -> CheckResult`` where
``candidate``/``reference`` are :class:`validators.result.ModelUnderTest` (a registered
version fetched to local files) and ``settings`` is :class:`validators.settings.Thresholds`.
The runner (``validators.runner``) executes a selected set, logs one MLflow run per
validation, tags the version and stores the result.
"""
