# p11fast._transport: the declarations of its pieces (p11fast/transport/, each .pxd headed by
# what the piece owns, its contract and what it uses), in dependency order. Other Cython
# modules cimport from here what they use: tp_request, tp_buf, tp_result, tp_buf_free,
# tp_instance_url, tp_after_fork_child, the TP_* codes and Pool; every other name is the
# transport's own.

include "transport/types.pxd"
include "transport/sync.pxd"
include "transport/cstr.pxd"
include "transport/conn.pxd"
include "transport/http1.pxd"
include "transport/transfer.pxd"
include "transport/pool.pxd"
include "transport/health.pxd"
include "transport/spec.pxd"
include "transport/park.pxd"
include "transport/request.pxd"
include "transport/fork.pxd"
include "transport/lifetime.pxd"
include "transport/capi.pxd"
include "transport/api.pxd"
