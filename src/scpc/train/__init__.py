"""The pre-training loop and what it needs: model building, data plans, schedules, state."""
