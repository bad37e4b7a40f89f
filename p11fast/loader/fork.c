/* The fork handlers of the whole module.
 *
 * The process's fork handling for everything the module holds, registered once, when this
 * library is loaded, in every host: start_lock; for the interpreter the loader starts, init_gate
 * and the GIL; the transport's locks and thread (when it leaves them to us: transport_api);
 * light mode's state and the ABI's reset in the child. One set in a fixed order, and nothing
 * registered later: glibc before 2.34 holds its own lock from the first prepare handler to the
 * last child handler and takes it to register one, so a later registration under a lock a
 * prepare handler waits for (the GIL during an import, say) would deadlock with a concurrent
 * fork.
 *
 * The order is start_lock, init_gate, GIL, transport. No thread waits for an earlier one while
 * it holds a later one: once an interpreter runs, start_lock is held briefly and never while
 * waiting for anything; init_gate is taken before the GIL (initialize_abi); the transport
 * never waits for the GIL. Whatever start_lock covers (starting Python, loading the transport)
 * is never half done in a child.
 *
 * The GIL, for our own interpreter only (a Python host's forks are its interpreter's business:
 * os.fork does all of this itself, and a host thread holding the GIL may be waiting for the
 * forking one). Taking it in prepare means no thread holds it mid-fork, so the child's single
 * thread can take it; PyOS_BeforeFork/AfterFork_* are what os.fork() does around fork() (import
 * lock, os.register_at_fork hooks — the ABI's among them — thread-state cleanup in the child).
 * init_gate first: a fork waits for a first initialisation in progress (initialize_abi), whose
 * imports hold module locks a child would otherwise inherit held. A thread that already holds
 * the GIL is Python code forking on our interpreter (os.fork, subprocess): Python does its own
 * part then. */
#include "python.h" /* first: Python.h sets the feature macros used below */

#include <pthread.h>
#include <stdatomic.h>

static PyGILState_STATE fork_gil;  /* these three under start_lock, from prepare to child/parent */
static int fork_takes_gil;
static const struct transport_api *fork_transport;
pthread_mutex_t init_gate = PTHREAD_MUTEX_INITIALIZER;

static void before_fork(void)
{
    pthread_mutex_lock(&start_lock);
    fork_takes_gil = started_here && !py.PyGILState_Check();
    if (fork_takes_gil) {
        pthread_mutex_lock(&init_gate);
        fork_gil = py.PyGILState_Ensure();
        py.PyOS_BeforeFork();
    }
    if ((fork_transport = atomic_load(&forwarded_transport)))
        fork_transport->fork_prepare();
}

static void after_fork_in_parent(void)
{
    if (fork_transport)
        fork_transport->fork_parent();
    if (fork_takes_gil) {
        py.PyOS_AfterFork_Parent();
        py.PyGILState_Release(fork_gil);
        pthread_mutex_unlock(&init_gate);
    }
    pthread_mutex_unlock(&start_lock);
}

/* In the child this thread's state must outlive the GIL release: PyOS_AfterFork_Child deleted
 * every other thread state, and CPython 3.11 aborts when it has to create one for an
 * interpreter left with none (it reuses the initial thread state, still marked initialised).
 * So the GIL is released with PyEval_SaveThread, not PyGILState_Release, and this thread
 * state stays as the child's main one. The transport and the ABI are reset before Python's own
 * after-fork code runs (it runs the ABI's hook, which drops its pools). */
static void after_fork_in_child(void)
{
    void (*reset)(void) = atomic_load(&abi_after_fork_child);
    if (fork_transport)
        fork_transport->fork_child();
    light_after_fork_child();
    if (reset)
        reset();
    if (fork_takes_gil) {
        py.PyOS_AfterFork_Child();
        py.PyEval_SaveThread();
        pthread_mutex_unlock(&init_gate);
    }
    pthread_mutex_unlock(&start_lock);
}

__attribute__((constructor)) static void install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}
