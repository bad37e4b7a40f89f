"""The p11fast software HSM: a NetHSM REST API v1 server (`p11fast hsm serve`).

Run as its own process; `p11fast.hsm.testing.running_hsm` starts one for tests.
"""
