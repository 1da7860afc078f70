"""Run candidates on the test split, summarise their metrics, and decide the tier."""
