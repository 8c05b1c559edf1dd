"""Test suite configuration: Hypothesis profiles and the fixture plugins."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fix_db",
    "tests.fix_pgbouncer",
    "tests.fix_s3",
    "tests.fake_apify",
    "tests.fix_ximilar",
    "tests.fix_origin",
    "tests.fix_proxy",
    "tests.fix_zara",
]

# "ci" is fast and derandomized; "dev" explores more. Choose with HYPOTHESIS_PROFILE.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
