/* Model timers on a libuv loop, for environments that run the hlsim SDK on
 * libuv (tlpbridged and hlsim-run). The start/stop/destroy functions have
 * the signatures of struct hlsim_env_ops and can be used there directly. */
#ifndef HLSIM_UV_H
#define HLSIM_UV_H

#include <stdint.h>
#include <uv.h>

void *hlsim_uv_timer_create(uv_loop_t *loop, void (*fire)(void *arg), void *arg);
void hlsim_uv_timer_start(void *timer, uint64_t delay_ns);
void hlsim_uv_timer_stop(void *timer);
void hlsim_uv_timer_destroy(void *timer); /* frees once libuv has closed the handle */

#endif
