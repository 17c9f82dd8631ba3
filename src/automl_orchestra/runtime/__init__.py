"""Scheduling and execution of steps in worker processes, never in the API process."""
