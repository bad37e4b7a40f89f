# mechanisms: the mechanism tables of p11fast/mechanisms.py as C data — the NetHSM mechanism
# bits (NM_*), each operation's request modes (MODE_*, DMODE_*, EMODE_* into p11f_*_modes) and
# the NetHSM mechanism each needs, the modes by hash, what each NetHSM mechanism offers, and
# C_GetMechanismList/Info's tables (p11f_mechanism_types/infos, MECHANISM_COUNT).
#
# Contract: generated into p11fast/_mechanisms.pxi by mechanisms_build.py (run by setup.py)
# and included by mechanisms.pyx: its names are this piece's exports (mechanisms_build.py's
# docstring lists them). nogil, read-only; `mechanism_tables()` gives them to Python for the
# test that both sides agree.
# uses: codec/hash
