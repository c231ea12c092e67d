"""``modelwatch demo``: the whole product on generated data."""
