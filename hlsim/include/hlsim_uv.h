/* For environments that run the hlsim SDK on libuv (tlpbridged and
 * hlsim-run): model timers, and the queue behind hlsim_env_ops.defer.
 * The timer start/stop/destroy functions have the signatures of struct
 * hlsim_env_ops and can be used there directly. */
#ifndef HLSIM_UV_H
#define HLSIM_UV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

void *hlsim_uv_timer_create(uv_loop_t *loop, void (*fire)(void *arg), void *arg);
void hlsim_uv_timer_start(void *timer, uint64_t delay_ns);
void hlsim_uv_timer_stop(void *timer);
void hlsim_uv_timer_destroy(void *timer); /* frees once libuv has closed the handle */

/* Deferred calls: run from the loop's idle phase, in the order queued. A
 * pass runs only what was queued before it started: work that queues more
 * work runs on the next iteration, after I/O has had its turn. */
typedef void (*hlsim_uv_call_cb)(void *arg);
struct hlsim_uv_call;
STAILQ_HEAD(hlsim_uv_call_list, hlsim_uv_call);
struct hlsim_uv_defer_queue {
    uv_loop_t *loop;               /* NULL until hlsim_uv_defer_init */
    uv_idle_t idle;
    struct hlsim_uv_call_list calls;
    hlsim_uv_call_cb after_pass;   /* optional, after every pass */
    void *after_pass_arg;
};

void hlsim_uv_defer_init(struct hlsim_uv_defer_queue *q, uv_loop_t *loop,
                         hlsim_uv_call_cb after_pass, void *after_pass_arg);
/* Queue fn(arg). Returns 0 or -ENOMEM. */
int hlsim_uv_defer(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, void *arg);
/* Queue fn(storage) with `bytes` of zeroed storage for the caller to fill
 * now; the storage is freed after fn returns (or when dropped). Returns 0
 * or -ENOMEM. */
int hlsim_uv_defer_alloc(struct hlsim_uv_defer_queue *q, hlsim_uv_call_cb fn, size_t bytes,
                         void **storage);
bool hlsim_uv_defer_pending(const struct hlsim_uv_defer_queue *q);
/* Free every queued call without running it (the instance they were
 * queued for is gone). */
void hlsim_uv_defer_drop_all(struct hlsim_uv_defer_queue *q);
/* Drop what is queued and close the idle handle (the queue's memory must
 * stay valid until the loop has closed it). No-op before init. */
void hlsim_uv_defer_close(struct hlsim_uv_defer_queue *q);

#endif
