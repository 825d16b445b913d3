"""Assertions of the bad-input suite."""


def assert_error(rc, err, *parts, status=2):
    """A refused command: exit `status` and one `genlab: error:` message that names every one of `parts`."""
    assert rc == status, err
    assert err.startswith("genlab: error: "), err
    for part in parts:
        assert part in err, f"{part!r} not in {err!r}"
