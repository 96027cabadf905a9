/* Logging helpers shared by the bridge, the host library, the hlsim SDK and
 * the RTL adapter: one set of log levels, escaping of text that came from a
 * peer, and per-call-site rate limiting. */
#ifndef TLPB_LOG_H
#define TLPB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one log-level scale. hlsim.h, tlpb_host.h and tlpb_rtl.h keep their
 * public names as aliases of these values. */
enum tlpb_log_level {
    TLPB_LOG_ERROR = 0,
    TLPB_LOG_WARN = 1,
    TLPB_LOG_INFO = 2,
    TLPB_LOG_DEBUG = 3,
};

/* "error", "warn", "info", "debug" ("?" out of range). */
const char *tlpb_log_level_name(int level);
/* The level named by s, or -1. */
int tlpb_log_level_from_name(const char *s);

/* Copy untrusted text (a peer's name, an error reason) for a log line:
 * printable ASCII stays, every other byte becomes \xNN and a backslash
 * becomes \\, so a peer cannot forge or colour log lines. At most max_chars
 * input bytes are taken; longer text ends in "...". dst is always
 * terminated; returns dst. */
#define TLPB_LOG_PEER_TEXT_MAX 120
const char *tlpb_log_escape(char *dst, size_t dst_size, const char *src, size_t max_chars);
/* Whether s holds a byte that tlpb_log_escape would change. */
bool tlpb_log_needs_escape(const char *s);

/* Rate limiting per call site: the first TLPB_LOG_BURST warnings or errors
 * (TLPB_LOG_BURST_INFO informational lines) of a site in an interval of
 * TLPB_LOG_INTERVAL_MS are logged, the rest are counted and reported in one
 * summary line when the interval is over (or at the next flush). Sites are
 * static storage at the call site (see bridge_log). */
#define TLPB_LOG_BURST 10u
#define TLPB_LOG_BURST_INFO 50u
#define TLPB_LOG_INTERVAL_MS 5000u

struct tlpb_log_site {
    const char *file;
    int line;
    uint64_t window_start_ns;
    uint32_t in_window;            /* messages of the current interval */
    uint64_t suppressed;           /* not logged since the last summary */
    int suppressed_level;          /* most severe level among them */
    char last[160];                /* the last suppressed message, for the summary */
    bool queued;                   /* on the list of sites owing a summary */
    struct tlpb_log_site *next;
};

/* Decide for one message of site at now_ns: true to log it. When false the
 * message is counted (and message, if given, kept as the site's example). */
bool tlpb_log_site_admit(struct tlpb_log_site *site, uint64_t now_ns, int level,
                         const char *message);

/* Summaries owed: for every site whose interval is over (or all of them with
 * force), call emit(level, line) with a line like
 *   "<last message> [and 290 more like it in 5 s, not logged]"
 * and reset the site. Returns the number of sites still owing a summary
 * (their interval is not over yet). */
typedef void (*tlpb_log_emit_fn)(int level, const char *line, void *opaque);
unsigned tlpb_log_flush_summaries(uint64_t now_ns, bool force, tlpb_log_emit_fn emit,
                                  void *opaque);

/* Whether some site owes a summary. */
bool tlpb_log_summaries_owed(void);

#ifdef __cplusplus
}
#endif

#endif
