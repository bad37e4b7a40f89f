# cython: language_level=3
"""HTTP(S) to a slot's NetHSM instances: a libcurl keep-alive pool, failover, retries, probes.

One extension made of pieces, each a same-named .pyx/.pxd pair in p11fast/transport/ whose .pxd
says what the piece owns, its contract and which pieces it uses. This file includes them in
dependency order, _transport.pxd their declarations. Where a request goes: Pool.call (api) or
the ABI calls tp_request (request), which picks an instance, borrows a handle from the pool
(pool), sends the request framed (http1) or as a full libcurl transfer (transfer), takes the
instance out of rotation or back (health) and decides on failover and retries.
"""

include "transport/cstr.pyx"
include "transport/conn.pyx"
include "transport/http1.pyx"
include "transport/transfer.pyx"
include "transport/pool.pyx"
include "transport/health.pyx"
include "transport/spec.pyx"
include "transport/park.pyx"
include "transport/request.pyx"
include "transport/fork.pyx"
include "transport/lifetime.pyx"
include "transport/capi.pyx"
include "transport/api.pyx"
