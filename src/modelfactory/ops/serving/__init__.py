"""Serving: the scoring script that follows the Azure ML online-endpoint contract."""
