"""The PKCS#11 object model: HSM keys and session objects as PKCS#11 objects.

`objects` builds the objects of one NetHSM key, `inventory` keeps a slot's keys and their
cache, `session_objects` what sessions created and `session_keys` the IDs of the HSM keys
behind them. Empty on purpose: the ABI imports the modules it needs, while the first TLS
handshake runs (docs/architecture.md, "Cold start").
"""
