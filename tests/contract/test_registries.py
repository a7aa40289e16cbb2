"""Every registered entry of every extension point meets its registry's contract (clearset.testing)."""

import pytest

from clearset.testing import check_entry, contract_cases


@pytest.mark.parametrize("listing,name", contract_cases(), ids=[f"{a}:{b}" for a, b in contract_cases()])
def test_registered_entry_meets_its_contract(listing, name):
    check_entry(listing, name)


def test_a_broken_entry_fails_its_contract():
    """The contracts can fail: a metric that is not deterministic is caught."""
    import numpy as np

    from clearset.evaluate.metrics import METRICS, register_metric

    @register_metric("contract_probe_random")
    def noisy(e):
        """A metric that draws random numbers."""
        return float(np.random.random())

    try:
        with pytest.raises(AssertionError, match="not deterministic"):
            check_entry("metrics", "contract_probe_random")
    finally:
        METRICS._entries.pop("contract_probe_random")
        METRICS._meta.pop("contract_probe_random")
