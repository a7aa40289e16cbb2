"""``clearset security``: backdoor and extraction checks (issue 26). So far: the poisoning toolkit that
makes a known-bad dataset to test them on (poison.py)."""
