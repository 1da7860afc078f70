"""Continuous evaluation of a routed task from the router's request log."""
