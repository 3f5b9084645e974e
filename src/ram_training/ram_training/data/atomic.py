"""Atomic file writes and the removal of the temporaries a killed run left behind: one
implementation, in ram_tracker (which the run-time tools use too)."""
from ram_tracker.atomic_write import (atomic_path, atomic_write_bytes, atomic_write_text,  # noqa: F401
                                      remove_leftovers_of_dead_runs)
