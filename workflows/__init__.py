"""Temporal workflows. Modules here stay deterministic: stdlib, temporalio and our dataclasses;
activities and helpers are imported through `workflow.unsafe.imports_passed_through()`."""
